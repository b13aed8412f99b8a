"""Versioned schema migrations, applied by ``python -m cpaas init`` on SQLite and PostgreSQL.

Versions
    ``schema_version`` holds one row per version the database has reached (``id``,
    ``applied_at``, UTC). Version 1 is the schema of the first release, which had no such
    table: a database with that release's tables and no ``schema_version`` is taken as
    version 1 and brought forward. ``schema.sql`` is always the full current schema: a
    fresh database gets it and every version at once.

Adding a migration
    1. Add ``cpaas/migrations/NNNN_what_it_does.sql`` here, NNNN the next number (0003,
       0004, …; the numbers run without gaps). Statements end with ``;`` at the end of a
       line; ``-- @dialect sqlite`` / ``-- @dialect postgresql`` / ``-- @dialect common``
       sections work as in schema.sql.
    2. Make the same change in ``schema.sql`` (fresh installs) and in ``cpaas/models.py``.
       tests/data/test_migrations.py fails until a fresh install and an upgraded
       first-release database have the same tables, columns, indexes and constraints on
       both databases (column order aside: ``ADD COLUMN`` appends).
    3. A file runs in one transaction together with its version row, so it is applied
       whole or not at all: use transactional DDL only (no ``CREATE INDEX CONCURRENTLY``,
       no ``VACUUM``). SQLite's ``ALTER TABLE … ADD COLUMN`` needs a default for a
       ``NOT NULL`` column; other changes to an SQLite table rebuild it (create the new
       table, copy, drop, rename) in the same file. A migration over the bulk tables
       (``contact``, ``cdr``: millions of rows) holds its lock for as long as it runs.
    4. Never edit a released migration: write another.

Why SQL files rather than ``playhouse.migrate``: the schema is written in SQL
(``schema.sql``, which the models only mirror), so a migration in the same language can be
read beside it, says exactly what runs on each database (partial indexes, types), and stays
true to the schema of its time, where a migration written with model fields would change
meaning when the models change.

Concurrency: each step (creating or recognising the schema, each migration) is one
transaction that first takes the database's schema lock (``pg_advisory_xact_lock`` on
PostgreSQL; on SQLite, ``BEGIN IMMEDIATE`` behind the writer gate of :mod:`cpaas.db`) and
only then reads the version, so ``init`` runs at once wait for each other and apply each
migration once.
"""
from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import peewee

from cpaas.db import SCHEMA_PATH, dialect_of, execute_sql_file

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent
#: The PostgreSQL advisory lock that serialises schema changes ("cpaas" in ASCII).
LOCK_KEY = int.from_bytes(b"cpaas", "big")
#: The tables of the first release (version 1), which kept no version.
BASELINE_TABLES = ("account", "announce_template", "contact_list", "dnd_list", "campaign",
                   "callback", "call_request", "cdr_stats", "contact", "dnd_contact", "cdr")
#: Kept here rather than in schema.sql: a first-release database gets it too.
VERSION_TABLE = ("CREATE TABLE schema_version (id INTEGER NOT NULL PRIMARY KEY, "
                 "applied_at TIMESTAMP NOT NULL)")
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    """The database cannot be brought to (or is not at) the version this code needs."""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    path: Path


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    """The migration files of ``directory``, in version order."""
    return sorted(p for p in directory.glob("*.sql") if _FILE_NAME.match(p.name))


def load(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations of ``directory``; their numbers must run 2, 3, … without a gap."""
    found = [Migration(int(_FILE_NAME.match(p.name).group(1)), p)  # type: ignore[union-attr]
             for p in migration_files(directory)]
    for expected, migration in enumerate(found, start=2):
        if migration.version != expected:
            raise MigrationError(f"{migration.path.name}: expected migration number {expected:04d}")
    return found


def latest_version(directory: Path = MIGRATIONS_DIR) -> int:
    """The version a database reaches once every migration of ``directory`` is applied."""
    found = load(directory)
    return found[-1].version if found else 1


@contextmanager
def locked(db: peewee.Database) -> Iterator[None]:
    """A transaction holding the schema lock: one holder at a time across processes."""
    if dialect_of(db) == "postgresql":
        with db.atomic():
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            yield
    else:
        with db.atomic(lock_type="IMMEDIATE"):
            yield


def current_version(db: peewee.Database) -> int | None:
    """The database's version, or None for an empty database.

    Raises :class:`MigrationError` for a database that holds some of the first release's
    tables but not all (and no version): not one this code made, so not one to alter.
    """
    tables = set(db.get_tables())
    if "schema_version" in tables:
        version = db.execute_sql("SELECT MAX(id) FROM schema_version").fetchone()[0]
        if version is None:
            raise MigrationError("schema_version is empty: the database's version is unknown")
        return int(version)
    present = [t for t in BASELINE_TABLES if t in tables]
    if not present:
        return None
    missing = [t for t in BASELINE_TABLES if t not in tables]
    if missing:
        raise MigrationError(f"the database has no schema_version and lacks the tables "
                             f"{', '.join(missing)}: not a cpaas database this code can upgrade")
    return 1


def check(db: peewee.Database) -> None:
    """Raise :class:`MigrationError` unless the database is at the current version."""
    with db.connection_context():
        version = current_version(db)
    wanted = latest_version()
    if version != wanted:
        raise MigrationError(f"the database schema is at version {version or 'none'}, this code "
                             f"needs version {wanted}: run `python -m cpaas init`")


def upgrade(db: peewee.Database, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Bring the database to the latest version of ``directory``; returns the versions
    applied (none when it is already there). Each step is its own locked transaction."""
    migrations = load(directory)
    target = migrations[-1].version if migrations else 1
    applied: list[int] = []
    with db.connection_context():
        while True:
            with locked(db):
                done = _step(db, migrations, target)
            if done is None:
                return applied
            applied.extend(done)


def _step(db: peewee.Database, migrations: list[Migration], target: int) -> list[int] | None:
    """Inside the lock: take the database one step forward; returns the versions whose SQL
    ran ([] when version 1 was only recognised), None when it is at ``target``."""
    version = current_version(db)
    if version is None:
        return _install(db)
    if "schema_version" not in db.get_tables():
        db.execute_sql(VERSION_TABLE)
        _record(db, [1])
        log.info("first-release schema recognised as version 1", extra={"dialect": dialect_of(db)})
        return []
    if version > target:
        raise MigrationError(f"the database schema is at version {version}, newer than this "
                             f"code's {target}: run the release that made it")
    if version == target:
        return None
    migration = migrations[version - 1]  # migrations[0] is version 2
    try:
        execute_sql_file(db, migration.path)
    except peewee.DatabaseError as err:
        raise MigrationError(f"{migration.path.name} failed, nothing of it applied: {err}") from err
    _record(db, [migration.version])
    log.info("schema migration applied", extra={"version": migration.version,
                                                "migration": migration.path.name,
                                                "dialect": dialect_of(db)})
    return [migration.version]


def _install(db: peewee.Database) -> list[int]:
    """A fresh database: schema.sql is the current schema, so it gets every version of
    the package's migrations (a test folder's later ones follow as migrations)."""
    execute_sql_file(db, SCHEMA_PATH)
    db.execute_sql(VERSION_TABLE)
    versions = list(range(1, latest_version() + 1))
    _record(db, versions)
    log.info("schema created", extra={"version": versions[-1], "dialect": dialect_of(db)})
    return versions


def _record(db: peewee.Database, versions: list[int]) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    for version in versions:
        db.execute_sql(f"INSERT INTO schema_version (id, applied_at) VALUES ({db.param}, {db.param})",
                       (version, now))
