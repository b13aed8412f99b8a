"""One engine worker process: one PJSUA2 Endpoint running up to four calls.

The main thread owns pjlib: it polls SIP events, applies callback notices to the plan
runners, executes commands and advances the plans. Two helper threads never touch a
pjsua object: the inbox pops plans/commands from Redis, the finisher merges and uploads
recordings and announces ``plan.ended`` (:mod:`cpaas.telephony.ending`). Both are
registered with pjlib anyway, so a garbage collection that happens to run on them
cannot abort the process.

Run by the pool as ``python -m pjsua_engine.worker --id ID --port PORT --rtp-port PORT``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import pjsua2 as pj
import redis

from cpaas import logs
from cpaas.config import Settings, load
from cpaas.telephony.ending import EndedPlan
from cpaas.telephony.engine_client import LegAction
from cpaas.telephony.plans import SAFE_TOKEN_RE, Plan
from pjsua_engine import keys
from pjsua_engine.finisher import Finisher
from pjsua_engine.inbox import Inbox, Slots
from pjsua_engine.model import ActionError, Leg
from pjsua_engine.report import Reporter
from pjsua_engine.runner import PlanRunner
from pjsua_engine.sip import Notice, SipStack

log = logging.getLogger("pjsua_engine.worker")

# libHandleEvents returns as soon as SIP has something, so these slices only bound how
# late a plan's own timers (ring timeout, end of a prompt) and new plans are noticed.
# Measured: an idle worker polling every 10 ms costs 1.6 % of a core.
POLL_MS_BUSY = 20
POLL_MS_IDLE = 50
SHUTDOWN_GRACE = 45.0   # seconds to wait for calls to disconnect when stopping
#: A loop round longer than this (beyond its poll slice) is logged: at half of SIP's T1
#: (500 ms) the far end starts retransmitting to a process that is not reading.
STALL_WARN = 0.25


@dataclass
class WorkerContext:
    """What a plan runner needs from its worker."""

    settings: Settings
    stack: SipStack
    sink: deque[Notice]
    reporter: Reporter
    finisher: Finisher

    def finish(self, ended: EndedPlan) -> None:
        """Hand a plan whose calls are gone to the finisher thread."""
        self.finisher.submit(ended)


class Worker:
    """The process-wide state of one engine worker."""

    def __init__(self, settings: Settings, worker_id: str, port: int, rtp_port: int,
                 r: redis.Redis | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.r = r or redis.Redis.from_url(settings.effective_redis_url)
        self.stack = SipStack(settings, port, rtp_port, host=settings.sip_host)
        self.reporter = Reporter(self.r, worker_id)
        self.slots = Slots(keys.MAX_CALLS_PER_WORKER)
        self.sink: deque[Notice] = deque()
        self.runners: list[PlanRunner] = []
        self.stopping = False

    def request_stop(self, *_: Any) -> None:
        """Signal handler: finish the calls in progress, take no new plans, exit."""
        if not self.stopping:
            log.info("worker stopping", extra={"worker": self.worker_id})
        self.stopping = True

    def run(self) -> None:
        """Serve plans and commands until asked to stop, then shut down in order."""
        self.stack.start()
        register = self._register_thread
        finisher = Finisher(self.reporter, self.settings.media_dir, on_start=register)
        inbox = Inbox(self.r, self.worker_id, self.slots, self.reporter, on_start=register,
                      wake=self._waker())
        ctx = WorkerContext(self.settings, self.stack, self.sink, self.reporter, finisher)
        finisher.start()
        inbox.start()
        self._announce()
        log.info("worker ready", extra={"worker": self.worker_id})
        deadline = None
        parent = os.getppid()
        while True:
            poll_ms = POLL_MS_BUSY if self.runners else POLL_MS_IDLE
            started = time.monotonic()
            self.stack.handle_events(poll_ms)
            polled = time.monotonic()
            if os.getppid() != parent:
                # The pool is gone (killed outright): do not linger holding its ports.
                self.request_stop()
            self._drain_notices()
            if self.stopping and deadline is None:
                deadline = time.monotonic() + SHUTDOWN_GRACE
                inbox.stop()
                for runner in self.runners:
                    runner.end("engine_shutdown")
            drained = time.monotonic()
            self._drain_inbox(inbox, ctx)
            placed = time.monotonic()
            self._poll_runners()
            self._check_stall(started, polled, drained, placed, poll_ms)
            if self.stopping and (not self.runners or time.monotonic() > deadline):
                break
        # Shutdown order (GUIDE §1): calls are disconnected and every runner has
        # dropped its calls, players and recorders; only then is the library destroyed.
        for runner in self.runners:
            log.error("plan still up at exit", extra={"plan_id": runner.plan.plan_id})
        self.runners.clear()
        self.sink.clear()
        finisher.stop()
        self.stack.destroy()
        log.info("worker stopped", extra={"worker": self.worker_id})

    def _check_stall(self, started: float, polled: float, drained: float, placed: float,
                     poll_ms: int) -> None:
        """Log a loop round that kept SIP unread too long, with where the time went."""
        now = time.monotonic()
        if now - started - poll_ms / 1000 <= STALL_WARN:
            return
        log.warning("main loop stalled", extra={
            "worker": self.worker_id, "poll_ms": round((polled - started) * 1000),
            "notices_ms": round((drained - polled) * 1000),
            "inbox_ms": round((placed - drained) * 1000),
            "runners_ms": round((now - placed) * 1000), "plans": len(self.runners)})

    def _waker(self) -> Callable[[], None]:
        """Something the inbox calls to cut the main loop's poll short.

        libHandleEvents returns as soon as a packet arrives, so a SIP keep-alive (a bare
        CRLF pair, RFC 5626, which PJSIP drops silently) sent to our own SIP port makes a
        new plan start now instead of after the rest of an idle poll slice.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target = (self.stack.host, self.stack.port)

        def wake() -> None:
            try:
                sock.sendto(b"\r\n\r\n", target)
            except OSError:
                log.debug("wake-up datagram not sent")

        return wake

    def _announce(self) -> None:
        """Tell the pool (and anyone watching) that this worker takes plans now."""
        try:
            self.r.hset(keys.WORKERS, self.worker_id, json.dumps({
                "pid": os.getpid(), "port": self.stack.port, "rtp_port": self.stack.rtp_port,
                "ready_at": time.time()}))
        except redis.RedisError:
            log.exception("cannot announce worker", extra={"worker": self.worker_id})

    def _register_thread(self) -> None:
        pj.Endpoint.instance().libRegisterThread(f"py-{self.worker_id}")

    def _drain_notices(self) -> None:
        while self.sink:
            kind, leg, *args = self.sink.popleft()
            try:
                leg.runner.on_notice(kind, leg, *args)
            except Exception:
                log.exception("notice failed", extra={"plan_id": leg.runner.plan.plan_id})
                leg.runner.end("error")

    def _drain_inbox(self, inbox: Inbox, ctx: WorkerContext) -> None:
        while not inbox.items.empty():
            item = inbox.items.get_nowait()
            if item[0] == "plan":
                self._start_plan(item[1], item[2], ctx)
            else:
                self._command(item[1])

    def _start_plan(self, plan: Plan, slots: int, ctx: WorkerContext) -> None:
        in_use = self.stack.calls_in_use()
        if self.stopping or (in_use is not None and in_use >= keys.MAX_CALLS_PER_WORKER):
            # Popped just before the stop, or pjsua still holds every slot (a slot
            # the accounting thought free): another worker can place it now.
            self._requeue(plan, slots)
            return
        runner = PlanRunner(plan, slots, ctx)
        self.runners.append(runner)
        try:
            runner.start()
        except Exception:
            log.exception("plan failed to start", extra={"plan_id": plan.plan_id})
            runner.end("error")

    def _requeue(self, plan: Plan, slots: int) -> None:
        """Give a plan this worker cannot start back to the head of its queue."""
        log.info("plan handed back", extra={"plan_id": plan.plan_id, "stopping": self.stopping})
        self.r.lpush(keys.plan_queue(slots), plan.to_json())
        self.reporter.forget(plan)
        self.slots.release(slots, self._lingering())

    def _poll_runners(self) -> None:
        now = time.monotonic()
        freed = 0
        for runner in list(self.runners):
            try:
                runner.poll(now)
            except Exception:
                log.exception("plan failed", extra={"plan_id": runner.plan.plan_id})
                runner.end("error")
            if runner.done:
                self.runners.remove(runner)
                freed += runner.slots
        # Every round, so slots pjsua lets go of late become free as soon as it does.
        self.slots.release(freed, self._lingering())

    def _lingering(self) -> int | None:
        """Slots pjsua holds for calls that no live leg owns any more (None: unknown).

        pjsua keeps a call we hung up until the far end answers our BYE (32 s when it
        never does), although it reported DISCONNECTED at once; a plan that ended does
        not free its slot before pjsua does.
        """
        in_use = self.stack.calls_in_use()
        if in_use is None:
            return None
        live = sum(1 for runner in self.runners for leg in runner.all_legs
                   if leg.call is not None)
        return max(0, in_use - live)

    def _find_leg(self, channel: str) -> Leg | None:
        for runner in self.runners:
            for leg in runner.all_legs:
                if leg.channel == channel and leg.live:
                    return leg
        return None

    def _command(self, raw: bytes) -> None:
        """Execute one live-leg action and push the reply for the waiting caller."""
        try:
            msg = json.loads(raw)
            request_id = msg["request_id"]
            action = LegAction(**msg["action"])
            channel = msg["channel"]
        except (ValueError, KeyError, TypeError):
            log.warning("malformed command dropped")
            return
        if not isinstance(request_id, str) or not SAFE_TOKEN_RE.fullmatch(request_id):
            log.warning("command with unusable request id dropped")
            return
        if msg.get("expires") and time.time() > msg["expires"]:
            log.warning("stale command dropped", extra={"request_id": request_id})
            return
        leg = self._find_leg(channel)
        if leg is None:
            self._reply(request_id, ok=False, error="not_found")
            return
        try:
            leg.runner.act(leg, action)
        except ActionError as exc:
            self._reply(request_id, ok=False, error=str(exc))
            return
        except Exception:
            log.exception("action failed", extra={"channel": channel, "action": action.kind})
            self._reply(request_id, ok=False, error="internal error")
            return
        log.info("action done", extra={"channel": channel, "action": action.kind})
        self._reply(request_id, ok=True)

    def _reply(self, request_id: str, **body: Any) -> None:
        key = keys.reply_key(request_id)
        try:
            pipe = self.r.pipeline()
            pipe.rpush(key, json.dumps(body))
            pipe.expire(key, keys.REPLY_TTL)
            pipe.execute()
        except redis.RedisError:
            log.exception("cannot reply", extra={"request_id": request_id})


class _WorkerTag(logging.Filter):
    """Adds the worker id to every log record of the process (pjsip's lines too)."""

    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self.worker_id = worker_id

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "worker"):
            record.worker = self.worker_id
        return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of one worker process."""
    parser = argparse.ArgumentParser(description="cpaas embedded engine worker")
    parser.add_argument("--id", required=True, help="worker id (owner in the live registry)")
    parser.add_argument("--port", type=int, required=True, help="local SIP UDP port")
    parser.add_argument("--rtp-port", type=int, required=True, help="first local RTP port")
    args = parser.parse_args(argv)
    logs.setup()
    for handler in logging.getLogger().handlers:
        # Sixty workers share one log: every line says which one wrote it.
        handler.addFilter(_WorkerTag(args.id))
    worker = Worker(load(), args.id, args.port, args.rtp_port)
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
