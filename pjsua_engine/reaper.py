"""Closing the books of a worker process that died.

A worker killed by the kernel (OOM, SIGKILL, a C assertion in pjlib) cannot report
its own legs. The pool calls :func:`reap` for it: every plan the worker held gets a
``leg.hangup`` for each leg still up and a ``plan.ended`` with cause
``engine_worker_died``, so CDRs are closed and the live registry stays truthful.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import defaultdict
from pathlib import Path

import redis

from cpaas.telephony import causes, ephemeral, live
from cpaas.telephony.events import LegHangup, LegOutcome, PlanEnded, publish
from cpaas.telephony.outcomes import LegEnd, dial_status
from pjsua_engine import keys

log = logging.getLogger(__name__)

CAUSE = "engine_worker_died"


def _close_leg(outcome: LegOutcome, now: float, answered: bool = False) -> LegOutcome:
    """Fill in the end of a leg that was still up when its worker died."""
    answered = answered or bool(outcome.answered_at)
    return dataclasses.replace(outcome, ended_at=now, dial_status=dial_status(
        LegEnd(answered=answered, sip_code=outcome.sip_code)))


def _hung_up(r: redis.Redis, plan_id: str, account_id: str, outcome: LegOutcome) -> None:
    publish(r, LegHangup(plan_id=plan_id, account_id=account_id, outcome=outcome))
    live.remove(r, outcome.channel, account_id)


def reap(r: redis.Redis, worker_id: str, cause: str = CAUSE, *, media_dir: Path) -> int:
    """Close every plan and live leg ``worker_id`` held, deleting their per-call prompts
    (inside ``media_dir``); return how many plans."""
    now = time.time()
    closed_channels: set[str] = set()
    plans = 0
    for raw in r.hgetall(keys.worker_plans(worker_id)).values():
        state = json.loads(raw)
        plan = state["plan"]
        plan_id, account_id = plan["plan_id"], plan["account_id"]
        legs: dict[str, LegOutcome] = {}
        for role, data in state.get("legs", {}).items():
            outcome = LegOutcome.from_dict(role, data)
            if outcome.ended_at is None:
                outcome = _close_leg(outcome, now)
                _hung_up(r, plan_id, account_id, outcome)
            else:
                live.remove(r, outcome.channel, account_id)
            closed_channels.add(outcome.channel)
            legs[role] = outcome
        # A plan that had not placed a leg yet sent no INVITE: saying so lets a
        # campaign dial that contact again rather than count a try that never left.
        publish(r, PlanEnded(plan_id=plan_id, account_id=account_id, legs=legs,
                             dtmf=state.get("dtmf", ""),
                             cause=cause if legs else causes.not_placed(cause),
                             ivr_result=state.get("ivr_result", ""),
                             transfer_to=state.get("transfer_to", "")))
        ephemeral.release(r, plan_id, plan.get("ephemeral_files", []), media_dir)
        plans += 1
        log.warning("reaped plan", extra={"plan_id": plan_id, "worker": worker_id, "cause": cause})
    r.delete(keys.worker_plans(worker_id), keys.worker_cmd(worker_id))

    # Legs registered without a snapshot (a crash between the two writes).
    orphans: dict[tuple[str, str], dict[str, LegOutcome]] = defaultdict(dict)
    for leg in live.for_owner(r, worker_id):
        if leg.channel in closed_channels:
            continue
        # The registry does not keep the answer time; the state says whether it was.
        outcome = _close_leg(LegOutcome(role=leg.role, number=leg.number, channel=leg.channel,
                                        started_at=leg.started_at),
                             now, answered=leg.state != "ringing")
        _hung_up(r, leg.request_id, leg.account_id, outcome)
        orphans[(leg.request_id, leg.account_id)][leg.role] = outcome
    for (plan_id, account_id), legs in orphans.items():
        publish(r, PlanEnded(plan_id=plan_id, account_id=account_id, legs=legs, cause=cause))
        plans += 1
    return plans
