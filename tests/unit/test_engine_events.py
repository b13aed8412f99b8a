"""The engine contract's events: built, written and read back only through their types."""
from __future__ import annotations

import json
import secrets

import pytest
import redis

from cpaas.telephony import events
from cpaas.telephony.events import (EVENT_STREAM, EngineEvent, LegAnswered, LegDtmf, LegHangup,
                                    LegOutcome, LegRinging, PlanEnded, RecordingStored,
                                    UnreadableEvent, decode, encode)

IDS = {"plan_id": "57362de4f0", "account_id": "ACalpha", "at": 1700000000.25}
LEG = {"leg": "customer", "channel": "PJSIP/customer-1a2b3c4d"}


def _outcome(role: str = "customer", **kw) -> LegOutcome:
    return LegOutcome(role, "919900000102", f"PJSIP/{role}-1a2b3c4d", 1700000000.0, **kw)


ALL = [
    LegRinging(**IDS, **LEG, sip_code=180),
    LegAnswered(**IDS, **LEG, sip_code=200),
    LegDtmf(**IDS, **LEG, digit="5", method="info"),
    LegHangup(**IDS, outcome=_outcome(answered_at=1700000001.0, ended_at=1700000004.0,
                                      sip_code=200, dial_status="ANSWER")),
    RecordingStored(**IDS, key="acct/recordings/57362de4f0.wav", channels=2),
    PlanEnded(**IDS, cause="normal", dtmf="42", recordings=("acct/recordings/57362de4f0.wav",),
              legs={"agent": _outcome("agent", dial_status="ANSWER"),
                    "customer": _outcome(sip_code=486, dial_status="BUSY")}),
    PlanEnded(**IDS, cause="swept: job lost"),
]


@pytest.mark.parametrize("event", ALL, ids=lambda e: e.TYPE)
def test_every_event_reads_back_as_it_was_written(event):
    fields = encode(event)
    assert fields["v"] == "1"
    assert decode(fields) == event
    # As Redis hands it back: bytes keys and values.
    assert decode({k.encode(): v.encode() for k, v in fields.items()}) == event


def test_an_entry_written_before_the_contract_is_read():
    """Events pending in the stream across an upgrade: the previous release wrote no
    ``v`` and legs without ``hangup_cause``."""
    raw = json.dumps({"type": "plan.ended", "plan_id": "57362de4f0", "account_id": "ACalpha",
                      "leg": None, "channel": None, "at": 1700000000.5, "data": {
                          "legs": {"customer": {
                              "role": "customer", "number": "919900000102",
                              "channel": "PJSIP/customer-1a2b3c4d", "started_at": 1700000000.0,
                              "answered_at": None, "ended_at": 1700000003.0, "sip_code": 486,
                              "dial_status": "BUSY"}},
                          "dtmf": "", "recordings": [], "cause": "dial_failed"}})
    event = decode({b"event": raw.encode()})
    assert isinstance(event, PlanEnded)
    assert event.cause == "dial_failed" and event.at == 1700000000.5
    leg = event.legs["customer"]
    assert (leg.dial_status, leg.sip_code, leg.ended_at, leg.hangup_cause) == (
        "BUSY", 486, 1700000003.0, None)
    # Nor an IVR result: it reads as "no Branch ran".
    assert (event.ivr_result, event.transfer_to) == ("", "")


def test_the_wire_keeps_the_shape_readers_of_the_stream_know():
    env = EngineEvent.from_fields(encode(ALL[5]))
    assert (env.type, env.leg, env.channel) == ("plan.ended", None, None)
    assert set(env.data) == {"legs", "dtmf", "recordings", "cause", "ivr_result", "transfer_to"}
    assert (env.data["ivr_result"], env.data["transfer_to"]) == ("", "")
    assert env.data["legs"]["customer"]["dial_status"] == "BUSY"
    assert env.data["recordings"] == ["acct/recordings/57362de4f0.wav"]
    hangup = EngineEvent.from_fields(encode(ALL[3]))
    assert (hangup.leg, hangup.channel) == ("customer", "PJSIP/customer-1a2b3c4d")
    assert hangup.data["dial_status"] == "ANSWER" and hangup.data["role"] == "customer"


def _ivr_ended(**kw) -> PlanEnded:
    return PlanEnded(**IDS, cause="normal", dtmf="9", legs={
        "contact": _outcome("contact", dial_status="ANSWER"),
        "transfer_target": _outcome("transfer_target", dial_status="ANSWER")}, **kw)


@pytest.mark.parametrize("result,route", [("transferred", "number:919900000001"),
                                          ("transfer_failed", "agent:102"),
                                          ("no_input", ""), ("invalid", "")])
def test_the_ivr_result_and_transfer_target_travel_with_the_end(result, route):
    event = _ivr_ended(ivr_result=result, transfer_to=route)
    fields = encode(event)
    back = decode(fields)
    assert back == event and (back.ivr_result, back.transfer_to) == (result, route)
    env = EngineEvent.from_fields(fields)
    assert (env.data["ivr_result"], env.data["transfer_to"]) == (result, route)


def test_keys_a_later_version_adds_are_ignored():
    env = json.loads(encode(ALL[5])["event"])
    env["origin"] = "freeswitch-2"
    env["data"]["legs"]["customer"]["bridged_with"] = "agent"
    event = decode({"event": json.dumps(env), "v": "1"})
    assert event == ALL[5]


def test_a_type_this_release_does_not_know_is_none():
    raw = json.dumps({"type": "leg.bridged", "plan_id": "p1", "account_id": "ACalpha"})
    assert decode({"event": raw, "v": "1"}) is None


@pytest.mark.parametrize("fields", [
    {"event": encode(ALL[0])["event"], "v": "2"},                            # a newer wire
    {"event": "not json"},
    {"other": "field"},
    {"event": json.dumps({"type": "plan.ended"})},                           # no ids
    {"event": json.dumps({"type": "leg.dtmf", "plan_id": "p", "account_id": "a",
                          "data": {"method": "info"}})},                      # no digit
    {"event": json.dumps({"type": "plan.ended", "plan_id": "p", "account_id": "a",
                          "data": {"legs": {"customer": "busy"}}})},
    {"event": json.dumps({"type": ["plan.ended"], "plan_id": "p", "account_id": "a"})},
    {"event": json.dumps({"type": "recording.stored", "plan_id": "p", "account_id": "a",
                          "data": ["key", 2]})},
])
def test_what_is_no_event_of_this_wire_is_unreadable(fields):
    with pytest.raises(UnreadableEvent):
        decode(fields)


def test_publish_appends_to_the_stream(redis_url):
    r = redis.Redis.from_url(redis_url)
    event = PlanEnded(plan_id=secrets.token_hex(5), account_id="ACalpha", cause="not queued")
    events.publish(r, event)
    read = [decode(fields) for _, fields in r.xrange(EVENT_STREAM)]
    assert read.count(event) == 1
