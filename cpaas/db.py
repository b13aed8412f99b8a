"""Database connection (peewee) and the reading of SQL files (``schema.sql``, migrations)."""
from __future__ import annotations

import fcntl
import os
import re
import threading
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
        return _GatedSqlite(str(path), pragmas={
            "journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1,
            "busy_timeout": 10000, "cache_size": -64000,
        }, check_same_thread=False, lock_type="IMMEDIATE")
    if parsed.scheme in ("postgres", "postgresql"):
        # A pool per process: a request borrows a connection instead of opening one.
        return _Pool(**parse(url.replace("postgres://", "postgresql://", 1)),
                     max_connections=32, stale_timeout=300, timeout=10)
    raise ValueError(f"unsupported DATABASE_URL scheme: {parsed.scheme!r}")


class WriterGate:
    """One SQLite writer at a time across threads and processes, queued by the kernel.

    SQLite's own wait for its write lock (``busy_timeout``) sleeps 1, 2, 5 … 100 ms
    between tries and is not fair: under a steady stream of writes from several
    processes an unlucky writer keeps losing and waits seconds (measured: p99 1.6 s at
    500 req/s while p50 was 5 ms). Writers here first take a thread lock, then an
    exclusive ``flock`` on a file beside the database; the kernel wakes the next waiter
    as soon as it is released, and releases it itself if its holder dies.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._owner: int | None = None

    def acquire(self) -> None:
        """Wait for the gate."""
        self._thread_lock.acquire()
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise
        self._owner = threading.get_ident()

    def release(self) -> None:
        """Let the next writer in; a no-op for a thread that does not hold the gate
        (peewee rolls back after a failed COMMIT, and both end the transaction)."""
        if self._owner != threading.get_ident():
            return
        self._owner = None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)  # type: ignore[arg-type]
        finally:
            self._thread_lock.release()

    def after_fork(self) -> None:
        """A forked child gets its own open file (a shared one would share the lock)."""
        self._fd = None
        self._owner = None
        self._thread_lock = threading.Lock()


class _GatedSqlite(peewee.SqliteDatabase):
    """SQLite whose writes pass a :class:`WriterGate`: a transaction holds it from BEGIN
    to COMMIT/ROLLBACK, a write outside a transaction for its one statement. Reads
    (WAL) never wait for it."""

    def __init__(self, database: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(database, **kwargs)
        self.gate = WriterGate(database + ".writers")
        os.register_at_fork(after_in_child=self.gate.after_fork)

    def begin(self, lock_type: str | None = None) -> None:
        self.gate.acquire()
        try:
            super().begin(lock_type)
        except BaseException:
            self.gate.release()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.gate.release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.gate.release()

    def execute_sql(self, sql: str, params=None):  # type: ignore[no-untyped-def, override]
        if self.in_transaction() or sql.lstrip()[:6].upper() in ("SELECT", "PRAGMA"):
            return super().execute_sql(sql, params)
        self.gate.acquire()
        try:
            return super().execute_sql(sql, params)
        finally:
            self.gate.release()


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


def sql_statements(path: Path, dialect: str) -> list[str]:
    """The statements of an SQL file (``schema.sql``, a migration) that apply to ``dialect``.

    Statements end with ``;`` at the end of a line; a ``-- @dialect sqlite`` /
    ``-- @dialect postgresql`` / ``-- @dialect common`` line starts a section that
    applies to that database only (``common``: both).
    """
    current = "common"
    chunks: list[str] = []
    for line in path.read_text().splitlines():
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


def execute_sql_file(db: peewee.Database, path: Path) -> None:
    """Run every statement of ``path`` for ``db``'s dialect (inside the caller's transaction)."""
    for statement in sql_statements(path, dialect_of(db)):
        db.execute_sql(statement)


def create_schema(db: peewee.Database) -> list[int]:
    """Bring the database to the current schema version: a fresh one gets ``schema.sql``,
    an older one its pending migrations (:mod:`cpaas.migrations`). Idempotent; returns the
    versions applied."""
    from cpaas import migrations  # it builds on this module

    return migrations.upgrade(db)
