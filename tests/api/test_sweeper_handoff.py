"""The sweeper on a real database and Redis: a ``dialing`` request that no engine holds is
``never handed`` when its job died before the handoff (nothing was dialed: a campaign
dials the contact again) and ``not dialed`` when an engine lost the plan it was handed
(its INVITE may have left); a job too slow for the sweeper dials nothing."""
from __future__ import annotations

import dataclasses
from datetime import timedelta, timezone

import pytest
import redis as redis_lib

from cpaas.calls import service as calls
from cpaas.calls.state import CallState
from cpaas.calls.sweeper import Sweeper
from cpaas.cdr.consumer import GROUP
from cpaas.db import database
from cpaas.models import Account, CallRequest
from cpaas.telephony import events, handoff
from cpaas.telephony.engine_client import engine_client
from cpaas.telephony.events import EVENT_STREAM
from cpaas.telephony.plans import Dial, Plan
from cpaas.validation import utcnow
from pjsua_engine import keys


@pytest.fixture
def r(app, settings) -> redis_lib.Redis:
    """Redis emptied after the app's own flush (so the group below survives)."""
    client = redis_lib.Redis.from_url(settings.redis_url)
    client.flushdb()
    # The consumer has read everything (so the sweeper may settle at once).
    client.xgroup_create(EVENT_STREAM, GROUP, id="$", mkstream=True)
    return client


@pytest.fixture
def sweeper(app, settings, r) -> Sweeper:
    return Sweeper(r, dataclasses.replace(settings, sweep_grace=0.0))


def _dialing(account_id: str, request_id: str) -> Plan:
    """A campaign request claimed a minute ago, and its plan."""
    with database.connection_context():
        calls.record_request(account_id, request_id, "campaign", agent_number="",
                             customer_number="919900000111", caller_id="8040000000",
                             recording_option="off", transcript="off",
                             destination_context="", call_direction="outbound-campaign")
        CallRequest.update(status=CallState.DIALING.value,
                           created_at=utcnow() - timedelta(minutes=1)).where(
            CallRequest.id == request_id).execute()
    return Plan(plan_id=request_id, account_id=account_id, kind="campaign",
                verbs=[Dial(leg="customer", number="919900000111", caller_id="8040000000",
                            ring_timeout=8)], max_legs=1)


def _account(api) -> str:
    with database.connection_context():
        return Account.get(Account.name == "account_1").id


def _swept(r: redis_lib.Redis) -> dict[str, str]:
    """Plan id → cause of the plan.ended events the sweeper published."""
    out = {}
    for _, fields in r.xrange(EVENT_STREAM):
        event = events.decode(fields)
        if isinstance(event, events.PlanEnded):
            out[event.plan_id] = event.cause
    return out


def _sweep(sweeper: Sweeper) -> None:
    """One pass, by a Redis that has kept its data for the last hour."""
    an_hour_ago = (utcnow() - timedelta(hours=1)).replace(tzinfo=timezone.utc).timestamp()
    sweeper.r.set(handoff.EPOCH_KEY, f"{an_hour_ago:.6f}")
    with database.connection_context():
        sweeper.sweep()


def test_a_job_that_died_before_its_handoff_is_never_handed_and_can_never_be(api, r, sweeper,
                                                                             settings):
    plan = _dialing(_account(api), "0000000001")
    _sweep(sweeper)
    assert _swept(r) == {plan.plan_id: "swept: never handed"}
    # The job was only slow: its handoff now fails, and no engine queue holds the plan.
    with pytest.raises(handoff.Revoked):
        engine_client(settings, r).originate(plan)
    assert r.llen(keys.plan_queue(1)) == 0


def test_a_plan_an_engine_took_and_lost_may_have_been_dialed(api, r, sweeper, settings):
    plan = _dialing(_account(api), "0000000002")
    engine_client(settings, r).originate(plan)
    r.delete(keys.plan_queue(1))       # an engine popped it and died before its snapshot
    _sweep(sweeper)
    assert _swept(r) == {plan.plan_id: "swept: not dialed"}
