"""The worker's reader thread: plans and commands from Redis into a local queue.

BLPOP on several lists at once returns from the first non-empty one in key order, so
the key list is also the priority: commands first, then plan queues from the largest
plan that still fits the free call slots down to single-leg plans. The reader reserves
the slots of a plan it pops before handing it over, so it never pops more than fits.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from cpaas.telephony.events import PlanEnded
from cpaas.telephony.plans import Plan
from pjsua_engine import keys
from pjsua_engine.report import Reporter

log = logging.getLogger(__name__)

POP_TIMEOUT = 0.3   # seconds; also how soon freed slots are noticed


class Slots:
    """Free call slots of the process, shared by the reader and the main thread.

    A slot is free when no plan has reserved it and pjsua does not still hold it for a
    call that is over on our side (``lingering``: our BYE not answered yet).
    """

    def __init__(self, total: int) -> None:
        self._total = total
        self._reserved = 0
        self._lingering = 0
        self._lock = threading.Lock()

    @property
    def free(self) -> int:
        """Slots neither reserved by a plan nor still held by pjsua."""
        with self._lock:
            return self._total - self._reserved - self._lingering

    def reserve(self, n: int) -> None:
        """Take ``n`` slots for a plan (callers checked they are free)."""
        with self._lock:
            self._reserved += n

    def release(self, n: int, lingering: int | None = None) -> None:
        """Give back a finished plan's slots and, in the same step, say how many slots
        pjsua still holds for calls over on our side, so the reader never sees a slot
        free that pjsua would refuse."""
        with self._lock:
            self._reserved -= n
            if lingering is not None:
                self._lingering = lingering


class Inbox(threading.Thread):
    """Pops plans and commands; puts ``("plan", Plan, n)`` and ``("cmd", raw)`` on a queue."""

    def __init__(self, r: redis.Redis, worker_id: str, slots: Slots, reporter: Reporter,
                 on_start: Callable[[], None] | None = None,
                 wake: Callable[[], None] | None = None) -> None:
        super().__init__(name="inbox", daemon=True)
        self.r = r
        self.worker_id = worker_id
        self.slots = slots
        self.reporter = reporter
        self.on_start = on_start
        self.wake = wake or (lambda: None)
        self.items: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._halt = threading.Event()

    def stop(self) -> None:
        """Stop popping (a plan popped meanwhile is pushed back for other workers)."""
        self._halt.set()
        self.join()

    def run(self) -> None:
        """Thread body."""
        if self.on_start is not None:
            self.on_start()
        cmd_key = keys.worker_cmd(self.worker_id)
        while not self._halt.is_set():
            free = self.slots.free
            wanted = [cmd_key] + [keys.plan_queue(n)
                                  for n in range(keys.MAX_CALLS_PER_WORKER, 0, -1) if n <= free]
            try:
                item = self.r.blpop(wanted, timeout=POP_TIMEOUT)
            except redis.RedisError:
                log.exception("redis unavailable, retrying")
                time.sleep(1.0)
                continue
            if item is None:
                continue
            key, raw = item[0].decode(), item[1]
            if key == cmd_key:
                self.items.put(("cmd", raw))
                self.wake()
            elif self._halt.is_set():
                self.r.lpush(key, raw)   # shutting down: leave it to another worker
            else:
                self._take_plan(key, raw)

    def _take_plan(self, key: str, raw: bytes) -> None:
        n = int(key.rsplit(":", 1)[1])
        try:
            plan = Plan.from_json(raw)
        except Exception:
            log.exception("dropping an unreadable plan", extra={"queue": key})
            return
        try:
            plan.validate()
        except ValueError as exc:
            # Close its CDR instead of dialing anything it carries.
            log.error("refusing an invalid plan", extra={"plan_id": plan.plan_id, "error": str(exc)})
            self.reporter.publish(PlanEnded(plan_id=plan.plan_id, account_id=plan.account_id,
                                            cause="invalid_plan"))
            return
        self.slots.reserve(n)
        # Snapshot first, so a crash from here on is still reaped by the pool.
        self.reporter.snapshot(plan, {}, "")
        self.items.put(("plan", plan, n))
        self.wake()
