"""The test rig of the engine tests: sipp far ends, the engine pool, the event stream."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import redis

from cpaas.telephony.events import EVENT_STREAM, EngineEvent
from pjsua_engine import keys
from tests.launcher import wait_for as wait_until  # one polling helper for all tests
from tests.servers import udp_free, free_udp_ports

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).resolve().parent / "scenarios"


class EventLog:
    """Reads the engine event stream, filtered by plan."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r

    def of(self, plan_id: str) -> list[EngineEvent]:
        """Every event of one plan so far, in stream order."""
        events = (EngineEvent.from_fields(fields) for _, fields in self.r.xrange(EVENT_STREAM))
        return [e for e in events if e.plan_id == plan_id]

    def wait(self, plan_id: str, type_: str, timeout: float = 30.0,
             where: Callable[[EngineEvent], bool] = lambda e: True) -> EngineEvent:
        """The first event of ``type_`` for the plan (optionally matching ``where``)."""
        def find() -> EngineEvent | None:
            return next((e for e in self.of(plan_id) if e.type == type_ and where(e)), None)
        return wait_until(find, timeout, f"{type_} of plan {plan_id}", 0.05)

    def ended(self, plan_id: str, timeout: float = 30.0) -> EngineEvent:
        """The plan's ``plan.ended`` event."""
        return self.wait(plan_id, "plan.ended", timeout)


@dataclass
class Sipp:
    """One sipp UAS process on a loopback port."""

    scenario: str
    port: int
    workdir: Path
    extra: list[str] = field(default_factory=list)
    echo: bool = True
    proc: subprocess.Popen | None = None

    @property
    def messages(self) -> Path:
        """sipp's log of every SIP message it sent and received."""
        return self.workdir / f"sipp-{self.port}-{self.scenario}.msg"

    @property
    def errors(self) -> Path:
        """sipp's stderr (a file: a pipe nobody reads could fill and stall it)."""
        return self.workdir / f"sipp-{self.port}-{self.scenario}.err"

    def start(self) -> "Sipp":
        """Run sipp and wait until it listens on its SIP port."""
        media = free_udp_ports(4, 30000, 39000)
        cmd = ["sipp", "-sf", str(SCENARIOS / f"{self.scenario}.xml"), "-i", "127.0.0.1",
               "-p", str(self.port), "-mi", "127.0.0.1", "-mp", str(media), "-nostdin",
               "-aa", "-trace_msg", "-message_file", str(self.messages), *self.extra]
        if self.echo:
            cmd.append("-rtp_echo")
        with open(self.errors, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 10
        while udp_free(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"sipp exited: {self.errors.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("sipp did not bind its port")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop sipp (its port is free again when this returns)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def invites(self, request_user: str | None = None) -> int:
        """Distinct INVITEs received (by Call-ID), optionally only to one user part."""
        if not self.messages.exists():
            return 0
        text = self.messages.read_text(errors="replace")
        user = re.escape(request_user) if request_user else r"[^@\s]+"
        found = re.findall(rf"^INVITE sip:{user}@.*?^Call-ID:\s*(\S+)", text, re.M | re.S)
        return len(set(found))


@dataclass
class PoolInfo:
    """The running engine pool of the test package and where its far ends go."""

    proc: subprocess.Popen
    sip_port: int
    trunk_port: int
    agent_port: int
    workdir: Path
    storage: Path
    log: Path


def start_pool(redis_url: str, workdir: Path, workers: int, trunk_port: int,
               agent_port: int, extra_env: dict[str, str] | None = None) -> PoolInfo:
    """Start ``python -m pjsua_engine`` and wait until every worker is ready."""
    sip_port = free_udp_ports(workers)
    storage = workdir / "bucket"
    log_path = workdir / f"pool-{sip_port}.log"
    env = {k: v for k, v in os.environ.items()
           if k not in ("FREESWITCH_ESL", "CPAAS_SIP_USER", "CPAAS_SIP_PASSWORD")}
    env.update({
        "REDIS_URL": redis_url, "CPAAS_DATA_DIR": str(workdir), "CPAAS_STORAGE_URL": str(storage),
        "CPAAS_SIP_TRUNK": f"sip:{{number}}@127.0.0.1:{trunk_port}",
        "CPAAS_AGENT_URI": f"sip:{{ext}}@127.0.0.1:{agent_port}",
        "CPAAS_SIP_PORT": str(sip_port), "CPAAS_ENGINE_WORKERS": str(workers),
        "CPAAS_RING_TIMEOUT": "10",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    })
    env.update(extra_env or {})
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "pjsua_engine"], cwd=REPO, env=env,
                                stdout=log_file, stderr=subprocess.STDOUT)
    info = PoolInfo(proc, sip_port, trunk_port, agent_port, workdir, storage, log_path)
    r = redis.Redis.from_url(redis_url)
    ids = {f"{socket.gethostname()}:{sip_port + i}" for i in range(workers)}

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"pool exited: {log_path.read_text()[-3000:]}")
        entries = {k.decode(): json.loads(v) for k, v in r.hgetall(keys.WORKERS).items()}
        return all("ready_at" in entries.get(i, {}) for i in ids)
    wait_until(ready, 30, "engine workers")
    r.close()
    return info


def stop_pool(info: PoolInfo) -> int:
    """SIGTERM the pool and return its exit code."""
    if info.proc.poll() is None:
        info.proc.send_signal(signal.SIGTERM)
        try:
            info.proc.wait(60)
        except subprocess.TimeoutExpired:
            info.proc.kill()
            info.proc.wait()
    return info.proc.returncode
