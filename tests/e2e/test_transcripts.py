"""click2call with ``transcript: on`` end to end: the platform's transcriber turns the
call into turns, the downloadable recording is only what ``recording_option`` asked for,
and the audio recorded for the transcript alone is gone once it is made.

The customer is the sandbox's ``...700`` number (it plays a recording); the agent is an
echo number, so both sides carry sound through the bridge.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from cpaas.calls.service import recording_key
from cpaas.telephony import audio
from cpaas.transcription.keys import transcript_audio_key
from tests.api.conftest import body
from tests.e2e.audio_checks import fetch_recording
from tests.e2e.numbers import CALLER_ID, number
from tests.e2e.test_recordings import TALK
from tests.launcher import wait_for

#: Seconds the transcriber (nice 19, one thread) may take for a call of TALK seconds.
TRANSCRIBED_WITHIN = 120


def _call(platform, api, option: str) -> str:
    request_id = body(api.post("/api/click2call", {
        "agent_number": number("101"), "caller_id": CALLER_ID, "destination_number": number("700"),
        "recording_option": option, "transcript": "on"}))["request_id"]
    platform.live(api, request_id, "customer", "bridged")
    time.sleep(TALK)
    agent_leg = platform.live(api, request_id, "agent")
    api.post("/api/modify_call", {"channel": agent_leg["channel"], "modify_type": "2"})
    return request_id


def _finished(api, request_id: str) -> dict:
    def settled():
        inner = body(api.get(f"/api/transcript?request_id={request_id}"))
        return inner if inner["transcript_status"] in ("done", "failed") else None
    return wait_for(settled, TRANSCRIBED_WITHIN, f"the transcript of {request_id}", 0.5)


@pytest.mark.parametrize("option", ["agent", "off"])
def test_transcript_on_transcribes_both_sides_and_keeps_only_the_asked_recording(
        platform, api, other, tmp_path, option):
    request_id = _call(platform, api, option)
    cdr = platform.cdr(api, request_id)
    assert cdr["dial_status"] == "ANSWER"
    assert cdr["transcript_status"] in ("pending", "done")

    done = _finished(api, request_id)
    assert done["transcript_status"] == "done" and done["request_id"] == request_id
    turns = done["result"]
    assert turns, "the 700 recording is speech: some of it is transcribed"
    assert {t["speaker"] for t in turns} <= {"agent", "customer"}
    assert [t["start"] for t in turns] == sorted(t["start"] for t in turns)
    assert all(t["text"].strip() and t["start"] <= t["end"] for t in turns)
    assert platform.cdr(api, request_id)["transcript_status"] == "done"

    # Only the recording the option asked for is offered; the transcript's own audio is gone.
    bucket = Path(platform.settings.effective_storage_url)
    assert not (bucket / transcript_audio_key("account_1", request_id)).exists()
    if option == "off":
        assert cdr["recording_name"] == ""
        assert api.get(f"/api/recording?request_id={request_id}").status_code == 404
    else:
        assert cdr["recording_name"] == recording_key("account_1", request_id)
        assert audio.info(fetch_recording(api, request_id, tmp_path)).channels == 1
    assert other.get(f"/api/transcript?request_id={request_id}").status_code == 404
