"""The events consumer acknowledges an event only once what it wrote is committed.

Real PostgreSQL (durable, killed and restarted), real Redis, the consumer's own loop.
"""
from __future__ import annotations

import dataclasses
import secrets
import time

import pytest
import redis as redis_lib

from cpaas import cli
from cpaas.app import create_app
from tests.api.conftest import body
from tests.launcher import wait_for
from tests.reliability.conftest import (account_id, assert_counters_match_recount, cdrs_of,
                                        ended, insert_request, make_settings, pg_connect,
                                        publish, running_consumer, wait_cdr)

DEAD_STREAM = "cpaas:events:dead"


@pytest.fixture
def settings(tmp_path, durable_pg, durable_redis):
    redis_lib.Redis.from_url(durable_redis.url).flushall()
    return make_settings(tmp_path, durable_pg, durable_redis, event_retry_limit=3.0)


@pytest.fixture
def r(durable_redis):
    return redis_lib.Redis.from_url(durable_redis.url)


def _rid() -> str:
    return secrets.token_hex(5)


def test_an_event_for_a_request_not_yet_committed_waits_for_the_commit(settings, durable_pg, r):
    account = account_id()
    rid = _rid()
    conn = pg_connect(durable_pg)
    insert_request(conn, rid, account)          # not committed yet
    with running_consumer(settings):
        publish(r, ended(rid, account))
        time.sleep(2.0)                         # the consumer has seen it several times
        assert cdrs_of(rid) == []
        conn.commit()
        cdr = wait_cdr(rid)
    conn.close()
    assert cdr.dial_status == "ANSWER" and len(cdrs_of(rid)) == 1


def test_an_event_delivered_twice_writes_one_cdr(settings, durable_pg, r):
    account = account_id()
    rid = _rid()
    with pg_connect(durable_pg) as conn:
        insert_request(conn, rid, account)
    with running_consumer(settings):
        publish(r, ended(rid, account, at=time.time() - 30))
        publish(r, ended(rid, account, at=time.time(), cause="engine_worker_died"))
        wait_cdr(rid)
        time.sleep(1.5)
    assert len(cdrs_of(rid)) == 1
    assert_counters_match_recount()


def test_an_unreadable_event_goes_to_the_dead_letter_stream_and_the_rest_is_written(
        settings, durable_pg, r):
    account = account_id()
    rid = _rid()
    with pg_connect(durable_pg) as conn:
        insert_request(conn, rid, account)
    with running_consumer(settings):
        r.xadd("cpaas:events", {"event": "{not json"})
        publish(r, ended(rid, account))
        wait_cdr(rid)
        wait_for(lambda: r.xlen(DEAD_STREAM) == 1, 10, "the unreadable event in the dead letters")
    entry = r.xrange(DEAD_STREAM)[0][1]
    assert entry[b"event"] == b"{not json" and entry[b"reason"].startswith(b"unreadable")


def test_database_down_past_the_retry_window_dead_letters_then_replay_writes_once(
        settings, durable_pg, r, monkeypatch):
    account = account_id()
    rids = [_rid() for _ in range(3)]
    with pg_connect(durable_pg) as conn:
        for rid in rids:
            insert_request(conn, rid, account)
    app = create_app(settings)
    with running_consumer(settings):
        durable_pg.kill()
        try:
            for rid in rids:
                publish(r, ended(rid, account))
            # Retried with backoff for the 3 s window, then moved aside.
            wait_for(lambda: r.xlen(DEAD_STREAM) == 3, 30, "three dead-lettered events")
        finally:
            durable_pg.start()
        time.sleep(1.0)
        assert all(cdrs_of(rid) == [] for rid in rids)
        assert body(app.test_client().get("/healthz"))["dead_events"] == "3"
        for name, value in {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
                            "CPAAS_DATA_DIR": str(settings.data_dir)}.items():
            monkeypatch.setenv(name, value)
        assert cli.main(["events", "replay-dead"]) == 0
        for rid in rids:
            wait_cdr(rid)
    assert r.xlen(DEAD_STREAM) == 0
    assert all(len(cdrs_of(rid)) == 1 for rid in rids)
    assert body(create_app(settings).test_client().get("/healthz"))["dead_events"] == "0"
    assert_counters_match_recount()


def test_database_restart_within_the_window_loses_no_event(settings, durable_pg, r):
    settings = dataclasses.replace(settings, event_retry_limit=120.0)
    account = account_id()
    rids = [_rid() for _ in range(20)]
    with pg_connect(durable_pg) as conn:
        for rid in rids:
            insert_request(conn, rid, account)
    with running_consumer(settings):
        for rid in rids[:10]:
            publish(r, ended(rid, account))
        durable_pg.kill()
        for rid in rids[10:]:
            publish(r, ended(rid, account))
        time.sleep(2.0)
        durable_pg.start()
        for rid in rids:
            wait_cdr(rid, 60)
    assert all(len(cdrs_of(rid)) == 1 for rid in rids)
    assert r.xlen(DEAD_STREAM) == 0
    assert_counters_match_recount()
