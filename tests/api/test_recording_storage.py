"""Recordings at rest and their retention, over the real database (SQLite and PostgreSQL),
real storage (a local bucket; moto's real S3 server for encryption) and the real API.

Retention runs the scanner's task on an injected clock: a recording older than
CPAAS_RECORDING_RETENTION_DAYS (here a few seconds) is deleted from storage, its CDR
shows ``recording_name`` empty, and GET /api/recording says retention deleted it."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from cpaas import app as app_module
from cpaas.calls.retention import RetentionTask
from cpaas.calls.service import recording_key
from cpaas.db import database
from cpaas.models import Cdr
from cpaas.storage import storage_for
from tests.api.conftest import SECRETS, Api
from tests.api.helpers import clean_bucket, error_body, ok_body, upload, wav_bytes
from tests.api.test_cdr import cdr
from tests.api.test_csv_import import s3_app  # noqa: F401 - moto's real S3 server

WAV = wav_bytes()


# --- server-side encryption (moto's server) -------------------------------------------

@pytest.mark.parametrize("sse", ["AES256", "aws:kms"])
def test_s3_objects_are_encrypted_at_rest(s3_app, tmp_path, sse):  # noqa: F811
    import boto3

    _, s3, s3_settings = s3_app
    key_id = None
    if sse == "aws:kms":
        kms = boto3.client("kms", endpoint_url=s3_settings.s3_endpoint_url)
        key_id = kms.create_key(Description="recordings")["KeyMetadata"]["KeyId"]
    settings = dataclasses.replace(s3_settings, s3_sse=sse, s3_sse_kms_key_id=key_id)

    # A recording, stored as the engine stores it (put_file) ...
    wav = tmp_path / "call.wav"
    wav.write_bytes(WAV)
    key = recording_key("account_1", "b5e66bf36f")
    storage_for(settings).put_file(key, wav)
    # ... and a file uploaded through the API (put_stream).
    api = Api(app_module.create_app(settings).test_client(), "account_1", SECRETS["account_1"])
    ok_body(upload(api, "contacts.csv", "contact_number\n919979270001\n"))

    for stored in (key, "accounts/account_1/files/contacts.csv"):
        head = s3.head_object(Bucket="bucket", Key=f"prefix/{stored}")
        assert head["ServerSideEncryption"] == sse
        if key_id:
            assert head["SSEKMSKeyId"].endswith(key_id)
        else:
            assert "SSEKMSKeyId" not in head


def test_s3_without_sse_stores_plain_objects(s3_app, tmp_path):  # noqa: F811
    _, s3, s3_settings = s3_app
    wav = tmp_path / "call.wav"
    wav.write_bytes(WAV)
    storage = storage_for(s3_settings)
    sent: list[dict] = []
    # What the platform asks of S3 (moto, like S3 itself, may encrypt by default anyway).
    storage.client.meta.events.register("before-parameter-build.s3.PutObject",
                                        lambda params, **_: sent.append(dict(params)))
    storage.put_file("accounts/account_1/recordings/x.wav", wav)
    assert len(sent) == 1 and sent[0]["Key"] == "prefix/accounts/account_1/recordings/x.wav"
    assert not {"ServerSideEncryption", "SSEKMSKeyId"} & set(sent[0])
    head = s3.head_object(Bucket="bucket", Key="prefix/accounts/account_1/recordings/x.wav")
    assert head.get("ServerSideEncryption") != "aws:kms" and "SSEKMSKeyId" not in head


def test_unknown_sse_mode_is_refused(settings):
    with pytest.raises(ValueError, match="CPAAS_S3_SSE"):
        storage_for(dataclasses.replace(settings, storage_url="s3://bucket", s3_sse="rot13"))


# --- retention -----------------------------------------------------------------------

class Clock:
    """The task's idea of now, set by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def recorded_call(settings, request_id: str, ended: datetime) -> str:
    """A finished call's CDR naming a recording that exists in storage; returns its key."""
    key = recording_key("account_1", request_id)
    storage = storage_for(settings)
    wav = settings.data_dir / f"{request_id}.wav"
    wav.write_bytes(WAV)
    storage.put_file(key, wav)
    cdr("account_1", ended, request_id=request_id, recording_name=key)
    return key


def cdr_of(api, request_id: str) -> dict:
    rows = ok_body(api.post("/api/get_cdr_by_request_id", {"request_id": request_id}))["result"]
    assert len(rows) == 1
    return rows[0]


def test_retention_deletes_old_recordings_only(app, api, other, settings, clean_bucket):  # noqa: F811
    start = datetime(2026, 12, 1, 9, 0, 0)
    retained = dataclasses.replace(settings, recording_retention_days=10 / 86400)   # 10 s
    old = recorded_call(settings, "a1b2c3d4e5", start)
    new = recorded_call(settings, "f6a7b8c9d0", start + timedelta(seconds=8))
    storage = storage_for(settings)
    clock = Clock(start + timedelta(seconds=5))
    task = RetentionTask(retained, storage, clock=clock)

    with database.connection_context():
        assert task() is False           # nothing is 10 s old yet
    assert storage.exists(old) and storage.exists(new)

    clock.at = start + timedelta(seconds=12)     # the first call is 12 s old, the second 4 s
    with database.connection_context():
        task()
    assert not storage.exists(old)
    assert storage.exists(new)

    assert cdr_of(api, "a1b2c3d4e5")["recording_name"] == ""
    assert cdr_of(api, "f6a7b8c9d0")["recording_name"] == new
    resp = api.get("/api/recording?request_id=a1b2c3d4e5")
    error_body(resp, 404, "request_id")
    assert "deleted by retention" in resp.get_json()["response"]["message"]
    # The kept one still downloads; another account learns nothing of either.
    kept = api.get("/api/recording?request_id=f6a7b8c9d0")
    assert kept.status_code == 200 and kept.data == WAV
    resp = other.get("/api/recording?request_id=a1b2c3d4e5")
    error_body(resp, 404, "request_id")
    assert "retention" not in resp.get_json()["response"]["message"]

    # A second pass (or a second scanner that overlapped) finds nothing more to do.
    with database.connection_context():
        assert task() is False
        assert Cdr.select().where(Cdr.media_deleted_at.is_null(False)).count() == 1


def test_retention_off_keeps_everything(app, settings, clean_bucket):  # noqa: F811
    start = datetime(2026, 12, 1, 9, 0, 0)
    key = recorded_call(settings, "a1b2c3d4e5", start)
    task = RetentionTask(settings, storage_for(settings), clock=Clock(start + timedelta(days=3650)))
    with database.connection_context():
        assert task() is False
    assert storage_for(settings).exists(key)
