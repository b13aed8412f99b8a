"""The embedded pool's own writes, beside what every engine publishes.

Events and live legs go out through :class:`cpaas.telephony.publisher.Publisher`; a
worker also keeps a snapshot of every plan in progress in its own hash, so the pool can
close the CDRs of a worker that dies without saying goodbye (:mod:`pjsua_engine.reaper`).
"""
from __future__ import annotations

import json
from dataclasses import asdict

from cpaas.telephony.events import LegOutcome
from cpaas.telephony.plans import Plan
from cpaas.telephony.publisher import Publisher
from pjsua_engine import keys


class Reporter(Publisher):
    """A worker's publisher, with its plan snapshots (in the same ordered replay)."""

    @property
    def worker_id(self) -> str:
        """The worker this reporter writes for (its owner in the live registry)."""
        return self.owner

    def snapshot(self, plan: Plan, legs: dict[str, LegOutcome], dtmf: str,
                 ivr_result: str = "", transfer_to: str = "") -> None:
        """Record where a plan stands, for :func:`pjsua_engine.reaper.reap`."""
        state = json.dumps({"plan": json.loads(plan.to_json()),
                            "legs": {role: asdict(o) for role, o in legs.items()}, "dtmf": dtmf,
                            "ivr_result": ivr_result, "transfer_to": transfer_to})
        key, plan_id = keys.worker_plans(self.worker_id), plan.plan_id
        self.write("snapshot", lambda: self.r.hset(key, plan_id, state))

    def forget(self, plan: Plan) -> None:
        """The plan has fully ended: its snapshot is no longer needed."""
        key, plan_id = keys.worker_plans(self.worker_id), plan.plan_id
        self.write("forget", lambda: self.r.hdel(key, plan_id))
