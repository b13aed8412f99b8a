"""Start the whole platform as the Procfile does, for end-to-end tests and benchmarks.

Every process is the real one, on private ports: the sandbox carrier (sipp), the
embedded engine pool (PJSUA2), RQ workers, the events process and, when asked, the
API under gunicorn. Redis and the database are passed in (tests/servers.py starts them).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import redis as redis_lib

from cpaas import accounts, config, db
from tests import servers

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SECRETS = {"account_1": "secret-one-0123456789", "account_2": "secret-two-0123456789"}


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Running:
    """Handles on a running platform."""

    settings: config.Settings
    env: dict[str, str]
    logs: Path
    carrier_log: Path
    media_port: int
    carrier_port: int
    base_url: str = ""
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def invites(self, number: str) -> int:
        """INVITEs for ``number`` that reached the sandbox carrier."""
        from sandbox_carrier.carrier import count_invites

        return count_invites(self.carrier_log, number)


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@contextmanager
def platform(data_dir: Path, redis_url: str, database_url: str, *, hold: float = 12,
             engine_workers: int = 3, rq_workers: int = 2, ring_timeout: int = 8,
             web: bool = False, extra_env: dict[str, str] | None = None) -> Iterator[Running]:
    """Run the platform until the block exits; prints each process's log tail at the end."""
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    carrier_port, sip_port = servers.free_udp_port(), servers.free_udp_ports(engine_workers)
    media_port = servers.free_media_port()
    settings = config.Settings(data_dir=data_dir, database_url=database_url, redis_url=redis_url,
                               storage_url=str(data_dir / "bucket"), auth_fail_limit=10_000,
                               ring_timeout=ring_timeout, admin_password="operator-pass",
                               sip_trunk=f"sip:{{number}}@127.0.0.1:{carrier_port}",
                               agent_uri=f"sip:{{ext}}@127.0.0.1:{carrier_port}",
                               engine_workers=engine_workers, sip_port=sip_port)
    database = db.init(database_url)
    db.create_schema(database)
    with database.connection_context():
        accounts.seed(data_dir, SECRETS, settings.admin_password)
    redis_lib.Redis.from_url(redis_url).flushdb()
    env = {**os.environ, "CPAAS_DATA_DIR": str(data_dir), "DATABASE_URL": database_url,
           "REDIS_URL": redis_url, "CPAAS_STORAGE_URL": settings.storage_url,
           "CPAAS_SIP_TRUNK": settings.sip_trunk, "CPAAS_AGENT_URI": settings.agent_uri,
           "CPAAS_ENGINE_WORKERS": str(engine_workers), "CPAAS_SIP_PORT": str(sip_port),
           "CPAAS_RING_TIMEOUT": str(ring_timeout), "CPAAS_SANDBOX_PORT": str(carrier_port),
           "CPAAS_SANDBOX_HOLD": str(hold), "CPAAS_SANDBOX_MEDIA_PORT": str(media_port),
           "CPAAS_SANDBOX_LOG_DIR": str(logs / "carrier"), "CPAAS_RQ_WORKERS": str(rq_workers),
           "CPAAS_AUTH_FAIL_LIMIT": "10000", "CPAAS_RTP_PORT": "12000", "PYTHONPATH": str(ROOT),
           **(extra_env or {})}
    running = Running(settings, env, logs, logs / "carrier" / "invites.log", media_port, carrier_port)
    names = ["carrier", "engine", "worker", "events", "transcriber"] + (["web"] if web else [])
    if web:
        port = servers.free_port()
        env["PORT"] = str(port)
        running.base_url = f"http://127.0.0.1:{port}"
    try:
        for name in names:
            running.procs[name] = _spawn([sys.executable, "-m", "cpaas.procs", name], env,
                                         logs / f"{name}.out")
        r = redis_lib.Redis.from_url(redis_url)
        on_freeswitch = bool(env.get("FREESWITCH_ESL"))
        if not on_freeswitch:   # with FREESWITCH_ESL the engine pool idles
            wait_for(lambda: r.hlen("cpaas:engine:workers") >= engine_workers, 90,
                     "engine workers")
        if web:
            import requests

            wait_for(lambda: _up(requests, running.base_url, on_freeswitch), 60, "the API")
        yield running
    finally:
        for proc in reversed(list(running.procs.values())):
            _stop(proc)
        for name in names:
            path = logs / f"{name}.out"
            if path.exists():
                tail = path.read_bytes()[-2500:].decode(errors="replace")
                sys.stderr.write(f"\n--- {name} (tail) ---\n{tail}\n")


def _up(requests, base_url: str, engine: bool = False) -> bool:
    """The API answers (and, with ``engine``, reports its engine ok: every node up)."""
    try:
        answer = requests.get(base_url + "/healthz", timeout=1)
        return answer.status_code == 200 and (
            not engine or answer.json()["response"].get("engine") == "ok")
    except (requests.RequestException, ValueError, KeyError):
        return False
