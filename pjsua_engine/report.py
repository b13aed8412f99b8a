"""Everything a worker tells the rest of the platform, through Redis.

Engine events go to the shared stream, live legs to the live registry, and a snapshot
of every plan in progress to the worker's own hash so the pool can close the CDRs of
a worker that dies without saying goodbye.
"""
from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

import redis

from cpaas.telephony import live
from cpaas.telephony.events import EVENT_STREAM, EngineEvent, LegOutcome
from cpaas.telephony.plans import Plan
from pjsua_engine import keys

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def _tolerant(fn: F) -> F:
    """A Redis outage must not take the calls of the process down with it: log and go on."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError:
            log.exception("redis write failed", extra={"operation": fn.__name__})
            return None
    return wrapper  # type: ignore[return-value]


class Reporter:
    """Writes events, live legs and plan snapshots for one worker (thread-safe)."""

    def __init__(self, r: redis.Redis, worker_id: str) -> None:
        self.r = r
        self.worker_id = worker_id

    @_tolerant
    def emit(self, plan: Plan, type_: str, *, leg: str | None = None,
             channel: str | None = None, data: dict[str, Any] | None = None) -> None:
        """Append one engine event to the shared stream."""
        event = EngineEvent(type=type_, plan_id=plan.plan_id, account_id=plan.account_id,
                            leg=leg, channel=channel, data=data or {})
        self.r.xadd(EVENT_STREAM, event.to_fields())
        log.info("event", extra={"type": type_, "plan_id": plan.plan_id, "leg": leg,
                                 "channel": channel})

    @_tolerant
    def leg_started(self, plan: Plan, outcome: LegOutcome) -> None:
        """Register a leg we are about to dial in the live registry."""
        live.put(self.r, live.LiveLeg(
            channel=outcome.channel, account_id=plan.account_id, request_id=plan.plan_id,
            kind=plan.kind, role=outcome.role, number=outcome.number, state="ringing",
            started_at=outcome.started_at, owner=self.worker_id))

    @_tolerant
    def leg_state(self, channel: str, state: str) -> None:
        """Move a live leg to ringing/answered/bridged/held."""
        live.set_state(self.r, channel, state)

    @_tolerant
    def leg_ended(self, plan: Plan, channel: str) -> None:
        """Drop a leg from the live registry."""
        live.remove(self.r, channel, plan.account_id)

    @_tolerant
    def snapshot(self, plan: Plan, legs: dict[str, LegOutcome], dtmf: str) -> None:
        """Record where a plan stands, for :func:`pjsua_engine.reaper.reap`."""
        state = {"plan": json.loads(plan.to_json()),
                 "legs": {role: asdict(o) for role, o in legs.items()}, "dtmf": dtmf}
        self.r.hset(keys.worker_plans(self.worker_id), plan.plan_id, json.dumps(state))

    @_tolerant
    def forget(self, plan: Plan) -> None:
        """The plan has fully ended: its snapshot is no longer needed."""
        self.r.hdel(keys.worker_plans(self.worker_id), plan.plan_id)
