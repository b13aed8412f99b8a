"""A neural-voice OTP call through the whole platform: what the far end heard, transcribed.

The API answers ``tts_engine_used: neural``; the worker renders the OTP with hibari's
"heart" voice; the engine plays it to the sandbox carrier; the RTP that reached the
carrier is decoded (G.711 A-law) and transcribed by the platform's offline whisper
backend, which must hear the code's digits in order.
"""
from __future__ import annotations

import wave
from pathlib import Path

import pytest

from tests.api.conftest import body
from tests.e2e.numbers import CALLER_ID, number
from tests.e2e.rtp_capture import ALAW, RtpCapture
from tests.launcher import wait_for
from tests.unit.test_neural_tts import heard_digits

OTP = "4721"


class AudioCapture(RtpCapture):
    """RtpCapture that also keeps the A-law payloads, in arrival order."""

    def __init__(self, port: int) -> None:
        self.payloads: list[bytes] = []
        super().__init__(port)

    def _on(self, at: float, rtp: bytes) -> None:
        if len(rtp) > 12 and rtp[0] >> 6 == 2 and rtp[1] & 0x7F == 8:
            self.payloads.append(rtp[12:])
        super()._on(at, rtp)

    def save(self, path: Path) -> Path:
        """What was heard as an 8 kHz 16-bit mono WAV."""
        samples = b"".join(ALAW[b].to_bytes(2, "little", signed=True)
                           for payload in self.payloads for b in payload)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(samples)
        return path


def _approved_template(api) -> str:
    templates = body(api.get("/api/announce_template"))["result"]
    return next(t["announce_template_id"] for t in templates if t["status"] == "approved")


def test_neural_otp_heard_at_the_far_end_holds_the_digits(platform, api, tmp_path):
    whisper = pytest.importorskip("cpaas.transcription.whisper")
    template_id = _approved_template(api)  # the seeded "Your one time password is {otp}"
    wait_for(lambda: not platform.redis.hlen("cpaas:live:legs"), 60, "other calls to end")
    capture = AudioCapture(platform.media_port)
    try:
        r = api.post("/api/outbound_call", {
            "customer_number": number("001"), "otp": OTP, "announce_template_id": template_id,
            "caller_id": CALLER_ID, "repeat": "2", "voice": "Joanna", "tts_engine_type": "neural"})
        assert r.status_code == 200, r.data
        answer = body(r)
        assert answer["tts_engine_used"] == "neural"
        cdr = platform.cdr(api, answer["request_id"])
    finally:
        capture.stop()
    assert cdr["dial_status"] == "ANSWER"
    heard = capture.save(tmp_path / "heard.wav")
    model = whisper.load_model(threads=1)
    [samples] = whisper.channels_of(heard, 1)
    segments, _info = model.transcribe(samples, **whisper.OPTIONS)
    text = " ".join(segment.text for segment in segments)
    # "one time" is a 1 of its own; the code must be heard whole, once per repeat.
    assert heard_digits(text).count(OTP) == 2, text
