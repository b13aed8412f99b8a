"""click2call bridges real audio both ways, and each recording option records the right sides.

The ``700`` far end plays a recording; echo numbers return what they hear. So with a
``700`` customer, the agent's channel carries sound only if the bridge delivered the
customer's audio to the agent (who echoed it back).
"""
from __future__ import annotations

import time

import pytest

from cpaas.telephony import audio
from tests.api.conftest import body
from tests.e2e.audio_checks import SOUND, fetch_recording
from tests.e2e.numbers import CALLER_ID, number

TALK = 5.0  # seconds of bridged audio before we hang up


def _call(platform, api, agent: str, customer: str, option: str) -> str:
    request_id = body(api.post("/api/click2call", {
        "agent_number": agent, "caller_id": CALLER_ID, "destination_number": customer,
        "recording_option": option}))["request_id"]
    platform.live(api, request_id, "customer", "bridged")
    time.sleep(TALK)
    agent_leg = platform.live(api, request_id, "agent")
    api.post("/api/modify_call", {"channel": agent_leg["channel"], "modify_type": "2"})
    return request_id


def test_both_sides_recorded_and_bridged_audio_reaches_the_agent(platform, api, tmp_path):
    request_id = _call(platform, api, number("101"), number("700"), "on")
    cdr = platform.cdr(api, request_id)
    assert cdr["dial_status"] == "ANSWER" and cdr["recording_name"]
    wav = fetch_recording(api, request_id, tmp_path)
    info = audio.info(wav)
    assert info.channels == 2 and info.rate == 8000
    assert audio.duration(wav) >= TALK - 1
    # right: the customer (700 plays a recording); left: the agent echoing what the bridge gave it
    assert audio.rms(wav, 2) > SOUND
    assert audio.rms(wav, 1) > SOUND


def test_without_a_sound_source_the_bridge_carries_silence(platform, api, tmp_path):
    """Control for the test above: two echo far ends and nothing playing, so both
    channels stay silent, proving the agent's sound there came through the bridge."""
    request_id = _call(platform, api, number("101"), number("102"), "both")
    platform.cdr(api, request_id)
    wav = fetch_recording(api, request_id, tmp_path)
    assert audio.rms(wav, 1) < SOUND and audio.rms(wav, 2) < SOUND


@pytest.mark.parametrize("option", ["agent", "customer"])
def test_one_side_gives_a_mono_file_of_that_side(platform, api, tmp_path, option):
    request_id = _call(platform, api, number("101"), number("700"), option)
    platform.cdr(api, request_id)
    wav = fetch_recording(api, request_id, tmp_path)
    assert audio.info(wav).channels == 1
    assert audio.rms(wav) > SOUND


def test_recording_off_stores_nothing(platform, api):
    request_id = _call(platform, api, number("101"), number("700"), "off")
    cdr = platform.cdr(api, request_id)
    assert cdr["recording_name"] == ""
    r = api.get(f"/api/recording?request_id={request_id}")
    assert r.status_code == 404


def test_another_account_cannot_fetch_the_recording(platform, api, other, tmp_path):
    request_id = _call(platform, api, number("101"), number("700"), "both")
    platform.cdr(api, request_id)
    assert other.get(f"/api/recording?request_id={request_id}").status_code == 404
    assert body(other.post("/api/get_cdr_by_request_id", {"request_id": request_id}))["result"] == []
