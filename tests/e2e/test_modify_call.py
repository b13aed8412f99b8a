"""Live-call control: transfers proven by the INVITE at the target and by audio flowing
between the right parties; hangup; tenancy of channels."""
from __future__ import annotations

import time

from cpaas.telephony import audio
from tests.api.conftest import body
from tests.e2e.audio_checks import SOUND, fetch_recording, segment_rms
from tests.e2e.numbers import CALLER_ID, extension, number


def _bridged_call(platform, api, agent: str, customer: str) -> str:
    request_id = body(api.post("/api/click2call", {
        "agent_number": agent, "caller_id": CALLER_ID, "destination_number": customer,
        "recording_option": "both"}))["request_id"]
    platform.live(api, request_id, "customer", "bridged")
    return request_id


def _offset(wav_seconds: float, call_end: float, moment: float) -> float:
    """Position in the recording of a wall-clock moment (the recording ends with the call)."""
    return wav_seconds - (call_end - moment)


def test_blind_transfer_bridges_the_customer_to_the_target(platform, api, tmp_path):
    # The customer echoes; the target (an agent extension ending in 700) plays a recording.
    # Before the transfer the customer hears only the silent agent; after it, the
    # customer's channel carries the target's audio that the customer echoes back.
    agent, customer, target = number("101"), number("102"), extension("700")
    request_id = _bridged_call(platform, api, agent, customer)
    time.sleep(3)
    agent_leg = platform.live(api, request_id, "agent")
    transferred_at = time.time()
    r = api.post("/api/modify_call", {"channel": agent_leg["channel"], "modify_type": "0",
                                      "transfer_to": target})
    assert body(r) == {"message": "blind transferred successfully", "success": "true"}
    target_leg = platform.live(api, request_id, "transfer_target", "bridged")
    assert platform.invites(target) == 1
    time.sleep(4)
    assert all(leg["role"] != "agent" for leg in body(api.get("/api/live_calls"))["result"]
               if leg["request_id"] == request_id), "the transferer is dropped"
    ended_at = time.time()
    body(api.post("/api/modify_call", {"channel": target_leg["channel"], "modify_type": "2"}))
    platform.cdr(api, request_id)
    wav = fetch_recording(api, request_id, tmp_path)
    length = audio.duration(wav)
    before = segment_rms(wav, max(0.0, _offset(length, ended_at, transferred_at) - 2.5),
                         _offset(length, ended_at, transferred_at), channel=2)
    after = segment_rms(wav, _offset(length, ended_at, transferred_at) + 1.5, length - 0.5, channel=2)
    assert before < SOUND < after


def test_attended_transfer_consults_then_connects(platform, api, tmp_path):
    # Customer echoes; target plays a recording; agent echoes. During the consultation
    # the agent hears the target (agent channel has sound) while the customer is held
    # (silent); after the agent hangs up the customer is bridged to the target.
    agent, customer, target = number("101"), number("102"), number("700")
    request_id = _bridged_call(platform, api, agent, customer)
    customer_leg = platform.live(api, request_id, "customer")
    started = time.time()
    r = api.post("/api/modify_call", {"channel": customer_leg["channel"], "modify_type": "1",
                                      "transfer_to": target})
    assert body(r) == {"message": "attended transfer started successfully", "success": "true"}
    platform.live(api, request_id, "transfer_target", "bridged")
    assert platform.invites(target) == 1
    assert platform.live(api, request_id, "customer", "held")
    time.sleep(4)
    agent_leg = platform.live(api, request_id, "agent")
    completed = time.time()
    body(api.post("/api/modify_call", {"channel": agent_leg["channel"], "modify_type": "2"}))
    platform.live(api, request_id, "customer", "bridged")
    time.sleep(4)
    ended = time.time()
    target_leg = platform.live(api, request_id, "transfer_target")
    body(api.post("/api/modify_call", {"channel": target_leg["channel"], "modify_type": "2"}))
    platform.cdr(api, request_id)
    wav = fetch_recording(api, request_id, tmp_path)
    length = audio.duration(wav)
    consult = (_offset(length, ended, started) + 1.5, _offset(length, ended, completed) - 0.5)
    assert segment_rms(wav, *consult, channel=1) > SOUND, "the agent hears the target"
    assert segment_rms(wav, *consult, channel=2) < SOUND, "the customer is held"
    after = (_offset(length, ended, completed) + 1.5, length - 0.5)
    assert segment_rms(wav, *after, channel=2) > SOUND, "the customer now hears the target"


def test_start_recording_on_a_live_call(platform, api, tmp_path):
    request_id = body(api.post("/api/click2call", {
        "agent_number": number("101"), "caller_id": CALLER_ID,
        "destination_number": number("700")}))["request_id"]
    customer_leg = platform.live(api, request_id, "customer", "bridged")
    r = api.post("/api/modify_call", {"channel": customer_leg["channel"], "modify_type": "3"})
    assert body(r) == {"message": "call recording started successfully", "success": "true"}
    time.sleep(4)
    agent_leg = platform.live(api, request_id, "agent")
    api.post("/api/modify_call", {"channel": agent_leg["channel"], "modify_type": "2"})
    cdr = platform.cdr(api, request_id)
    assert cdr["recording_name"]
    wav = fetch_recording(api, request_id, tmp_path)
    assert audio.rms(wav) > SOUND


def test_channels_of_another_account_are_not_found(platform, api, other):
    request_id = _bridged_call(platform, api, number("101"), number("102"))
    leg = platform.live(api, request_id, "agent")
    assert all(l["request_id"] != request_id for l in body(other.get("/api/live_calls"))["result"])
    for modify_type in ("0", "1", "2", "3"):
        r = other.post("/api/modify_call", {"channel": leg["channel"], "modify_type": modify_type,
                                            "transfer_to": "102"})
        assert r.status_code == 404, r.data
    stats = body(other.get("/api/get_live_call_statistics"))["result"]
    assert stats["live_calls_c2c"] == 0
    mine = body(api.get("/api/get_live_call_statistics"))["result"]
    assert mine["live_calls_c2c"] >= 1 and mine["live_calls_inbound"] == 0
    body(api.post("/api/modify_call", {"channel": leg["channel"], "modify_type": "2"}))
    assert platform.cdr(api, request_id)["dial_status"] == "ANSWER"


def test_unknown_channel_is_404(platform, api):
    r = api.post("/api/modify_call", {"channel": "PJSIP/agent-00000000", "modify_type": "2"})
    assert r.status_code == 404


def test_dtmf_from_the_far_end_is_recorded_in_the_cdr(platform, api):
    request_id = body(api.post("/api/click2call", {
        "agent_number": number("101"), "caller_id": CALLER_ID,
        "destination_number": number("557")}))["request_id"]
    platform.live(api, request_id, "customer", "bridged")
    time.sleep(5)  # the carrier presses 7 three seconds after answering
    leg = platform.live(api, request_id, "agent")
    api.post("/api/modify_call", {"channel": leg["channel"], "modify_type": "2"})
    assert platform.cdr(api, request_id)["dtmf_inputs"] == "7"
