"""OTP calls: the announcement reaches the far end, as long as text and repeats imply."""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import stat
import subprocess
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest
import redis as redis_lib
from flask import Flask
from rq import Queue

from cpaas import accounts, config, db
from cpaas.app import create_app
from cpaas.platform import CALLS_QUEUE
from cpaas.telephony import audio, tts
from pjsua_engine import keys
from tests import launcher, servers
from tests.api.conftest import Api, body
from tests.launcher import wait_for
from tests.e2e.conftest import HOLD, Platform
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


# --- a data folder whose path has a space ------------------------------------------

#: Carried by an OTP call below, then looked for everywhere it must not be.
SECRET_OTP = "73920518"
DIGIT_WORDS = "zero one two three four five six seven eight nine".split()


@pytest.fixture(scope="module")
def spaced(tmp_path_factory, postgres_url) -> Iterator[Platform]:
    """A second, small platform whose data folder has spaces in its path, on its own Redis."""
    data_dir = tmp_path_factory.mktemp("otp") / "data folder with spaces"
    with servers.redis_server() as redis_url, \
            launcher.platform(data_dir, redis_url, postgres_url, hold=HOLD, engine_workers=1,
                              rq_workers=1, extra_env={"CPAAS_RTP_PORT": "15000"}) as running:
        yield Platform(running)


def test_otp_call_from_a_data_folder_with_spaces(spaced, tmp_path):
    api = spaced.client()
    assert " " in str(spaced.settings.media_dir)
    expected = audio.duration(tts.render_text(
        TEMPLATE.replace("{otp}", tts.speak_digits("1987")), tts.Prosody(), tmp_path / "expected.wav"))
    capture = RtpCapture(spaced.media_port)
    try:
        request_id = _otp(api, number("001"))
        cdr = spaced.cdr(api, request_id)
    finally:
        capture.stop()
    assert cdr["dial_status"] == "ANSWER", cdr
    # The announcement reached the carrier: sound spans about its length.
    assert expected - 1.5 <= capture.voiced_span() <= expected + 1.5
    assert capture.voiced_packets() * 0.02 >= expected / 2
    assert not list((spaced.settings.media_dir / "calls").glob(f"{request_id}-*.wav"))


# --- the OTP is never in Redis (nor the dashboard, nor the logs) in clear -------------

def _leak_patterns(otp: str) -> list[re.Pattern[bytes]]:
    """The OTP as digits, however separated (``7, 3, 9``, ``7 3 9``), and as words."""
    sep = rb"[^0-9A-Za-z]{0,4}"
    words = sep.join(DIGIT_WORDS[int(d)].encode() for d in otp)
    return [re.compile(sep.join(re.escape(d.encode()) for d in otp)),
            re.compile(words, re.IGNORECASE)]


def _leaks(blob: bytes, otp: str) -> list[str]:
    """Where ``blob`` (also as zlib data, as RQ stores a job's arguments) holds ``otp``."""
    texts = [blob]
    try:
        texts.append(zlib.decompress(blob))
    except zlib.error:
        pass
    return [m.group(0).decode(errors="replace") for text in texts
            for pattern in _leak_patterns(otp) for m in [pattern.search(text)] if m]


def _redis_contents(r: redis_lib.Redis) -> list[bytes]:
    """Every key and value Redis holds, read by type and as DUMP, plus its files on disk."""
    r.config_set("rdbcompression", "no")   # DUMP and the RDB file then hold strings as is
    blobs: list[bytes] = []
    for key in r.scan_iter(count=1000):
        kind = r.type(key).decode()
        blobs += [key, r.dump(key) or b""]
        if kind == "string":
            blobs.append(r.get(key) or b"")
        elif kind == "hash":
            blobs += [item for pair in r.hgetall(key).items() for item in pair]
        elif kind == "list":
            blobs += r.lrange(key, 0, -1)
        elif kind == "set":
            blobs += list(r.smembers(key))
        elif kind == "zset":
            blobs += r.zrange(key, 0, -1)
        elif kind == "stream":
            blobs += [item for _id, fields in r.xrange(key) for pair in fields.items()
                      for item in pair]
    r.save()
    folder = Path(r.config_get("dir")["dir"])
    blobs += [path.read_bytes() for path in folder.rglob("*") if path.is_file()]
    return blobs


def _assert_nowhere(blobs: list[bytes], otp: str) -> None:
    found = [leak for blob in blobs for leak in _leaks(blob, otp)]
    assert not found, f"the OTP is in clear: {found[:5]}"


@pytest.fixture
def no_worker(tmp_path, postgres_url) -> Iterator[tuple[config.Settings, Flask, dict[str, str]]]:
    """The API on a Redis of its own (append-only file on), with no RQ worker and no engine."""
    data_dir = tmp_path / "data dir"
    with servers.redis_server(durable=True) as redis_url:
        settings = config.Settings(data_dir=data_dir, database_url=postgres_url, redis_url=redis_url,
                                   storage_url=str(data_dir / "bucket"), auth_fail_limit=10_000,
                                   admin_password="operator-pass")
        database = db.init(postgres_url)
        db.create_schema(database)
        with database.connection_context():
            accounts.seed(data_dir, launcher.SECRETS, settings.admin_password)
        env = {"CPAAS_DATA_DIR": str(data_dir), "DATABASE_URL": postgres_url, "REDIS_URL": redis_url,
               "CPAAS_STORAGE_URL": settings.storage_url, "PYTHONPATH": str(launcher.ROOT)}
        app = create_app(settings)
        # The dashboard cuts a job's arguments short unless told to show them whole.
        app.config["RQ_DASHBOARD_SHOW_FULL_ARGS"] = True
        yield settings, app, env


def _dashboard_job_views(app, queue: str) -> tuple[list[str], list[bytes]]:
    """The ids of the jobs /rq lists as queued, and each job's pages (HTML and JSON)."""
    client = app.test_client()
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:operator-pass").decode()}
    listing = client.get(f"/rq/0/data/jobs/{queue}/queued/100/asc/1.json", headers=auth)
    assert listing.status_code == 200, listing.data
    ids = [job["id"] for job in listing.get_json()["jobs"]]
    pages = [listing.data]
    for job_id in ids:
        for path in (f"/rq/0/view/job/{job_id}", f"/rq/0/data/job/{job_id}.json"):
            page = client.get(path, headers=auth)
            assert page.status_code == 200, (path, page.data[:300])
            pages.append(page.data)
    return ids, pages


def test_the_otp_is_never_in_redis_the_dashboard_or_the_logs_in_clear(no_worker, capfd, caplog):
    settings, app, env = no_worker
    caplog.set_level(logging.INFO)
    api = Api(app.test_client(), "account_1", launcher.SECRETS["account_1"])
    r = redis_lib.Redis.from_url(settings.redis_url)
    assert r.config_get("appendonly")["appendonly"] == "yes"   # its file is searched too
    sent = api.post("/api/outbound_call", {"customer_number": number("001"), "otp": SECRET_OTP,
                                            "announce_template_id": _template_id(api),
                                            "caller_id": CALLER_ID})
    assert sent.status_code == 200, sent.data
    request_id = body(sent)["request_id"]

    # No worker runs: the job stays queued, and the dashboard shows it with its arguments.
    ids, pages = _dashboard_job_views(app, CALLS_QUEUE)
    assert len(ids) == 1 and any(request_id.encode() in page for page in pages[1:])
    _assert_nowhere(pages, SECRET_OTP)
    _assert_nowhere(_redis_contents(r), SECRET_OTP)
    # Nor what the API process logged for the request.
    _assert_nowhere([caplog.text.encode(), *(part.encode() for part in capfd.readouterr())],
                    SECRET_OTP)

    # A worker runs the job: the plan it queues for the engine carries an audio path only,
    # the prompt is rendered, and nothing it logs at INFO holds the OTP.
    worker = subprocess.run(
        [str(launcher.VENV_BIN / "rq"), "worker", "--burst", "--logging_level", "INFO",
         "-w", "workers.worker.WarmWorker", "-u", settings.redis_url, CALLS_QUEUE],
        env={**os.environ, **env}, cwd=launcher.ROOT, capture_output=True, timeout=120)
    assert worker.returncode == 0, worker.stderr[-2000:]
    logged = worker.stdout + worker.stderr
    assert b"place_call" in logged
    _assert_nowhere([logged], SECRET_OTP)
    queued = r.lrange(keys.plan_queue(1), 0, -1)
    assert len(queued) == 1
    plan = json.loads(queued[0])
    assert plan["plan_id"] == request_id
    play = next(v for v in plan["verbs"] if v["verb"] == "Play")
    prompt = settings.media_dir / play["audio"]
    assert audio.is_audio_wav(prompt)
    assert stat.S_IMODE(prompt.stat().st_mode) == 0o600
    _assert_nowhere(_redis_contents(r), SECRET_OTP)
