"""SQLite writers queue on the writer gate: across processes, and never stuck."""
from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import peewee
import pytest

from cpaas import db


def _hold(path: str, started, seconds: float) -> None:
    # Only the gate, not SQLite's own lock: a write that waits, waits for the gate.
    database = db.open_database(f"sqlite:///{path}")
    database.execute_sql("INSERT INTO t (v) VALUES ('child')")
    database.gate.acquire()
    started.set()
    time.sleep(seconds)
    database.gate.release()


@pytest.fixture
def sqlite(tmp_path: Path) -> peewee.SqliteDatabase:
    database = db.open_database(f"sqlite:///{tmp_path / 'gate.sqlite3'}")
    database.execute_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    return database


def test_a_write_waits_for_another_process_transaction(sqlite, tmp_path):
    started = multiprocessing.get_context("fork").Event()
    child = multiprocessing.get_context("fork").Process(
        target=_hold, args=(str(tmp_path / "gate.sqlite3"), started, 1.0))
    child.start()
    assert started.wait(10)
    t0 = time.monotonic()
    sqlite.execute_sql("INSERT INTO t (v) VALUES ('parent')")
    waited = time.monotonic() - t0
    child.join(10)
    assert waited >= 0.5, "the write went in while the other process held the gate"
    rows = [r[0] for r in sqlite.execute_sql("SELECT v FROM t ORDER BY id")]
    assert rows == ["child", "parent"]


def test_reads_do_not_wait_for_a_writer(sqlite):
    sqlite.gate.acquire()
    counted: list = []
    try:
        reader = threading.Thread(target=lambda: counted.extend(
            sqlite.execute_sql("SELECT count(*) FROM t")), daemon=True)
        reader.start()
        reader.join(5)
        assert counted == [(0,)], "a read waited for the writer gate"
    finally:
        sqlite.gate.release()


def test_failed_commit_does_not_leave_the_gate_held(sqlite):
    sqlite.execute_sql("CREATE TABLE p (id INTEGER PRIMARY KEY)")
    sqlite.execute_sql("CREATE TABLE c (id INTEGER PRIMARY KEY, "
                       "p_id INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(peewee.IntegrityError):
        with sqlite.atomic():
            sqlite.execute_sql("INSERT INTO c (p_id) VALUES (42)")   # fails at COMMIT
    done = threading.Event()
    threading.Thread(target=lambda: (sqlite.gate.acquire(), sqlite.gate.release(), done.set()),
                     daemon=True).start()
    assert done.wait(5), "the gate stayed held after the failed commit"
