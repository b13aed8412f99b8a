"""OTP calls: the announcement reaches the far end, as long as text and repeats imply."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from rq import Queue

from cpaas.platform import CALLS_QUEUE
from cpaas.telephony import audio, tts
from tests.api.conftest import body
from tests.launcher import wait_for
from tests.e2e.numbers import CALLER_ID, number
from tests.e2e.rtp_capture import RtpCapture

TEMPLATE = "Your one time password is {otp}"


def _template_id(api) -> str:
    templates = body(api.get("/api/announce_template"))["result"]
    return next(t["announce_template_id"] for t in templates if t["status"] == "approved")


def _otp(api, customer: str, **extra) -> str:
    r = api.post("/api/outbound_call", {"customer_number": customer, "otp": "1987",
                                         "announce_template_id": _template_id(api),
                                         "caller_id": CALLER_ID, **extra})
    assert r.status_code == 200, r.data
    return body(r)["request_id"]


def test_otp_audio_reaches_the_far_end_for_every_repeat(platform, api, tmp_path):
    expected = audio.duration(tts.render_text(
        TEMPLATE.replace("{otp}", tts.speak_digits("1987")),
        tts.Prosody(voice="Raveena", rate="slow"), tmp_path / "expected.wav"))
    wait_for(lambda: not platform.redis.hlen("cpaas:live:legs"), 60, "other calls to end")
    capture = RtpCapture(platform.media_port)
    try:
        request_id = _otp(api, number("001"), repeat="2", voice="Raveena", rate="slow")
        cdr = platform.cdr(api, request_id)
    finally:
        capture.stop()
    assert cdr["dial_status"] == "ANSWER"
    assert cdr["destination_context"] == "otp" and cdr["call_direction"] == "outbound-api"
    assert cdr["agent_number"] == "" and cdr["customer_number"] == cdr["dialed_number"]
    # Two plays of the announcement reached the carrier: sound spans about two lengths,
    # and about two lengths' worth of 20 ms packets carried sound (pauses excluded).
    assert 2 * expected - 1.5 <= capture.voiced_span() <= 2 * expected + 1.5
    assert capture.voiced_packets() * 0.02 >= expected
    # The call hung up after the announcements, well before the carrier's hold time.
    assert cdr["billsec"] <= 2 * expected + 3


def test_otp_audio_is_deleted_when_the_call_ends(platform, api):
    request_id = _otp(api, number("002"))
    platform.cdr(api, request_id)
    calls = platform.settings.media_dir / "calls"
    assert calls.is_dir(), "OTP audio is rendered per call into media/calls"
    assert not list(calls.glob(f"{request_id}-*.wav"))


def test_unanswered_otp_call_leaves_no_audio(platform, api):
    request_id = _otp(api, number("486"))
    cdr = platform.cdr(api, request_id)
    assert cdr["dial_status"] == "BUSY" and cdr["billsec"] == 0
    # The code is rendered while the call rings; a busy number can end the call before
    # the render is done, and the job then deletes the file itself.
    queue = Queue(CALLS_QUEUE, connection=platform.redis)
    wait_for(lambda: not queue.count and not queue.started_job_registry.count, 30,
             "the call job to finish")
    assert not list((platform.settings.media_dir / "calls").glob(f"{request_id}-*.wav"))


def test_forty_simultaneous_otp_calls_all_complete(platform, api):
    numbers = [number("001") for _ in range(40)]
    with ThreadPoolExecutor(8) as pool:
        request_ids = list(pool.map(lambda n: _otp(platform.client(), n), numbers))
    deadline = time.monotonic() + 240
    cdrs = [platform.cdr(api, rid, timeout=max(1, deadline - time.monotonic())) for rid in request_ids]
    assert len({c["request_id"] for c in cdrs}) == 40
    assert all(c["dial_status"] == "ANSWER" for c in cdrs)
    assert all(platform.invites(n) == 1 for n in numbers)
