"""The supervisor of the engine's worker processes (``python -m pjsua_engine``).

The wheel caps a process at four calls, so capacity is a pool of worker processes on
consecutive SIP ports (``sip_port``, ``sip_port + 1``, …). The pool restarts a worker
that dies and reaps what it held (see :mod:`pjsua_engine.reaper`) so no CDR stays open.
Workers are separate interpreters started with ``subprocess`` so a crash in pjlib never
takes the supervisor with it.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from cpaas.config import Settings
from pjsua_engine import keys
from pjsua_engine.reaper import reap

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
RTP_STRIDE = 200            # worker i takes RTP ports from settings.rtp_port + i * RTP_STRIDE
STOP_GRACE = 50.0           # a worker may need 45 s to disconnect a call nobody answers
QUICK_DEATH = 10.0          # a worker dying sooner than this after start backs off
MAX_BACKOFF = 30.0


@dataclass
class WorkerSlot:
    """One supervised worker position: fixed id and ports, changing process."""

    index: int
    worker_id: str
    port: int
    rtp_port: int
    proc: subprocess.Popen | None = None
    started: float = 0.0
    next_start: float = 0.0
    failures: int = 0


class Pool:
    """Starts, watches and stops ``settings.engine_workers`` worker processes."""

    def __init__(self, settings: Settings, r: redis.Redis | None = None,
                 host: str | None = None) -> None:
        self.settings = settings
        self.r = r or redis.Redis.from_url(settings.effective_redis_url)
        host = host or socket.gethostname()
        self.workers = [
            WorkerSlot(i, f"{host}:{settings.sip_port + i}", settings.sip_port + i,
                       settings.rtp_port + i * RTP_STRIDE)
            for i in range(settings.engine_workers)]
        self.host = host
        self._stop = threading.Event()
        self._beaten = 0.0

    def request_stop(self, *_: Any) -> None:
        """Signal handler: stop the workers and return from :meth:`run`."""
        self._stop.set()

    def run(self) -> int:
        """Supervise until asked to stop; return the process exit code."""
        log.info("engine pool starting",
                 extra={"workers": len(self.workers), "first_port": self.settings.sip_port})
        for slot in self.workers:
            # Left over from a previous pool that was killed outright.
            self._reap(slot, "engine_restarted")
            self._spawn(slot)
        # The heartbeat is written whenever the set of live workers changes, not only every
        # POOL_BEAT: a worker can announce itself ready within 0.2 s of its start, and
        # /healthz counts only the workers this heartbeat names alive.
        self._beat(time.monotonic())
        while not self._stop.wait(0.2):
            now = time.monotonic()
            changed = False
            for slot in self.workers:
                if slot.proc is not None and slot.proc.poll() is not None:
                    self._on_death(slot, now)
                    changed = True
                if slot.proc is None and now >= slot.next_start:
                    self._spawn(slot)
                    changed = True
            if changed or now - self._beaten >= keys.POOL_BEAT:
                self._beat(now)
        self._shutdown()
        return 0

    def _beat(self, now: float) -> None:
        """Say which workers are alive, for ``/healthz`` (see :data:`keys.POOL`)."""
        self._beaten = now
        alive = [s.worker_id for s in self.workers if s.proc is not None and s.proc.poll() is None]
        try:
            self.r.set(keys.pool_key(self.host), json.dumps({
                "configured": len(self.workers), "alive": alive}), ex=keys.POOL_TTL)
        except redis.RedisError:
            log.warning("heartbeat not written", extra={"host": self.host})

    def _spawn(self, slot: WorkerSlot) -> None:
        cmd = [sys.executable, "-m", "pjsua_engine.worker", "--id", slot.worker_id,
               "--port", str(slot.port), "--rtp-port", str(slot.rtp_port)]
        env = os.environ.copy()
        # The worker imports this package by name, whatever the pool's working directory.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        # pjlib prints a few banner lines on stdout before its log writer is installed;
        # everything else the worker says goes through logging on stderr.
        slot.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        slot.started = time.monotonic()
        try:
            self.r.hset(keys.WORKERS, slot.worker_id, json.dumps({
                "pid": slot.proc.pid, "port": slot.port, "rtp_port": slot.rtp_port,
                "started_at": time.time()}))
        except redis.RedisError:
            log.exception("cannot register worker", extra={"worker": slot.worker_id})
        log.info("worker started",
                 extra={"worker": slot.worker_id, "pid": slot.proc.pid, "port": slot.port})

    def _on_death(self, slot: WorkerSlot, now: float) -> None:
        code = slot.proc.returncode
        log.error("worker died",
                  extra={"worker": slot.worker_id, "pid": slot.proc.pid, "exit_code": code})
        slot.proc = None
        self._reap(slot, "engine_worker_died")
        if now - slot.started < QUICK_DEATH:
            slot.failures += 1
            delay = min(MAX_BACKOFF, 2.0 ** (slot.failures - 1))
        else:
            slot.failures, delay = 0, 0.0
        slot.next_start = now + delay

    def _reap(self, slot: WorkerSlot, cause: str) -> None:
        try:
            self.r.hdel(keys.WORKERS, slot.worker_id)
            plans = reap(self.r, slot.worker_id, cause, media_dir=self.settings.media_dir)
        except redis.RedisError:
            log.exception("cannot reap worker", extra={"worker": slot.worker_id})
            return
        if plans:
            log.warning("reaped worker",
                        extra={"worker": slot.worker_id, "plans": plans, "cause": cause})

    def _shutdown(self) -> None:
        log.info("engine pool stopping")
        running = [s for s in self.workers if s.proc is not None]
        for slot in running:
            slot.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for slot in running:
            try:
                slot.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker did not stop, killing it", extra={"worker": slot.worker_id})
                slot.proc.kill()
                slot.proc.wait()
            self._reap(slot, "engine_worker_died")
            slot.proc = None
        try:
            self.r.delete(keys.pool_key(self.host))
        except redis.RedisError:
            log.warning("heartbeat not removed", extra={"host": self.host})
        log.info("engine pool stopped")
