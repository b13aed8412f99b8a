"""Transcripts from the settled call to GET /api/transcript, over the real database
(SQLite and PostgreSQL), Redis, local storage and faster-whisper with the bundled
tiny.en model; and the Amazon Transcribe backend on moto's S3 server.

A call is settled as the events process settles it (its request row, its CDR through
the writer, then the notifier's subscribers); the job the subscriber queued is then
taken off the real ``transcripts`` queue and run as the transcriber process runs it.
"""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis as redis_lib
from botocore.stub import ANY, Stubber
from rq import Queue
from rq.job import JobStatus

from cpaas.callbacks.scheduler import CallbackTask
from cpaas.calls.retention import RetentionTask
from cpaas.calls.service import record_request, recording_key
from cpaas.cdr.writer import CdrRecord, write
from cpaas.db import database
from cpaas.models import CallRequest, Transcript
from cpaas.notifier import platform_notifier
from cpaas.storage import storage_for
from cpaas.telephony.plans import Record
from cpaas.transcription import job as transcription
from cpaas.transcription.aws import AwsBackend
from cpaas.transcription.keys import transcript_audio_key
from cpaas.transcription.queueing import QUEUE, TranscriptionJob
from cpaas.transcription.sweep import PendingTranscriptSweep
from cpaas.transcription.whisper import WhisperBackend, load_model
from cpaas.validation import utcnow
from tests.api.helpers import account_id, clean_bucket, error_body, ok_body, wav_bytes  # noqa: F401
from tests.api.test_callback_scheduler import Clock as SchedulerClock, create, plan_of, run
from tests.api.test_csv_import import s3_app  # noqa: F401 - moto's real S3 server
from tests.api.test_recording_storage import Clock
from tests.speech import speak, stereo

SENTENCE = "Glue the sheet to the dark blue background."
REQUEST = "c0ffee0001"


@pytest.fixture(scope="module")
def model():
    """One loaded tiny.en model for the module (the worker loads it once per process)."""
    return load_model(threads=2)


@pytest.fixture
def redis_env(settings, monkeypatch):
    """The notifier's subscribers find the test's Redis through the environment."""
    monkeypatch.setenv("REDIS_URL", settings.redis_url)


@pytest.fixture(scope="module")
def customer_speech(tmp_path_factory) -> Path:
    """A call recording: the agent silent on the left, the customer saying SENTENCE."""
    folder = tmp_path_factory.mktemp("speech")
    return stereo(folder / "call.wav", right=speak(SENTENCE, folder / "customer.wav"))


def settle(settings, *, transcript: str = "on", option: str = "off", answered: bool = True,
           audio: Path | None = None, request_id: str = REQUEST,
           ended: datetime | None = None) -> CdrRecord:
    """A click2call that ended: its request, its stored audio (where the plan records
    it), its CDR, then the notifier's subscribers, as in the events process."""
    own = option != "both"
    key = transcript_audio_key("account_1", request_id) if own else recording_key("account_1", request_id)
    if audio is not None:
        storage_for(settings).put_file(key, audio)
    with database.connection_context():
        record_request(account_id("account_1"), request_id, "c2c", agent_number="919979270001",
                       customer_number="918000680102", caller_id="15168148111",
                       recording_option=option, transcript=transcript,
                       destination_context="click2call", call_direction="outbound-api")
        ended = ended or utcnow()
        record = CdrRecord(
            account_id=account_id("account_1"), request_id=request_id,
            uniqueid=f"1700000000.{request_id}", dial_status="ANSWER" if answered else "BUSY",
            call_date=ended, destination_context="click2call", call_direction="outbound-api",
            caller_id="15168148111", dialed_number="918000680102", agent_number="919979270001",
            customer_number="918000680102",
            recording_name="" if own or not answered else key)
        assert write(record) is not None
        request = CallRequest.get_by_id(request_id)
    platform_notifier().call_settled(request, record)
    return record


def queued_jobs(settings) -> list[TranscriptionJob]:
    queue = Queue(QUEUE, connection=redis_lib.Redis.from_url(settings.redis_url))
    return [job.args[0] for job in queue.get_jobs()]


def run_queued(settings, model) -> list[TranscriptionJob]:
    """Take each queued job off the queue and run it as the transcriber does."""
    storage = storage_for(settings)
    backend = WhisperBackend(storage, model=model)
    jobs = queued_jobs(settings)
    for job in jobs:
        with database.connection_context():
            try:
                transcription.run(backend, storage, job)
            except Exception:  # noqa: BLE001 - the status says failed; the test checks it
                pass
    return jobs


def transcript_of(api, request_id: str = REQUEST) -> dict:
    return ok_body(api.get(f"/api/transcript?request_id={request_id}"))


def cdr_of(api, request_id: str = REQUEST) -> dict:
    rows = ok_body(api.post("/api/get_cdr_by_request_id", {"request_id": request_id}))["result"]
    assert len(rows) == 1
    return rows[0]


def words(text: str) -> list[str]:
    return "".join(c for c in text.lower() if c.isalnum() or c == " ").split()


def test_an_answered_call_is_pending_then_done_and_its_transcript_only_audio_goes(
        app, api, settings, clean_bucket, redis_env, model, customer_speech):  # noqa: F811
    settle(settings, option="off", audio=customer_speech)
    assert cdr_of(api)["transcript_status"] == "pending"
    assert transcript_of(api) == {"request_id": REQUEST, "transcript_status": "pending",
                                  "result": [], "success": "true"}
    jobs = run_queued(settings, model)
    assert [(j.key, j.speakers, j.delete_audio) for j in jobs] == [
        (transcript_audio_key("account_1", REQUEST), ("agent", "customer"), True)]

    done = transcript_of(api)
    assert done["transcript_status"] == "done" and cdr_of(api)["transcript_status"] == "done"
    [turn] = done["result"]
    assert turn["speaker"] == "customer" and 0.0 <= turn["start"] < turn["end"]
    assert words(turn["text"]) == words(SENTENCE)
    # Audio recorded only for the transcript is gone, and was never downloadable.
    assert not storage_for(settings).exists(transcript_audio_key("account_1", REQUEST))
    assert cdr_of(api)["recording_name"] == ""
    error_body(api.get(f"/api/recording?request_id={REQUEST}"), 404, "request_id")


def test_a_both_sides_recording_is_transcribed_and_kept_for_download(
        app, api, settings, clean_bucket, redis_env, model, customer_speech):  # noqa: F811
    settle(settings, option="both", audio=customer_speech)
    [job] = run_queued(settings, model)
    assert (job.key, job.delete_audio) == (recording_key("account_1", REQUEST), False)
    assert [t["speaker"] for t in transcript_of(api)["result"]] == ["customer"]
    download = api.get(f"/api/recording?request_id={REQUEST}")
    assert download.status_code == 200 and download.data == customer_speech.read_bytes()


@pytest.mark.parametrize("transcript,answered", [("off", True), ("on", False)])
def test_transcript_off_or_an_unanswered_call_queues_nothing(
        app, api, settings, redis_env, transcript, answered):
    settle(settings, transcript=transcript, answered=answered)
    assert queued_jobs(settings) == []
    assert cdr_of(api)["transcript_status"] == "off"
    assert transcript_of(api)["transcript_status"] == "off"


def test_missing_audio_ends_failed(app, api, settings, clean_bucket, redis_env, model):  # noqa: F811
    settle(settings, option="customer", audio=None)
    run_queued(settings, model)
    assert transcript_of(api) == {"request_id": REQUEST, "transcript_status": "failed",
                                  "result": [], "success": "true"}
    assert cdr_of(api)["transcript_status"] == "failed"


def test_a_call_still_in_progress_is_pending_if_it_asked(app, api, settings):
    with database.connection_context():
        record_request(account_id("account_1"), REQUEST, "c2c", agent_number="919979270001",
                       customer_number="918000680102", caller_id="15168148111",
                       recording_option="off", transcript="on",
                       destination_context="click2call", call_direction="outbound-api")
    assert transcript_of(api)["transcript_status"] == "pending"


def test_another_account_or_an_unknown_request_gets_404(
        app, api, other, settings, clean_bucket, redis_env, model, customer_speech):  # noqa: F811
    settle(settings, audio=customer_speech)
    run_queued(settings, model)
    assert transcript_of(api)["transcript_status"] == "done"
    for client, request_id in ((other, REQUEST), (api, "0000000000")):
        resp = client.get(f"/api/transcript?request_id={request_id}")
        error_body(resp, 404, "request_id")
        assert SENTENCE.split()[0].lower() not in resp.get_data(as_text=True).lower()
    error_body(api.get("/api/transcript?request_id=not-an-id"), 400, "request_id")
    error_body(api.get("/api/transcript"), 400, "request_id")


def test_retention_deletes_old_transcripts(app, api, settings, clean_bucket, redis_env,  # noqa: F811
                                           model, customer_speech):
    start = datetime(2026, 12, 1, 9, 0, 0)
    settle(settings, audio=customer_speech, ended=start)
    settle(settings, audio=customer_speech, ended=start + timedelta(seconds=8),
           request_id="c0ffee0002")
    run_queued(settings, model)
    retained = dataclasses.replace(settings, recording_retention_days=10 / 86400)   # 10 s
    task = RetentionTask(retained, storage_for(settings), clock=Clock(start + timedelta(seconds=12)))
    with database.connection_context():
        task()
    assert transcript_of(api) == {"request_id": REQUEST, "transcript_status": "deleted",
                                  "result": [], "success": "true"}
    assert cdr_of(api)["transcript_status"] == "deleted"
    with database.connection_context():
        assert [t.request_id for t in Transcript.select()] == ["c0ffee0002"]
    assert transcript_of(api, "c0ffee0002")["transcript_status"] == "done"
    assert transcript_of(api, "c0ffee0002")["result"]


def test_a_callback_with_transcript_on_records_both_sides_for_it(app, api, settings):
    r = redis_lib.Redis.from_url(settings.redis_url)
    clock = SchedulerClock()
    request_id, at = create(api, recording_option="off", transcript="on")
    assert ok_body(api.get(f"/api/callback?request_id={request_id}"))["result"]["transcript"] == "on"
    clock.at = at + timedelta(seconds=1)
    run(CallbackTask(settings, r, clock))
    with database.connection_context():
        assert CallRequest.get_by_id(request_id).transcript == "on"
    records = [v for v in plan_of(r, request_id).verbs if isinstance(v, Record)]
    assert [(v.key, v.left, v.right) for v in records] == [
        (transcript_audio_key("account_1", request_id), "agent", "customer")]


# --- Amazon Transcribe (moto's S3 server; botocore's Stubber for Transcribe itself) ------

def test_amazon_transcribe_reads_the_recording_and_its_result_through_the_bucket(
        s3_app):  # noqa: F811
    import boto3

    _, s3, s3_settings = s3_app
    storage = storage_for(s3_settings)
    key = recording_key("account_1", REQUEST)
    wav = s3_settings.data_dir / "tiny.wav"
    wav.write_bytes(wav_bytes())
    storage.put_file(key, wav)
    client = boto3.client("transcribe", region_name="us-east-1")
    output = f"prefix/accounts/account_1/recordings/{REQUEST}.transcribe.json"
    result = {"results": {"channel_labels": {"number_of_channels": 2, "channels": [
        {"channel_label": "ch_0", "items": [
            {"type": "pronunciation", "start_time": "0.4", "end_time": "0.8",
             "alternatives": [{"content": "Hello"}]},
            {"type": "punctuation", "alternatives": [{"content": "."}]}]},
        {"channel_label": "ch_1", "items": [
            {"type": "pronunciation", "start_time": "1.2", "end_time": "1.5",
             "alternatives": [{"content": "Hi"}]}]}]}}}

    def transcribe_writes_its_result(**_):
        # What the service does once the job completes: its JSON lands in our bucket.
        s3.put_object(Bucket="bucket", Key=output, Body=json.dumps(result).encode())

    stub = Stubber(client)
    stub.add_response("start_transcription_job", {"TranscriptionJob": {
        "TranscriptionJobName": "x", "TranscriptionJobStatus": "IN_PROGRESS"}}, {
        "TranscriptionJobName": ANY, "LanguageCode": "en-US", "MediaFormat": "wav",
        "Media": {"MediaFileUri": f"s3://bucket/prefix/{key}"},
        "OutputBucketName": "bucket", "OutputKey": output,
        "Settings": {"ChannelIdentification": True}})
    stub.add_response("get_transcription_job", {"TranscriptionJob": {
        "TranscriptionJobName": "x", "TranscriptionJobStatus": "IN_PROGRESS"}},
        {"TranscriptionJobName": ANY})
    stub.add_response("get_transcription_job", {"TranscriptionJob": {
        "TranscriptionJobName": "x", "TranscriptionJobStatus": "COMPLETED"}},
        {"TranscriptionJobName": ANY})
    slept: list[float] = []
    backend = AwsBackend(storage, client, poll_every=0.01,
                         sleep=lambda s: (slept.append(s), transcribe_writes_its_result()))
    with stub:
        channels = backend.transcribe(key, ("agent", "customer"))
    stub.assert_no_pending_responses()
    assert slept == [0.01]
    assert {speaker: [s.text for s in segs] for speaker, segs in channels.items()} == {
        "agent": ["Hello."], "customer": ["Hi"]}
    # Our copy is the turns; the service's output does not stay in the bucket.
    assert "Contents" not in s3.list_objects_v2(Bucket="bucket", Prefix=output)


# --- a lost job (the transcriber killed mid-job, Redis flushed) -------------------------

def test_a_pending_transcript_whose_job_was_lost_is_queued_again(
        app, api, settings, clean_bucket, redis_env, model, customer_speech):  # noqa: F811
    r = redis_lib.Redis.from_url(settings.redis_url)
    ended = utcnow() - timedelta(minutes=5)
    settle(settings, audio=customer_speech, ended=ended)
    settle(settings, audio=customer_speech, ended=ended, request_id="c0ffee0002")
    clock = Clock(utcnow())
    sweep = PendingTranscriptSweep(r, clock=clock)
    with database.connection_context():
        sweep()                                  # both jobs are queued: nothing to do
    assert len(queued_jobs(settings)) == 2
    # One job vanishes (Redis lost it); the other died in a killed worker, so RQ holds it
    # as failed without our code having moved its status.
    Queue(QUEUE, connection=r).empty()
    settle(settings, audio=customer_speech, ended=ended, request_id="c0ffee0003")
    dead = Queue(QUEUE, connection=r).fetch_job("transcript-c0ffee0003")
    dead.set_status(JobStatus.FAILED)
    Queue(QUEUE, connection=r).remove(dead)
    with database.connection_context():
        sweep()                                  # too soon: it looks once a minute
    assert queued_jobs(settings) == []
    clock.at += timedelta(seconds=61)
    with database.connection_context():
        sweep()
    assert sorted(j.request_id for j in queued_jobs(settings)) == [
        REQUEST, "c0ffee0002", "c0ffee0003"]
    run_queued(settings, model)
    for request_id in (REQUEST, "c0ffee0002", "c0ffee0003"):
        assert transcript_of(api, request_id)["transcript_status"] == "done"
