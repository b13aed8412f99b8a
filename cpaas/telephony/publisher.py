"""What an engine process tells the rest of the platform, through Redis.

Engine events go to the shared stream, live legs to the live registry. Any engine (the
embedded pool's workers, a FreeSWITCH listener) publishes through one
:class:`Publisher`, which keeps the writes Redis refuses and replays them in order.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis

from cpaas.telephony import live
from cpaas.telephony.events import EVENT_STREAM, Event, LegOutcome, encode
from cpaas.telephony.plans import Plan

log = logging.getLogger(__name__)

#: Writes kept while Redis is away; bounded, so a long outage cannot exhaust memory.
BACKLOG_MAX = 50_000
RETRY_EVERY = 0.5   # seconds between tries while Redis is away


class Publisher:
    """Writes events and live legs for one engine process (thread-safe).

    A Redis outage must not take the calls of the process down with it, nor lose what
    they report (a lost ``plan.ended`` is a lost CDR): a write that fails is kept, and
    it and every later write are replayed in order by a background thread once Redis
    answers again. Each write's data is fixed when it is made, not when it is replayed.

    With ``background`` every write goes to that thread, in order, and the caller never
    waits for Redis: a FreeSWITCH node driver runs all its plans on one thread, which
    spent 44 % of its time waiting for Redis replies at 30 calls/s (py-spy), and its
    plans fell behind. :meth:`drain` waits for the writes made so far.
    """

    def __init__(self, r: redis.Redis, owner: str, *, background: bool = False) -> None:
        self.r = r
        self.owner = owner   # names the process in the live registry (actions go to it)
        self._background = background
        self._backlog: deque[tuple[int, str, Callable[[], Any]]] = deque()
        self._seq = 0
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)
        self._emptied = threading.Condition(self._lock)
        self._flusher: threading.Thread | None = None

    def write(self, operation: str, write: Callable[[], Any]) -> None:
        """Run one Redis write now (or hand it to the background thread), or keep it for
        replay, after any write kept before it.

        Engines route their own Redis writes (state snapshots) through here too, so that
        every write of the process lands in the order it was made.
        """
        with self._lock:
            if not self._background and not self._backlog:
                try:
                    write()
                    return
                except redis.RedisError:
                    log.exception("redis write failed; kept for replay",
                                  extra={"operation": operation})
            if len(self._backlog) >= BACKLOG_MAX:
                _, dropped, _ = self._backlog.popleft()
                log.error("redis write backlog full; oldest write dropped",
                          extra={"operation": dropped})
            self._seq += 1
            self._backlog.append((self._seq, operation, write))
            self._queued.notify()
            if self._flusher is None or not self._flusher.is_alive():
                target = self._write_behind if self._background else self._flush
                self._flusher = threading.Thread(target=target, name="report-backlog",
                                                 daemon=True)
                self._flusher.start()

    def drain(self, timeout: float) -> bool:
        """Wait until every write made so far has landed; False if ``timeout`` passed
        first (Redis away)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._backlog:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._emptied.wait(left)
        return True

    def _flush(self) -> None:
        """Replay kept writes in order until none is left."""
        while True:
            with self._lock:
                if not self._backlog:
                    log.info("redis writes replayed")
                    self._emptied.notify_all()
                    return
                _, _, write = self._backlog[0]
                try:
                    write()
                    self._backlog.popleft()
                    continue
                except redis.RedisError:
                    pass
            time.sleep(RETRY_EVERY)

    def _write_behind(self) -> None:
        """Background mode: run the queued writes in order, for ever. Each runs outside
        the lock (this is the only thread that runs them), so writers never wait on it;
        one that fails is tried again, with every later one behind it."""
        failing = False
        while True:
            with self._lock:
                while not self._backlog:
                    self._emptied.notify_all()
                    self._queued.wait()
                seq, operation, write = self._backlog[0]
            try:
                write()
            except redis.RedisError:
                if not failing:
                    log.exception("redis write failed; kept for replay",
                                  extra={"operation": operation})
                failing = True
                time.sleep(RETRY_EVERY)
                continue
            except Exception:
                # Not Redis being away: trying again cannot help, and holding it would
                # hold every write behind it for ever.
                log.exception("redis write dropped", extra={"operation": operation})
            if failing:
                log.info("redis writes replayed")
                failing = False
            with self._lock:
                # (unless a full backlog dropped it meanwhile)
                if self._backlog and self._backlog[0][0] == seq:
                    self._backlog.popleft()

    def publish(self, event: Event) -> None:
        """Append one engine event to the shared stream."""
        fields = encode(event)
        self.write("emit", lambda: self.r.xadd(EVENT_STREAM, fields))
        log.info("event", extra={"type": event.TYPE, "plan_id": event.plan_id,
                                 "leg": getattr(event, "leg", None),
                                 "channel": getattr(event, "channel", None)})

    def leg_started(self, plan: Plan, outcome: LegOutcome) -> None:
        """Register a leg we are about to dial in the live registry."""
        leg = live.LiveLeg(
            channel=outcome.channel, account_id=plan.account_id, request_id=plan.plan_id,
            kind=plan.kind, role=outcome.role, number=outcome.number, state="ringing",
            started_at=outcome.started_at, owner=self.owner)
        self.write("leg_started", lambda: live.put(self.r, leg))

    def leg_state(self, channel: str, state: str) -> None:
        """Move a live leg to ringing/answered/bridged/held."""
        self.write("leg_state", lambda: live.set_state(self.r, channel, state))

    def leg_ended(self, plan: Plan, channel: str) -> None:
        """Drop a leg from the live registry."""
        account_id = plan.account_id
        self.write("leg_ended", lambda: live.remove(self.r, channel, account_id))
