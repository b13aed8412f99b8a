"""Kill tests: servers that persist as ``make run`` runs them, killed and started again.

PostgreSQL runs with ``fsync`` and ``synchronous_commit`` on and Redis with its
append-only file (``tests/servers.py``, ``durable=True``), so what a server acknowledged
before a SIGKILL is still there after the restart, as in production. Each module gets
its own pair, since the tests kill them.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import peewee
import psycopg2
import pytest
import redis as redis_lib

from cpaas import accounts, config, db
from cpaas.cdr import consumer
from cpaas.models import Account, Cdr, CdrStats
from cpaas.telephony.events import EVENT_STREAM, EngineEvent
from tests import servers
from tests.launcher import SECRETS, wait_for


@pytest.fixture(scope="module")
def durable_pg() -> Iterator[servers.PostgresServer]:
    server = servers.PostgresServer(durable=True).create()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def durable_redis() -> Iterator[servers.RedisServer]:
    server = servers.RedisServer(durable=True).start()
    try:
        yield server
    finally:
        server.stop()


def make_settings(data_dir: Path, pg: servers.PostgresServer, rd: servers.RedisServer,
                  **overrides) -> config.Settings:
    """Settings over the durable servers, with the schema made and the accounts seeded."""
    settings = config.Settings(data_dir=data_dir, database_url=pg.url, redis_url=rd.url,
                               storage_url=str(data_dir / "bucket"), admin_password="operator-pass",
                               **overrides)
    database = db.init(pg.url)
    db.create_schema(database)
    with database.connection_context():
        accounts.seed(data_dir, SECRETS, settings.admin_password)
    return settings


def account_id(name: str = "account_1") -> str:
    with db.database.connection_context():
        return Account.get(Account.name == name).id


@contextmanager
def running_consumer(settings: config.Settings) -> Iterator[None]:
    """The events consumer (the real loop of the ``events`` process) in a thread."""
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(settings, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(15)


def insert_request(conn, request_id: str, account: str, status: str = "queued") -> None:
    """A call_request row written over a plain connection (commit is the caller's)."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO call_request (id, account_id, kind, agent_number, customer_number,"
            " caller_id, recording_option, transcript, destination_context, call_direction,"
            " campaign_id, list_id, status, created_at) VALUES (%s, %s, 'otp', '',"
            " '919900000102', '15168148111', 'off', 'off', 'otp', 'outbound-api', NULL, NULL,"
            " %s, now() AT TIME ZONE 'utc')", (request_id, account, status))


def ended(request_id: str, account: str, *, at: float | None = None, cause: str = "normal",
          answered: bool = True) -> EngineEvent:
    """A ``plan.ended`` of a one-leg call, as an engine reports it."""
    start = (at or time.time()) - 5
    leg = {"role": "customer", "number": "919900000102", "channel": f"PJSIP/c-{request_id}",
           "started_at": start, "answered_at": start + 1 if answered else None,
           "ended_at": start + 4, "sip_code": 200 if answered else 486,
           "dial_status": "ANSWER" if answered else "BUSY"}
    return EngineEvent("plan.ended", request_id, account, at=at or time.time(),
                       data={"legs": {"customer": leg}, "dtmf": "", "recordings": [],
                             "cause": cause})


def publish(r: redis_lib.Redis, event: EngineEvent) -> None:
    r.xadd(EVENT_STREAM, event.to_fields())


def cdrs_of(request_id: str) -> list[Cdr]:
    try:
        with db.database.connection_context():
            return list(Cdr.select().where(Cdr.request_id == request_id))
    except peewee.OperationalError:   # a pooled connection from before a restart
        return []


def wait_cdr(request_id: str, timeout: float = 30) -> Cdr:
    return wait_for(lambda: (cdrs_of(request_id) or [None])[0], timeout, f"CDR of {request_id}")


def assert_counters_match_recount() -> None:
    """Every account's counters equal a count of its CDR rows, status by status."""
    from cpaas.cdr.writer import COUNTER_FOR

    with db.database.connection_context():
        for stats in CdrStats.select().where(CdrStats.campaign_id == ""):
            rows = list(Cdr.select(Cdr.dial_status).where(Cdr.account_id == stats.account_id))
            assert stats.total_calls == len(rows), stats.account_id
            for status, column in COUNTER_FOR.items():
                assert getattr(stats, column) == sum(r.dial_status == status for r in rows), column


def pg_connect(pg: servers.PostgresServer):
    return psycopg2.connect(pg.url)
