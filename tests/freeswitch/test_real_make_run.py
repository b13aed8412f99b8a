"""``make run`` with ``FREESWITCH_ESL`` set, against a real FreeSWITCH (opt-in).

The whole platform as a user starts it: click2call with recording and an OTP call go
through the API to the node, ``live_calls`` shows ``FS/…`` channels that ``modify_call``
acts on, and the CDRs and the stereo recording come out as on the embedded engine. The
node's gateway must reach a sandbox carrier on 127.0.0.1:5070 (started here unless one
answers, with ``CPAAS_SANDBOX_CARRIER=1``).
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import wave
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

import sandbox_carrier
from cpaas.calls.service import recording_key
from cpaas.transcription.keys import transcript_audio_key
from tests.api.helpers import campaign_body
from tests.launcher import ROOT, wait_for
from tests.servers import free_port

pytestmark = pytest.mark.skipif(not os.environ.get("FREESWITCH_ESL"),
                                reason="needs a real FreeSWITCH: set FREESWITCH_ESL")

SECRET = "make-run-secret-0123456789"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """``make run`` in its own process group, on a private data folder and port."""
    yield from _make_run(tmp_path_factory.mktemp("make-run"), free_port(), {})


@pytest.fixture(scope="module")
def http_platform(tmp_path_factory):
    """``make run`` whose node gets prompts over HTTP only (its media folder does not exist)."""
    port = free_port()
    yield from _make_run(tmp_path_factory.mktemp("make-run-http"), port, {
        "FREESWITCH_MEDIA_URL": f"http://127.0.0.1:{port}",
        "FREESWITCH_MEDIA_DIR": "/nonexistent/cpaas-media"})


def _make_run(data, port: int, extra: dict[str, str]):
    env = {**os.environ, "CPAAS_DATA_DIR": str(data), "PORT": str(port),
           "CPAAS_ACCOUNT_1_AUTH": SECRET, "CPAAS_RING_TIMEOUT": "10", **extra}
    if not sandbox_carrier.probe("127.0.0.1", 5070, timeout=0.5):
        env["CPAAS_SANDBOX_CARRIER"] = "1"
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    log = open(data / "run.log", "wb")
    proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def ready():
        try:
            health = requests.get(f"{base}/healthz", timeout=2).json()["response"]
        except (requests.RequestException, ValueError):
            return None
        return health if health.get("engine") == "ok" else None

    try:
        health = wait_for(ready, 120, "make run up with its FreeSWITCH node")
        assert (health["engine_type"], health["engine_nodes"]) == ("freeswitch", "1/1")
        yield base, data
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        log.close()
        if env.get("CPAAS_SANDBOX_CARRIER") == "1":
            # `make` is gone before its carrier: the next module must not take this one
            # (its hold time and DTMF timing are make run's) for a carrier of its own.
            wait_for(lambda: not sandbox_carrier.probe("127.0.0.1", 5070, timeout=0.2),
                     30, "make run's sandbox carrier stopped")


def _api(base: str, path: str, body: dict | None = None) -> dict:
    headers = {"account": "account_1", "auth": SECRET}
    if body is None:
        answer = requests.get(f"{base}/api/{path}", headers=headers, timeout=10)
    else:
        answer = requests.post(f"{base}/api/{path}", json=body, headers=headers, timeout=10)
    return answer.json()["response"]


def _cdr(base: str, request_id: str, timeout: float = 60) -> dict:
    def found():
        answer = _api(base, "get_cdr_by_request_id", {"request_id": request_id})
        return (answer.get("result") or [None])[0] if answer.get("success") == "true" else None
    return wait_for(found, timeout, f"CDR of {request_id}", 0.5)


def test_click2call_with_recording_then_modify_call_hangup(platform):
    _click2call_recorded(*platform)


def test_a_node_without_our_folders_uploads_its_recording(http_platform):
    base, data = http_platform
    _click2call_recorded(base, data)
    log = (data / "run.log").read_text(errors="replace")
    assert log.count("recording received from a node") == 1


def _bridged_click2call(base: str, customer: str, recording_option: str,
                        transcript: str) -> tuple[str, list[dict]]:
    """A click2call through the API, once ``live_calls`` shows both legs bridged: its
    request id and those legs."""
    request_id = _api(base, "click2call", {
        "agent_number": "919900000101", "caller_id": "15168148111",
        "destination_number": customer, "recording_option": recording_option,
        "transcript": transcript})["request_id"]

    def bridged():
        legs = [leg for leg in _api(base, "live_calls")["result"]
                if leg["request_id"] == request_id]
        return legs if len(legs) == 2 and all(l["state"] == "bridged" for l in legs) else None

    return request_id, wait_for(bridged, 60, "both legs bridged", 0.5)


def _click2call_recorded(base: str, data: Path) -> None:
    """click2call with recording, hung up by modify_call; the stereo recording stored."""
    request_id, legs = _bridged_click2call(base, "919900000102", "on", "off")
    assert all(leg["channel"].startswith("FS/") for leg in legs)
    customer = next(leg for leg in legs if leg["role"] == "customer")
    time.sleep(2)   # two seconds of the bridged call recorded
    answer = _api(base, "modify_call", {"channel": customer["channel"], "modify_type": "2"})
    assert answer["success"] == "true"
    cdr = _cdr(base, request_id)
    assert (cdr["dial_status"], cdr["call_status"], cdr["destination_context"]) == (
        "ANSWER", "ANSWERED", "click2call")
    recording = requests.get(f"{base}/api/recording", params={"request_id": request_id},
                             headers={"account": "account_1", "auth": SECRET}, timeout=10)
    path = data / f"call-{request_id}.wav"
    path.write_bytes(recording.content)
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
        assert wav.getnframes() > 8000   # the seconds the call was bridged
    # Stored, so no copy is kept where the node wrote (or uploaded) it.
    assert not list((data / "engine-recordings").glob("*.wav"))


def test_transcript_on_a_freeswitch_call(platform):
    """``transcript: on`` on FreeSWITCH: both sides recorded on the node for the
    transcript, transcribed by make run's transcriber, and only the asked side offered.
    The customer is the carrier's …700 number, which plays a speech recording."""
    base, data = platform
    request_id, legs = _bridged_click2call(base, "919900000700", "agent", "on")
    time.sleep(6)   # most of the carrier's ~7 s recording
    agent = next(leg for leg in legs if leg["role"] == "agent")
    assert _api(base, "modify_call", {"channel": agent["channel"], "modify_type": "2"})["success"] == "true"
    assert _cdr(base, request_id)["dial_status"] == "ANSWER"

    def finished():
        answer = _api(base, f"transcript?request_id={request_id}")
        return answer if answer.get("transcript_status") in ("done", "failed") else None

    done = wait_for(finished, 180, f"the transcript of {request_id}", 1)
    assert done["transcript_status"] == "done"
    turns = done["result"]
    assert turns and {t["speaker"] for t in turns} <= {"agent", "customer"}
    assert any(t["speaker"] == "customer" and t["text"].strip() for t in turns)
    assert _cdr(base, request_id)["transcript_status"] == "done"
    recording = requests.get(f"{base}/api/recording", params={"request_id": request_id},
                             headers={"account": "account_1", "auth": SECRET}, timeout=10)
    path = data / f"agent-{request_id}.wav"
    path.write_bytes(recording.content)
    with wave.open(str(path)) as wav:
        assert wav.getnchannels() == 1   # the agent's side only: the stereo was the transcript's
    assert (data / "bucket" / recording_key("account_1", request_id)).exists()
    assert not (data / "bucket" / transcript_audio_key("account_1", request_id)).exists()
    assert not list((data / "engine-recordings").glob("*.wav"))


def _otp_played_twice(base: str, otp: str) -> None:
    """An OTP call through the API, answered, its prompt played twice before the hangup."""
    template = _api(base, "announce_template")["result"][0]["announce_template_id"]
    request_id = _api(base, "outbound_call", {
        "customer_number": "919900000001", "otp": otp, "announce_template_id": template,
        "repeat": "2", "caller_id": "15168148111", "voice": "Raveena", "volume": "medium",
        "rate": "medium", "pitch": "medium"})["request_id"]
    cdr = _cdr(base, request_id)
    assert (cdr["dial_status"], cdr["destination_context"]) == ("ANSWER", "otp")
    assert float(cdr["billsec"]) > 2


def test_otp_call(platform):
    base, data = platform
    _otp_played_twice(base, "1987")
    # The secret prompt is gone from the folder the node read it from.
    assert not [p for p in (data / "media" / "calls").rglob("*") if p.is_file()]


def test_a_busy_number(platform):
    base, _ = platform
    request_id = _api(base, "click2call", {
        "agent_number": "919900000486", "caller_id": "15168148111",
        "destination_number": "919900000102", "recording_option": "off",
        "transcript": "off"})["request_id"]
    cdr = _cdr(base, request_id)
    assert (cdr["dial_status"], cdr["call_status"]) == ("BUSY", "BUSY")


def _utc(delta: timedelta = timedelta()) -> str:
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%d %H:%M:%S")


def test_ivr_campaign_with_dtmf_and_a_digit_map_transfer(platform):
    """The carrier sends digit 1 to a …551 number and 2 to …552; …444 presses nothing."""
    base, _ = platform
    list_id = _api(base, "create_campaign_list", {"list_name": "fs_ivr"})["list_id"]
    presses, wrong, silent = "919900100551", "919900100552", "919900100444"
    _api(base, "add_contact_to_list", {"list_id": list_id, "contacts": [
        {"contact_name": f"c{i}", "contact_number": n} for i, n in enumerate((presses, wrong, silent))]})
    campaign = _api(base, "create_campaign", campaign_body(
        list_id, campaign_name="fs_ivr", campaign_type="1", announcement_text="Hi.",
        time_zone="UTC", campaign_start_date=_utc(-timedelta(minutes=1)),
        campaign_end_date=_utc(timedelta(hours=1)), repeat="1", max_retries="0",
        calls_per_minute="600", ivr_timeout="4", voice="Joanna",
        ivr_digit_map={"1": "number:919900100333"}))["campaign_id"]

    def cdrs():
        rows = _api(base, "get_cdr_by_date", {"start_call_date": _utc()[:10],
                                             "end_call_date": _utc()[:10], "record_count": "100"})
        found = {r["customer_number"]: r for r in rows.get("result", [])
                 if r["customer_number"] in (presses, wrong, silent)}
        return found if len(found) == 3 else None

    rows = wait_for(cdrs, 120, f"the CDRs of campaign {campaign}", 1)
    assert (rows[presses]["dtmf_inputs"], rows[presses]["transfer_to"]) == ("1", "number:919900100333")
    assert (rows[wrong]["dtmf_inputs"], rows[wrong]["hangup_cause"]) == ("2", "ivr invalid")
    assert (rows[silent]["dtmf_inputs"], rows[silent]["hangup_cause"]) == ("", "ivr no_input")


@pytest.mark.skipif(not os.environ.get("FREESWITCH_CACHE_DIRS"),
                    reason="set FREESWITCH_CACHE_DIRS to the node's mod_http_cache location and "
                           "mod_httapi's (<storage_dir>/http_file_cache), colon-separated")
def test_otp_over_http_leaves_no_prompt_on_the_node(http_platform):
    base, data = http_platform
    folders = [Path(p) for p in os.environ["FREESWITCH_CACHE_DIRS"].split(":")]

    def cached() -> set[Path]:
        return {p for folder in folders for p in folder.rglob("*") if p.is_file()}

    before, seen, done = cached(), set(), threading.Event()

    def watch() -> None:   # proves the node did download into these folders meanwhile
        while not done.wait(0.05):
            seen.update(cached() - before)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        _otp_played_twice(base, "2468")   # from the URL: the node has no media folder
    finally:
        done.set()
        watcher.join(5)
    log = (data / "run.log").read_text(errors="replace")
    assert log.count("prompt served to a node") == 2   # one single-use URL per round
    assert "fetched again" not in log
    assert any(p.suffix == ".wav" for p in seen)   # a copy existed while it played...
    assert cached() <= before                      # ...and each was deleted as it closed
    assert not [p for p in (data / "media" / "calls").rglob("*") if p.is_file()]
