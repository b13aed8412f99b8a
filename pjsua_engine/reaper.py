"""Closing the books of a worker process that died.

A worker killed by the kernel (OOM, SIGKILL, a C assertion in pjlib) cannot report
its own legs. The pool calls :func:`reap` for it: every plan the worker held gets a
``leg.hangup`` for each leg still up and a ``plan.ended`` with cause
``engine_worker_died``, so CDRs are closed and the live registry stays truthful.
"""
from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import redis

from cpaas.telephony import ephemeral, live
from cpaas.telephony.events import EVENT_STREAM, EngineEvent, LegOutcome, dial_status_for
from pjsua_engine import keys

log = logging.getLogger(__name__)

CAUSE = "engine_worker_died"


def _emit(r: redis.Redis, type_: str, plan_id: str, account_id: str, *,
          leg: str | None = None, channel: str | None = None, data: dict | None = None) -> None:
    event = EngineEvent(type=type_, plan_id=plan_id, account_id=account_id, leg=leg,
                        channel=channel, data=data or {})
    r.xadd(EVENT_STREAM, event.to_fields())


def _close_leg(outcome: dict, now: float, answered: bool = False) -> dict:
    """Fill in the end of a leg that was still up when its worker died."""
    outcome = dict(outcome)
    outcome["ended_at"] = now
    if answered or outcome.get("answered_at"):
        outcome["dial_status"] = "ANSWER"
    else:
        outcome["dial_status"] = dial_status_for(outcome.get("sip_code"))
    return outcome


def reap(r: redis.Redis, worker_id: str, cause: str = CAUSE, *, media_dir: Path) -> int:
    """Close every plan and live leg ``worker_id`` held, deleting their per-call prompts
    (inside ``media_dir``); return how many plans."""
    now = time.time()
    closed_channels: set[str] = set()
    plans = 0
    for plan_id, raw in r.hgetall(keys.worker_plans(worker_id)).items():
        state = json.loads(raw)
        plan = state["plan"]
        account_id = plan["account_id"]
        legs: dict[str, dict] = {}
        for role, outcome in state.get("legs", {}).items():
            if outcome.get("ended_at") is None:
                outcome = _close_leg(outcome, now)
                _emit(r, "leg.hangup", plan["plan_id"], account_id, leg=role,
                      channel=outcome["channel"], data=outcome)
            live.remove(r, outcome["channel"], account_id)
            closed_channels.add(outcome["channel"])
            legs[role] = outcome
        _emit(r, "plan.ended", plan["plan_id"], account_id, data={
            "legs": legs, "dtmf": state.get("dtmf", ""), "recordings": [], "cause": cause})
        ephemeral.release(r, plan["plan_id"], plan.get("ephemeral_files", []), media_dir)
        plans += 1
        log.warning("reaped plan",
                    extra={"plan_id": plan["plan_id"], "worker": worker_id, "cause": cause})
    r.delete(keys.worker_plans(worker_id), keys.worker_cmd(worker_id))

    # Legs registered without a snapshot (a crash between the two writes).
    orphans: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
    for leg in live.for_owner(r, worker_id):
        if leg.channel in closed_channels:
            continue
        # The registry does not keep the answer time; the state says whether it was.
        outcome = _close_leg(asdict(LegOutcome(
            role=leg.role, number=leg.number, channel=leg.channel,
            started_at=leg.started_at)), now, answered=leg.state != "ringing")
        _emit(r, "leg.hangup", leg.request_id, leg.account_id, leg=leg.role,
              channel=leg.channel, data=outcome)
        live.remove(r, leg.channel, leg.account_id)
        orphans[(leg.request_id, leg.account_id)][leg.role] = outcome
    for (plan_id, account_id), legs in orphans.items():
        _emit(r, "plan.ended", plan_id, account_id,
              data={"legs": legs, "dtmf": "", "recordings": [], "cause": cause})
        plans += 1
    return plans
