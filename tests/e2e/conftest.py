"""The whole platform for end-to-end call tests, every part real and separate.

One PostgreSQL, one Redis, the sandbox carrier (sipp), the embedded engine pool
(PJSUA2), a pool of RQ workers and the events process run as subprocesses, exactly
as the Procfile starts them; the API runs in-process through Flask's test client.
End-to-end tests run on PostgreSQL only (the data-layer tests cover SQLite).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis as redis_lib

from cpaas import accounts, config, db
from cpaas.app import create_app
from tests import servers
from tests.api.conftest import SECRETS, Api, body

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
#: Seconds an answered sandbox call lasts unless we hang up (short keeps tests fast).
HOLD = 12
ENGINE_WORKERS = 3


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "ab")
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Platform:
    """Handles on the running platform for tests."""

    def __init__(self, settings: config.Settings, env: dict[str, str], logs: Path,
                 carrier_log: Path) -> None:
        self.settings, self.env, self.logs, self.carrier_log = settings, env, logs, carrier_log
        self.media_port = 0  # the carrier's RTP port, set by the fixture
        self.redis = redis_lib.Redis.from_url(settings.redis_url)
        self.app = create_app(settings)

    def client(self, account: str = "account_1") -> Api:
        return Api(self.app.test_client(), account, SECRETS[account])

    def cdr(self, api: Api, request_id: str, timeout: float = 60) -> dict:
        """Wait for the request's CDR and return it."""
        def fetch():
            rows = body(api.post("/api/get_cdr_by_request_id", {"request_id": request_id}))["result"]
            return rows[0] if rows else None
        return wait_for(fetch, timeout, f"the CDR of {request_id}", 0.25)

    def live(self, api: Api, request_id: str, role: str, state: str | None = None,
             timeout: float = 30) -> dict:
        """Wait for a live leg of the request in a role (and state) and return it."""
        def find():
            for leg in body(api.get("/api/live_calls"))["result"]:
                if leg["request_id"] == request_id and leg["role"] == role and \
                        (state is None or leg["state"] == state):
                    return leg
            return None
        return wait_for(find, timeout, f"{role} leg of {request_id} in state {state}", 0.1)

    def invites(self, number: str) -> int:
        """INVITEs for ``number`` that reached the sandbox carrier."""
        from sandbox_carrier.carrier import count_invites

        return count_invites(self.carrier_log, number)


@pytest.fixture(scope="session")
def platform(tmp_path_factory, redis_url, postgres_url) -> Iterator[Platform]:
    data_dir = tmp_path_factory.mktemp("platform")
    logs = data_dir / "logs"
    logs.mkdir()
    carrier_port = servers.free_udp_port()
    media_port = servers.free_udp_port()
    sip_port = servers.free_udp_port()
    settings = config.Settings(data_dir=data_dir, database_url=postgres_url, redis_url=redis_url,
                               storage_url=str(data_dir / "bucket"), auth_fail_limit=10_000,
                               ring_timeout=8, admin_password="operator-pass",
                               sip_trunk=f"sip:{{number}}@127.0.0.1:{carrier_port}",
                               agent_uri=f"sip:{{ext}}@127.0.0.1:{carrier_port}",
                               engine_workers=ENGINE_WORKERS, sip_port=sip_port)
    database = db.init(postgres_url)
    db.create_schema(database)
    with database.connection_context():
        accounts.seed(data_dir, SECRETS, settings.admin_password)
    redis_lib.Redis.from_url(redis_url).flushdb()
    env = {**os.environ, "CPAAS_DATA_DIR": str(data_dir), "DATABASE_URL": postgres_url,
           "REDIS_URL": redis_url, "CPAAS_STORAGE_URL": settings.storage_url,
           "CPAAS_SIP_TRUNK": settings.sip_trunk, "CPAAS_AGENT_URI": settings.agent_uri,
           "CPAAS_ENGINE_WORKERS": str(ENGINE_WORKERS), "CPAAS_SIP_PORT": str(sip_port),
           "CPAAS_RING_TIMEOUT": str(settings.ring_timeout), "CPAAS_SANDBOX_PORT": str(carrier_port),
           "CPAAS_SANDBOX_HOLD": str(HOLD), "CPAAS_SANDBOX_MEDIA_PORT": str(media_port), "CPAAS_SANDBOX_LOG_DIR": str(logs / "carrier"),
           "PYTHONPATH": str(ROOT)}
    procs = [
        _spawn([sys.executable, "-m", "sandbox_carrier"], env, logs / "carrier.out"),
        _spawn([sys.executable, "-m", "pjsua_engine"], env, logs / "engine.out"),
        _spawn([str(VENV_BIN / "rq"), "worker-pool", "-n", "2", "-w", "rq.worker.SimpleWorker",
                "-u", redis_url, "calls"], env, logs / "worker.out"),
        _spawn([sys.executable, "-m", "cpaas.procs", "events"], env, logs / "events.out"),
    ]
    try:
        r = redis_lib.Redis.from_url(redis_url)
        wait_for(lambda: r.hlen("cpaas:engine:workers") >= ENGINE_WORKERS, 60, "engine workers")
        from sandbox_carrier.carrier import INVITE_LOG
        running = Platform(settings, env, logs, logs / "carrier" / INVITE_LOG)
        running.media_port = media_port
        yield running
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for name in ("engine.out", "worker.out", "events.out", "carrier.out"):
            tail = (logs / name).read_bytes()[-3000:].decode(errors="replace")
            sys.stderr.write(f"\n--- {name} (tail) ---\n{tail}\n")


@pytest.fixture
def api(platform) -> Api:
    return platform.client("account_1")


@pytest.fixture
def other(platform) -> Api:
    return platform.client("account_2")
