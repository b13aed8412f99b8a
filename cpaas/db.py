"""Database connection (peewee) and schema creation from ``schema.sql``."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import peewee
from playhouse.db_url import parse
from playhouse.pool import PooledPostgresqlDatabase

#: Every model binds to this proxy; :func:`init` points it at the real database.
database = peewee.DatabaseProxy()

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema.sql"


def dialect_of(db: peewee.Database) -> str:
    """``sqlite`` or ``postgresql``."""
    return "postgresql" if isinstance(db, peewee.PostgresqlDatabase) else "sqlite"


def open_database(url: str) -> peewee.Database:
    """A peewee database for a ``sqlite:///path`` or ``postgresql://`` URL."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = Path(url[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        # WAL lets the API read while the events process writes; busy_timeout makes
        # writers queue instead of failing with "database is locked". Every transaction
        # here writes, so it takes the write lock at BEGIN (IMMEDIATE): a deferred one
        # that reads first fails at once, busy_timeout or not, when another writer
        # commits between its read and its write.
        return peewee.SqliteDatabase(str(path), pragmas={
            "journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1,
            "busy_timeout": 10000, "cache_size": -64000,
        }, check_same_thread=False, lock_type="IMMEDIATE")
    if parsed.scheme in ("postgres", "postgresql"):
        # A pool per process: a request borrows a connection instead of opening one.
        return _Pool(**parse(url.replace("postgres://", "postgresql://", 1)),
                     max_connections=32, stale_timeout=300, timeout=10)
    raise ValueError(f"unsupported DATABASE_URL scheme: {parsed.scheme!r}")


class _Pool(PooledPostgresqlDatabase):
    """The PostgreSQL pool, without a ``SELECT 1`` round trip on every checkout.

    A connection returned to the pool is trusted by its local state: closed, or in an
    unknown transaction state, means dead; a transaction left open is rolled back. A
    connection the server dropped meanwhile fails its first query, which peewee reports
    and the next checkout replaces.
    """

    def _is_closed(self, conn) -> bool:  # type: ignore[override]
        if conn.closed:
            return True
        status = self._adapter.txn_status(conn)
        if status == self._adapter.txn_unknown:
            return True
        if status != self._adapter.txn_idle:
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001 - any failure means the connection is unusable
                return True
        return False


def init(url: str) -> peewee.Database:
    """Bind the models to the database at ``url`` and return it."""
    db = open_database(url)
    database.initialize(db)
    return db


def schema_statements(dialect: str) -> list[str]:
    """The statements of ``schema.sql`` that apply to ``dialect``."""
    current = "common"
    chunks: list[str] = []
    for line in SCHEMA_PATH.read_text().splitlines():
        marker = re.match(r"^--\s*@dialect\s+(\w+)", line)
        if marker:
            current = marker.group(1)
            continue
        if current in ("common", dialect):
            chunks.append(line)
    text = "\n".join(chunks)
    statements = []
    for raw in re.split(r";\s*$", text, flags=re.M):
        body = "\n".join(l for l in raw.splitlines() if not l.strip().startswith("--")).strip()
        if body:
            statements.append(body)
    return statements


def create_schema(db: peewee.Database) -> None:
    """Create every table and index (idempotent)."""
    with db.atomic():
        for statement in schema_statements(dialect_of(db)):
            db.execute_sql(statement)
