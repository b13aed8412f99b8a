"""Everything a worker tells the rest of the platform, through Redis.

Engine events go to the shared stream, live legs to the live registry, and a snapshot
of every plan in progress to the worker's own hash so the pool can close the CDRs of
a worker that dies without saying goodbye. A write Redis refuses is kept and replayed.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import redis

from cpaas.telephony import live
from cpaas.telephony.events import EVENT_STREAM, EngineEvent, LegOutcome
from cpaas.telephony.plans import Plan
from pjsua_engine import keys

log = logging.getLogger(__name__)

#: Writes kept while Redis is away; bounded, so a long outage cannot exhaust memory.
BACKLOG_MAX = 50_000
RETRY_EVERY = 0.5   # seconds between tries while Redis is away


class Reporter:
    """Writes events, live legs and plan snapshots for one worker (thread-safe).

    A Redis outage must not take the calls of the process down with it, nor lose what
    they report (a lost ``plan.ended`` is a lost CDR): a write that fails is kept, and
    it and every later write are replayed in order by a background thread once Redis
    answers again. Each write's data is fixed when it is made, not when it is replayed.
    """

    def __init__(self, r: redis.Redis, worker_id: str) -> None:
        self.r = r
        self.worker_id = worker_id
        self._backlog: deque[tuple[str, Callable[[], Any]]] = deque()
        self._lock = threading.Lock()
        self._flusher: threading.Thread | None = None

    def _do(self, operation: str, write: Callable[[], Any]) -> None:
        with self._lock:
            if not self._backlog:
                try:
                    write()
                    return
                except redis.RedisError:
                    log.exception("redis write failed; kept for replay",
                                  extra={"operation": operation})
            if len(self._backlog) >= BACKLOG_MAX:
                dropped, _ = self._backlog.popleft()
                log.error("redis write backlog full; oldest write dropped",
                          extra={"operation": dropped})
            self._backlog.append((operation, write))
            if self._flusher is None or not self._flusher.is_alive():
                self._flusher = threading.Thread(target=self._flush, name="report-backlog",
                                                 daemon=True)
                self._flusher.start()

    def _flush(self) -> None:
        """Replay kept writes in order until none is left."""
        while True:
            with self._lock:
                if not self._backlog:
                    log.info("redis writes replayed")
                    return
                operation, write = self._backlog[0]
                try:
                    write()
                    self._backlog.popleft()
                    continue
                except redis.RedisError:
                    pass
            time.sleep(RETRY_EVERY)

    def emit(self, plan: Plan, type_: str, *, leg: str | None = None,
             channel: str | None = None, data: dict[str, Any] | None = None) -> None:
        """Append one engine event to the shared stream."""
        event = EngineEvent(type=type_, plan_id=plan.plan_id, account_id=plan.account_id,
                            leg=leg, channel=channel, data=data or {})
        fields = event.to_fields()
        self._do("emit", lambda: self.r.xadd(EVENT_STREAM, fields))
        log.info("event", extra={"type": type_, "plan_id": plan.plan_id, "leg": leg,
                                 "channel": channel})

    def leg_started(self, plan: Plan, outcome: LegOutcome) -> None:
        """Register a leg we are about to dial in the live registry."""
        leg = live.LiveLeg(
            channel=outcome.channel, account_id=plan.account_id, request_id=plan.plan_id,
            kind=plan.kind, role=outcome.role, number=outcome.number, state="ringing",
            started_at=outcome.started_at, owner=self.worker_id)
        self._do("leg_started", lambda: live.put(self.r, leg))

    def leg_state(self, channel: str, state: str) -> None:
        """Move a live leg to ringing/answered/bridged/held."""
        self._do("leg_state", lambda: live.set_state(self.r, channel, state))

    def leg_ended(self, plan: Plan, channel: str) -> None:
        """Drop a leg from the live registry."""
        account_id = plan.account_id
        self._do("leg_ended", lambda: live.remove(self.r, channel, account_id))

    def snapshot(self, plan: Plan, legs: dict[str, LegOutcome], dtmf: str) -> None:
        """Record where a plan stands, for :func:`pjsua_engine.reaper.reap`."""
        state = json.dumps({"plan": json.loads(plan.to_json()),
                            "legs": {role: asdict(o) for role, o in legs.items()}, "dtmf": dtmf})
        key, plan_id = keys.worker_plans(self.worker_id), plan.plan_id
        self._do("snapshot", lambda: self.r.hset(key, plan_id, state))

    def forget(self, plan: Plan) -> None:
        """The plan has fully ended: its snapshot is no longer needed."""
        key, plan_id = keys.worker_plans(self.worker_id), plan.plan_id
        self._do("forget", lambda: self.r.hdel(key, plan_id))
