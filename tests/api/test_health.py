"""``/`` points to the docs; ``/healthz`` reports the engine and the sandbox carrier.

The engine pool and the carrier are the real ones (PJSUA2 workers, sipp), started here.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path

import pytest
import redis as redis_lib

import sandbox_carrier
from cpaas import app as app_module
from pjsua_engine import keys
from tests.api.helpers import ok_body
from tests.engine.rig import start_pool, stop_pool
from tests.launcher import wait_for
from tests.servers import free_udp_port


@pytest.fixture
def carrier_port(monkeypatch) -> int:
    """A sandbox carrier address nobody listens on yet, as the platform's trunk."""
    port = free_udp_port()
    monkeypatch.setenv("CPAAS_SANDBOX_PORT", str(port))
    monkeypatch.delenv("CPAAS_SANDBOX_HOST", raising=False)
    return port


def health_app(settings, carrier_port: int, **changes):
    return app_module.create_app(dataclasses.replace(
        settings, sip_trunk=f"sip:{{number}}@127.0.0.1:{carrier_port}", **changes))


def health(application) -> dict:
    return ok_body(application.test_client().get("/healthz"))


def test_root_redirects_to_the_docs(app):
    resp = app.test_client().get("/")
    assert resp.status_code == 302
    assert resp.headers["Location"] in ("/docs", "http://localhost/docs")
    assert app.test_client().get("/", follow_redirects=True).status_code == 200


def test_no_engine_and_no_carrier_are_reported_without_failing(settings, carrier_port):
    inner = health(health_app(settings, carrier_port, engine_workers=2))
    assert (inner["status"], inner["database"], inner["redis"]) == ("ok", "ok", "ok")
    assert (inner["engine"], inner["engine_type"], inner["engine_workers"]) == \
        ("down", "embedded", "0/2")
    assert inner["sandbox_carrier"] == "down"


def test_a_running_carrier_is_ok_and_a_stopped_one_down(settings, carrier_port, tmp_path):
    application = health_app(settings, carrier_port)
    proc = sandbox_carrier.start("127.0.0.1", carrier_port, hold=5)
    try:
        assert health(application)["sandbox_carrier"] == "ok"
    finally:
        sandbox_carrier.stop(proc)
    wait_for(lambda: health(application)["sandbox_carrier"] == "down", 10, "carrier down")


def test_a_real_trunk_has_no_sandbox_carrier(settings, carrier_port):
    application = app_module.create_app(dataclasses.replace(
        settings, sip_trunk="sip:{number}@127.0.0.1:5999"))
    assert health(application)["sandbox_carrier"] == "not used"


def test_freeswitch_configured_is_reported_honestly(settings, carrier_port):
    """No node driver beats for this node (no events process runs here): down, 0 of 1."""
    inner = health(health_app(settings, carrier_port, freeswitch_esl="127.0.0.1:8021"))
    assert (inner["engine"], inner["engine_type"]) == ("down", "freeswitch")
    assert inner["engine_nodes"] == "0/1"
    assert inner["sandbox_carrier"] == "not used"


def test_engine_workers_alive_then_pool_killed(app, settings, carrier_port, tmp_path):
    """Ready workers read as ok; a pool killed outright (its registry left behind) as down."""
    r = redis_lib.Redis.from_url(settings.redis_url)
    pool = start_pool(settings.redis_url, Path(tmp_path), 2, free_udp_port(), free_udp_port())
    application = health_app(settings, carrier_port, engine_workers=2)
    try:
        inner = health(application)
        assert (inner["engine"], inner["engine_workers"]) == ("ok", "2/2")
        pids = [json.loads(v)["pid"] for v in r.hgetall(keys.WORKERS).values()]
        os.kill(pool.proc.pid, signal.SIGKILL)
        pool.proc.wait()
        for pid in pids:  # the pool's own children, orphaned by the kill
            os.kill(pid, signal.SIGKILL)
        assert r.hlen(keys.WORKERS) == 2  # the registry still names them
        wait_for(lambda: health(application)["engine"] == "down", 15, "engine down")
        assert health(application)["engine_workers"] == "0/2"
    finally:
        stop_pool(pool)
        r.delete(keys.WORKERS)


def test_a_killed_worker_reads_degraded_until_its_replacement_is_ready(app, settings,
                                                                       carrier_port, tmp_path):
    """One of two workers killed: degraded 1/2; the pool starts another, then ok 2/2."""
    r = redis_lib.Redis.from_url(settings.redis_url)
    pool = start_pool(settings.redis_url, Path(tmp_path), 2, free_udp_port(), free_udp_port())
    application = health_app(settings, carrier_port, engine_workers=2)
    try:
        assert health(application)["engine"] == "ok"
        wid, entry = sorted(r.hgetall(keys.WORKERS).items())[0]
        os.kill(json.loads(entry)["pid"], signal.SIGKILL)
        # Killed within QUICK_DEATH of its start, it is replaced only after a 1 s back-off,
        # plus the new worker's own start: time enough to read the degraded state.
        wait_for(lambda: health(application)["engine_workers"] == "1/2", 10, "one worker down")
        assert health(application)["engine"] == "degraded"
        wait_for(lambda: health(application)["engine"] == "ok", 30, "replacement ready")
        assert health(application)["engine_workers"] == "2/2"
        assert json.loads(r.hget(keys.WORKERS, wid))["pid"] != json.loads(entry)["pid"]
    finally:
        stop_pool(pool)
        r.delete(keys.WORKERS)
