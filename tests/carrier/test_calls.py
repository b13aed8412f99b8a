"""Real SIP calls into the sandbox carrier, from PJSUA2 and from a sipp UAC.

Each test dials its own numbers so that the INVITE counts in the shared
carrier's log belong to it alone. Timings are only checked loosely: they show
which event caused what (a DTMF after the answer, a BYE from the carrier), not
how fast anything is.
"""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox_carrier import CarrierProcess, count_invites
from sandbox_carrier.carrier import invite_times
from tests.carrier.calling import aborted_calls, needs_tools, place_call, place_calls, rms, sip_uri

pytestmark = needs_tools


def _assert_handled(carrier: CarrierProcess, reports: list[dict[str, Any]]) -> None:
    """sipp ran every one of these calls through the scenario without aborting it."""
    assert carrier.log_dir is not None
    ids = [report["call_id"] for report in reports]
    assert all(ids), reports
    assert aborted_calls(carrier.log_dir, ids) == []


def test_rejections_return_their_status_codes(carrier: CarrierProcess, tmp_path: Path) -> None:
    numbers = {"2000486": 486, "2000503": 503, "2000404": 404, "2000603": 603}
    reports = place_calls([{"uri": sip_uri(n, carrier.port)} for n in numbers], tmp_path)
    for (number, code), report in zip(numbers.items(), reports):
        assert report["final_code"] == code, report
        assert report["answered_at"] is None
        assert not report["media_active"]
        assert count_invites(carrier.log_dir, number) == 1
    _assert_handled(carrier, reports)


def test_480_rings_until_the_caller_cancels(carrier: CarrierProcess, tmp_path: Path) -> None:
    report = place_call({"uri": sip_uri("2000480", carrier.port), "cancel_after_ringing": 1.0},
                        tmp_path)
    assert 180 in report["provisional"]
    assert report["answered_at"] is None
    assert report["we_hung_up"]
    # Our CANCEL ended it: the INVITE got 487 (the CANCEL itself got 200).
    assert report["final_code"] == 487, report
    assert report["disconnected_at"] >= report["ringing_at"] + 0.9
    _assert_handled(carrier, [report])


def test_480_gives_up_after_the_ring_timeout(short_carrier: CarrierProcess,
                                            tmp_path: Path) -> None:
    report = place_call({"uri": sip_uri("2001480", short_carrier.port)}, tmp_path,
                        max_seconds=20)
    assert 180 in report["provisional"]
    assert not report["we_hung_up"]
    assert report["final_code"] == 480, report


def test_55d_sends_the_digit_as_sip_info_after_answering(carrier: CarrierProcess,
                                                         tmp_path: Path) -> None:
    reports = place_calls([{"uri": sip_uri(number, carrier.port), "hangup_after_dtmf": 0.5}
                           for number in ("2000550", "+12000559")], tmp_path, max_seconds=25)
    for digit, report in zip("09", reports):
        assert report["final_code"] == 200, report
        assert [(d["digit"], d["method"]) for d in report["dtmf"]] == [(digit, "info")]
        # Sent well after the answer (about 3 s), not with it.
        delay = report["dtmf"][0]["at"] - report["answered_at"]
        assert 2.0 <= delay <= 20, f"digit {delay:.1f} s after the answer, expected ~3 s"
        assert report["we_hung_up"]
    _assert_handled(carrier, reports)
    # The answers carry one codec and no telephone-event, so INFO is the only
    # DTMF path (the carrier's own message trace shows what it sent).
    trace = (carrier.log_dir / "messages.log").read_text(errors="replace")
    answers = [m for m in re.split(r"\n-{20,}[^\n]*\n", trace)
               if m.lstrip().startswith("UDP message sent") and "m=audio" in m]
    assert answers
    for answer in answers:
        assert "telephone-event" not in answer
        assert re.findall(r"m=audio \d+ RTP/AVP ([0-9 ]+)", answer) == ["8"]


@pytest.fixture(scope="module")
def media_calls(carrier: CarrierProcess, tmp_path_factory: pytest.TempPathFactory,
                ) -> dict[str, Any]:
    """Four simultaneous 3 s calls whose received audio is recorded.

    echo: default number, caller plays a tone; silent: default number, caller
    plays nothing (the control); recording / recording_tone: ...700 without and
    with a tone from the caller.
    """
    workdir = tmp_path_factory.mktemp("media")
    tone = workdir / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(tone),
                    "synth", "5", "sine", "440", "vol", "0.5"], check=True)
    plan = {"echo": ("2000102", True), "silent": ("2000103", False),
            "recording": ("2000700", False), "recording_tone": ("2001700", True)}
    calls = []
    for name, (number, plays) in plan.items():
        call = {"uri": sip_uri(number, carrier.port), "hangup_after_answer": 3.0,
                "record": str(workdir / f"{name}.wav")}
        if plays:
            call["play"] = str(tone)
        calls.append(call)
    reports = place_calls(calls, workdir)
    return {name: {"report": report, "rms": rms(workdir / f"{name}.wav")}
            for name, report in zip(plan, reports)}


def test_media_calls_are_answered_and_caller_bye_is_accepted(
        carrier: CarrierProcess, media_calls: dict[str, Any]) -> None:
    reports = [call["report"] for call in media_calls.values()]
    for report in reports:
        assert report["final_code"] == 200 and report["media_active"], report
        assert report["we_hung_up"]
    _assert_handled(carrier, reports)


def test_default_number_echoes_the_callers_audio(media_calls: dict[str, Any]) -> None:
    assert media_calls["silent"]["rms"] < 0.01, "silence should come back as silence"
    assert media_calls["echo"]["rms"] > 0.1, "the caller's tone should come back"


def test_700_plays_a_recording_instead_of_echoing(media_calls: dict[str, Any]) -> None:
    assert media_calls["recording"]["rms"] > 0.02, "the recording should be heard"
    # With a tone from the caller the level stays that of the recording: an
    # echo of the tone would be several times louder.
    assert media_calls["recording_tone"]["rms"] < media_calls["echo"]["rms"] / 2


def test_carrier_hangs_up_after_the_hold_time(short_carrier: CarrierProcess,
                                              tmp_path: Path) -> None:
    report = place_call({"uri": sip_uri("2002102", short_carrier.port)}, tmp_path,
                        max_seconds=20)
    assert report["final_code"] == 200
    assert not report["we_hung_up"], "the carrier, not the caller, should end the call"
    held = report["disconnected_at"] - report["answered_at"]
    assert 1.5 <= held <= 10, f"call held {held:.1f} s with a 2 s hold"
    _assert_handled(short_carrier, [report])


def test_a_reinvite_is_answered_and_the_call_goes_on(short_carrier: CarrierProcess,
                                                     tmp_path: Path) -> None:
    report = place_call({"uri": sip_uri("2005102", short_carrier.port),
                         "reinvite_after_answer": 0.5}, tmp_path, max_seconds=20)
    assert report["reinvited"] and report["final_code"] == 200
    # The re-INVITE was answered with SDP: the media was (re)negotiated twice.
    assert report["media_updates"] >= 2, report
    # The call then ended normally, by the carrier's hold timer.
    assert not report["we_hung_up"]
    _assert_handled(short_carrier, [report])


def test_twenty_concurrent_calls_are_all_answered(carrier: CarrierProcess,
                                                  tmp_path: Path) -> None:
    # sipp's stock UAC: INVITE, expects 200, ACK, holds 4 s, BYE. All 20 are
    # started within a fraction of a second, so they overlap.
    result = subprocess.run(
        ["sipp", f"127.0.0.1:{carrier.port}", "-sn", "uac", "-s", "2003102",
         "-m", "20", "-l", "20", "-r", "100", "-d", "4000",
         "-i", "127.0.0.1", "-bind_local", "-nostdin", "-timeout", "40", "-timeout_error"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"Successful call\s*\|\s*\d+\s*\|\s*20\b", result.stdout)
    peak = re.search(r"Peak was (\d+) calls", result.stdout)
    assert peak and int(peak.group(1)) == 20, "the calls should have been up at the same time"
    assert count_invites(carrier.log_dir, "2003102") == 20


def test_count_invites_counts_calls_per_number(carrier: CarrierProcess, tmp_path: Path) -> None:
    call = {"uri": sip_uri("+2004102", carrier.port), "hangup_after_answer": 0.2}
    place_calls([call, dict(call)], tmp_path)
    assert count_invites(carrier.log_dir, "+2004102") == 2
    assert count_invites(carrier.log_dir, "2004102") == 2  # compared on digits
    assert count_invites(carrier.log_dir, "2004103") == 0


def test_the_invite_log_says_when_each_invite_arrived(carrier: CarrierProcess,
                                                     tmp_path: Path) -> None:
    before = time.time()
    place_call({"uri": sip_uri("2005486", carrier.port)}, tmp_path)
    after = time.time()
    times = invite_times(carrier.log_dir, "+2005486")
    assert len(times) == 1 and before <= times[0] <= after, (before, times, after)
    assert invite_times(carrier.log_dir, "2005487") == []
