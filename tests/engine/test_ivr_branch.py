"""The IVR's Branch verb on the embedded engine, against the real sandbox carrier.

A campaign's IVR plan is Dial(contact) -> Play -> Gather -> Branch: the digits the
Gather collected pick a route, whose target is dialed as ``transfer_target`` and bridged
with the contact. The contact numbers are the carrier's ``...55d`` (digit ``d`` sent by
SIP INFO shortly after the answer, here while the prompt still plays); the transfer
targets are carrier numbers too, so the carrier's INVITE log shows what was dialed.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import redis

import sandbox_carrier
from cpaas.telephony import plans
from cpaas.telephony.engine_client import LegAction
from cpaas.telephony.events import LegOutcome
from cpaas.telephony.outcomes import declined
from cpaas.telephony.plans import Dial, Gather, Play, Plan
from pjsua_engine import keys
from pjsua_engine.client import EmbeddedClient as EmbeddedEngine
from tests.e2e.numbers import number
from tests.engine.rig import EventLog, PoolInfo, wait_until
from tests.engine.test_embedded_engine import live_leg, new_id
from tests.servers import free_media_port

ACCOUNT = "ACivr"
CALLER = "15551230000"
#: Seconds after the answer the carrier sends a ...55d digit: inside the 2 s prompt.
DTMF_DELAY = 0.5
#: An answered carrier call lasts this long unless the platform hangs up first.
HOLD = 20


@pytest.fixture(scope="module")
def carrier(pool: PoolInfo) -> Iterator[sandbox_carrier.CarrierProcess]:
    """The sandbox carrier on the pool's trunk port, logging its INVITEs."""
    log_dir = pool.workdir / f"carrier-{secrets.token_hex(3)}"
    proc = sandbox_carrier.start("127.0.0.1", pool.trunk_port, hold=HOLD, log_dir=log_dir,
                                 media_port=free_media_port(), dtmf_delay=DTMF_DELAY)
    yield proc
    sandbox_carrier.stop(proc)
    shutil.rmtree(log_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def prompt(pool: PoolInfo) -> str:
    """A two-second announcement in telephone format; its name inside the media root."""
    path = pool.workdir / "media" / "ivr-announcement.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
                    str(path), "synth", "2.0", "sine", "440", "vol", "0.5"], check=True)
    return path.name


def ivr_plan(contact: str, prompt: str, routes: dict[str, str], gather_timeout: int = 3,
             ring_timeout: int = 10) -> Plan:
    """The plan of one IVR campaign attempt, as the dialer builds it."""
    return Plan(new_id(), ACCOUNT, "campaign", [
        Dial("contact", contact, CALLER, 10), Play("contact", prompt, 1),
        Gather("contact", 1, gather_timeout),
        plans.Branch("contact", routes, CALLER, ring_timeout)], max_legs=2)


def invites(carrier: sandbox_carrier.CarrierProcess, dialed: str) -> int:
    return sandbox_carrier.count_invites(carrier.log_dir, dialed)


def test_a_digit_in_the_routes_transfers_the_contact(engine: EmbeddedEngine, events: EventLog,
                                                     engine_redis: redis.Redis, carrier,
                                                     prompt: str) -> None:
    contact, target = number("557"), number("101")
    plan = ivr_plan(contact, prompt, {"7": f"number:{target}", "1": f"number:{number('102')}"},
                    gather_timeout=1)
    engine.originate(plan)

    answered = events.wait(plan.plan_id, "leg.answered", where=lambda e: e.leg == "transfer_target")
    contact_channel = events.wait(plan.plan_id, "leg.answered",
                                  where=lambda e: e.leg == "contact").channel
    for channel in (contact_channel, answered.channel):
        wait_until(lambda: (live_leg(engine_redis, channel) or {}).get("state") == "bridged",
                   10, f"{channel} bridged")
    assert not any(e.type == "plan.ended" for e in events.of(plan.plan_id))

    engine.act(contact_channel, LegAction("hangup"))   # the contact leaves: the plan ends
    ended = events.ended(plan.plan_id)
    assert (ended.data["ivr_result"], ended.data["transfer_to"]) == (
        "transferred", f"number:{target}")
    assert ended.data["dtmf"] == "7" and ended.data["cause"] == "normal"
    legs = ended.data["legs"]
    assert {role: leg["dial_status"] for role, leg in legs.items()} == {
        "contact": "ANSWER", "transfer_target": "ANSWER"}
    assert legs["transfer_target"]["number"] == target
    # The digit came while the prompt played (1 s of Gather after a 2 s prompt would
    # not have waited for a digit sent 0.5 s after the answer): type-ahead counts.
    assert invites(carrier, contact) == 1 and invites(carrier, target) == 1


def test_an_agent_route_dials_the_agent_uri(engine: EmbeddedEngine, events: EventLog,
                                            carrier, far_end, prompt: str) -> None:
    agents = far_end("answer", where="agent")
    plan = ivr_plan(number("550"), prompt, {"0": "agent:4102"})
    engine.originate(plan)

    agent = events.wait(plan.plan_id, "leg.answered", where=lambda e: e.leg == "transfer_target")
    engine.act(agent.channel, LegAction("hangup"))   # the agent hangs up: the plan ends too
    ended = events.ended(plan.plan_id)
    assert (ended.data["ivr_result"], ended.data["transfer_to"]) == ("transferred", "agent:4102")
    assert ended.data["legs"]["transfer_target"]["number"] == "4102"
    assert agents.invites("4102") == 1


def test_a_digit_no_route_names_hangs_up_as_invalid(engine: EmbeddedEngine, events: EventLog,
                                                    carrier, prompt: str) -> None:
    contact, target = number("558"), number("103")
    plan = ivr_plan(contact, prompt, {"7": f"number:{target}"})
    engine.originate(plan)

    ended = events.ended(plan.plan_id)
    assert (ended.data["ivr_result"], ended.data["transfer_to"]) == ("invalid", "")
    assert ended.data["dtmf"] == "8" and ended.data["cause"] == "normal"
    assert list(ended.data["legs"]) == ["contact"]
    assert ended.data["legs"]["contact"]["dial_status"] == "ANSWER"
    assert invites(carrier, target) == 0


def test_no_digit_before_the_timeout_hangs_up_as_no_input(engine: EmbeddedEngine,
                                                          events: EventLog, carrier,
                                                          prompt: str) -> None:
    contact, target = number("104"), number("105")   # answers, never presses anything
    plan = ivr_plan(contact, prompt, {"1": f"number:{target}"}, gather_timeout=2)
    engine.originate(plan)

    ended = events.ended(plan.plan_id)
    assert (ended.data["ivr_result"], ended.data["transfer_to"]) == ("no_input", "")
    assert ended.data["dtmf"] == "" and list(ended.data["legs"]) == ["contact"]
    leg = ended.data["legs"]["contact"]
    # The prompt played, the gather waited its timeout, then the platform hung up
    # (long before the carrier's hold would have).
    assert 4.0 <= leg["ended_at"] - leg["answered_at"] < HOLD
    assert invites(carrier, target) == 0


def test_a_busy_target_fails_the_transfer(engine: EmbeddedEngine, events: EventLog, carrier,
                                          prompt: str) -> None:
    busy = number("486")
    plan = ivr_plan(number("552"), prompt, {"2": f"number:{busy}"})
    engine.originate(plan)

    ended = events.ended(plan.plan_id)
    assert (ended.data["ivr_result"], ended.data["transfer_to"]) == (
        "transfer_failed", f"number:{busy}")
    assert ended.data["cause"] == "transfer_failed"
    legs = ended.data["legs"]
    assert legs["transfer_target"]["dial_status"] == "BUSY"
    assert legs["contact"]["dial_status"] == "ANSWER"
    assert invites(carrier, busy) == 1


def test_a_target_ringing_past_the_branch_timeout_fails_the_transfer(
        engine: EmbeddedEngine, events: EventLog, carrier, prompt: str) -> None:
    ringing = number("480")
    plan = ivr_plan(number("553"), prompt, {"3": f"number:{ringing}"}, ring_timeout=2)
    engine.originate(plan)

    ended = events.ended(plan.plan_id)
    assert ended.data["ivr_result"] == "transfer_failed"
    target = ended.data["legs"]["transfer_target"]
    assert target["dial_status"] == "NOANSWER" and target["answered_at"] is None
    assert target["ended_at"] - target["started_at"] >= 2


def test_the_contact_leaving_while_the_target_rings_fails_the_transfer(
        engine: EmbeddedEngine, events: EventLog, carrier, prompt: str) -> None:
    ringing = number("480")
    plan = ivr_plan(number("554"), prompt, {"4": f"number:{ringing}"}, ring_timeout=20)
    engine.originate(plan)
    events.wait(plan.plan_id, "leg.ringing", where=lambda e: e.leg == "transfer_target")
    contact = next(e.channel for e in events.of(plan.plan_id)
                   if e.type == "leg.answered" and e.leg == "contact")

    engine.act(contact, LegAction("hangup"))
    ended = events.ended(plan.plan_id)
    assert (ended.data["ivr_result"], ended.data["transfer_to"]) == (
        "transfer_failed", f"number:{ringing}")
    assert ended.data["legs"]["transfer_target"]["dial_status"] == "CANCEL"


def test_a_killed_worker_keeps_the_transfer_in_its_end(engine: EmbeddedEngine,
                                                       events: EventLog,
                                                       engine_redis: redis.Redis, carrier,
                                                       prompt: str) -> None:
    target = number("106")
    plan = ivr_plan(number("556"), prompt, {"6": f"number:{target}"})
    engine.originate(plan)
    moved = events.wait(plan.plan_id, "leg.answered", where=lambda e: e.leg == "transfer_target")
    wait_until(lambda: (live_leg(engine_redis, moved.channel) or {}).get("state") == "bridged",
               10, "target bridged")
    owner = live_leg(engine_redis, moved.channel)["owner"]
    old_pid = json.loads(engine_redis.hget(keys.WORKERS, owner))["pid"]

    os.kill(old_pid, signal.SIGKILL)

    ended = events.ended(plan.plan_id)
    assert ended.data["cause"] == "engine_worker_died"
    assert (ended.data["ivr_result"], ended.data["transfer_to"]) == (
        "transferred", f"number:{target}")
    assert set(ended.data["legs"]) == {"contact", "transfer_target"}

    def restarted() -> bool:
        raw = engine_redis.hget(keys.WORKERS, owner)
        entry = json.loads(raw) if raw else {}
        return entry.get("pid") not in (None, old_pid) and "ready_at" in entry
    wait_until(restarted, 30, "worker restart")


def test_a_603_number_declines(engine: EmbeddedEngine, events: EventLog, carrier) -> None:
    contact = number("603")
    plan = Plan(new_id(), ACCOUNT, "campaign", [Dial("contact", contact, CALLER, 10)])
    engine.originate(plan)

    ended = events.ended(plan.plan_id)
    assert ended.data["cause"] == "dial_failed" and ended.data["ivr_result"] == ""
    leg = ended.data["legs"]["contact"]
    assert (leg["sip_code"], leg["dial_status"], leg["answered_at"]) == (603, "CHANUNAVAIL", None)
    # The dialer never retries it, whatever retry_on_statuses says.
    assert declined(LegOutcome.from_dict("contact", leg))
    assert invites(carrier, contact) == 1
