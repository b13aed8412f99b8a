"""Byte streams captured from the local FreeSWITCH 1.10.12 (``captures/``, see
``capture.py``): our parser reads every frame of them, and the engine, fed them through
the ESL double, gives each scenario's outcome as the real node did."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from cpaas.calls.plan_builders import click2call
from cpaas.telephony.events import parse
from cpaas.telephony.plans import Dial, Gather, Hangup, Play, Plan
from freeswitch.esl import parse_event_plain, read_frame
from tests.freeswitch.capture import CAPTURES, load
from tests.freeswitch.replay import Replayer

CAPTURE_FILES = sorted(CAPTURES.glob("*.jsonl"))
pytestmark = pytest.mark.skipif(not CAPTURE_FILES, reason="no captures")
CALLER = "919900000009"


def _events(path: Path, conn: int = 1):
    capture = load(path)
    stream = io.BytesIO(b"".join(chunk for _, chunk in capture.received(conn)))
    frames = []
    while (frame := read_frame(stream)) is not None:
        frames.append(frame)
    return capture, frames


@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: p.stem)
def test_every_captured_frame_parses(path):
    capture, frames = _events(path)
    assert len(frames) == len(capture.frames(1))
    for frame in frames:
        if frame.content_type == "text/event-plain":
            event = parse_event_plain(frame.body)
            assert event.name
            if event.name == "BACKGROUND_JOB":
                assert event.body.startswith(("+OK", "-ERR"))


def test_a_captured_newline_variable_forges_nothing():
    capture, frames = _events(CAPTURES / "newline_variable.jsonl")
    hangups = [parse_event_plain(f.body) for f in frames if f.content_type == "text/event-plain"
               and parse_event_plain(f.body).name == "CHANNEL_HANGUP_COMPLETE"]
    assert hangups and all(e.get("Hangup-Cause") == "NORMAL_CLEARING" for e in hangups)
    assert hangups[0].get("variable_cpaas_note") == capture.meta["notes"]["cpaas_note"]


def _replay(rig, name: str) -> None:
    rig.double.replayer = Replayer(load(CAPTURES / f"{name}.jsonl"))
    rig.nodes_up(1)


@pytest.mark.parametrize("name,status,cause,sip", [
    ("busy", "BUSY", "USER_BUSY", 486),
    ("decline", "CHANUNAVAIL", "CALL_REJECTED", 603),
    ("notfound", "CHANUNAVAIL", "UNALLOCATED_NUMBER", 404),
    ("unavailable", "CONGESTION", "NORMAL_TEMPORARY_FAILURE", 503),
    ("noanswer", "NOANSWER", "NO_ANSWER", None),
])
def test_captured_failures_give_the_dial_status(rig, name, status, cause, sip):
    _replay(rig, name)
    plan = Plan("cafe000001", "ACalpha", "otp", [Dial("customer", "919900000486", CALLER, 3),
                                                 Hangup()])
    rig.client.originate(plan)
    leg = parse(rig.events.ended(plan.plan_id, 15)).legs["customer"]
    assert (leg.dial_status, leg.hangup_cause, leg.sip_code) == (status, cause, sip)


def test_a_captured_unregistered_agent_has_only_a_failed_job(rig):
    _replay(rig, "agent_unregistered")
    plan = Plan("cafe000002", "ACalpha", "c2c", [Dial("agent", "1000", CALLER, 5, "agent")],
                max_legs=3)
    rig.client.originate(plan)
    ended = parse(rig.events.ended(plan.plan_id, 15))
    assert (ended.cause, ended.legs["agent"].dial_status,
            ended.legs["agent"].hangup_cause) == ("dial_failed", "CHANUNAVAIL", "USER_NOT_REGISTERED")


def test_a_captured_digit_during_a_prompt_is_gathered(rig):
    (rig.settings.media_dir / "p.wav").write_bytes(b"RIFF")
    _replay(rig, "dtmf_playback")
    plan = Plan("cafe000003", "ACalpha", "campaign", [
        Dial("customer", "919900000553", CALLER, 5), Play("customer", "p.wav"),
        Gather("customer", 1, 8), Hangup()])
    rig.client.originate(plan)
    ended = parse(rig.events.ended(plan.plan_id, 20))
    assert ended.dtmf == "3" and ended.legs["customer"].dial_status == "ANSWER"
    assert [e.data["digit"] for e in rig.events.of(plan.plan_id) if e.type == "leg.dtmf"] == ["3"]


def test_a_captured_bridged_call_ends_when_the_agent_hangs_up(rig):
    _replay(rig, "uuid_bridge")
    plan = click2call("cafe000004", "ACalpha", "919900000001", "919900000002", CALLER, "none",
                      None, ring_timeout=10)
    rig.client.originate(plan)
    ended = parse(rig.events.ended(plan.plan_id, 30))
    assert {r: o.dial_status for r, o in ended.legs.items()} == {"agent": "ANSWER",
                                                                 "customer": "ANSWER"}
    assert ended.cause == "normal"
    agent, customer = (ended.legs[r].channel.removeprefix("FS/") for r in ("agent", "customer"))
    assert [c.split("\n")[0] for c in rig.double.commands if c.startswith("bgapi uuid_bridge")] \
        == [f"bgapi uuid_bridge {agent} {customer}"]


def test_a_captured_node_shutdown_ends_the_call(rig):
    """``fsctl shutdown`` with a parked call: its SYSTEM_SHUTDOWN hangup closes the plan."""
    _replay(rig, "shutdown")
    plan = Plan("cafe000005", "ACalpha", "callback", [Dial("customer", "919900000001", CALLER, 5)])
    rig.client.originate(plan)
    ended = parse(rig.events.ended(plan.plan_id, 20))
    leg = ended.legs["customer"]
    assert (ended.cause, leg.dial_status, leg.hangup_cause) == ("normal", "ANSWER", "SYSTEM_SHUTDOWN")
