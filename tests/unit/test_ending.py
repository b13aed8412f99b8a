"""The end of a plan as every engine finishes it: recordings stored, prompts released,
then ``plan.ended`` (real Redis, real sox, a local bucket)."""
from __future__ import annotations

import io
import secrets
import wave
from pathlib import Path

import pytest
import redis

from cpaas.storage import get_storage
from cpaas.telephony import ending
from cpaas.telephony.events import EVENT_STREAM, LegOutcome, PlanEnded, RecordingStored, decode
from cpaas.telephony.plans import Dial, Plan
from cpaas.telephony.publisher import Publisher
from cpaas.telephony.recordings import RecordingFiles
from tests.unit.test_audio import tone


@pytest.fixture
def bucket(tmp_path: Path, monkeypatch) -> None:
    """The process's object storage: a local folder of this test."""
    monkeypatch.setenv("CPAAS_STORAGE_URL", str(tmp_path / "bucket"))
    get_storage.cache_clear()
    yield
    get_storage.cache_clear()


@pytest.fixture
def publisher(redis_url: str) -> Publisher:
    return Publisher(redis.Redis.from_url(redis_url), "test-engine")


def _ended(tmp_path: Path, recordings: list[RecordingFiles], prompt: str | None = None
           ) -> ending.EndedPlan:
    plan_id = secrets.token_hex(5)
    plan = Plan(plan_id, "ACending", "c2c", [Dial("agent", "1001", "15551230000")],
                ephemeral_files=[prompt] if prompt else [])
    legs = {"agent": LegOutcome("agent", "1001", "PJSIP/agent-1", 1.0, 2.0, 9.0, 200, "ANSWER")}
    workdir = tmp_path / f"{plan_id}-work"
    workdir.mkdir()
    return ending.EndedPlan(plan, legs, "7", recordings, "normal", str(workdir))


def _published(publisher: Publisher, plan_id: str) -> list:
    read = (decode(fields) for _, fields in publisher.r.xrange(EVENT_STREAM))
    return [e for e in read if e is not None and e.plan_id == plan_id]


def _stored(key: str) -> bytes:
    with get_storage().open(key) as obj:
        return obj.read()


def _channels(data: bytes) -> int:
    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.getnchannels()


def test_two_sides_are_stored_as_one_stereo_file_before_the_plan_ends(tmp_path, bucket, publisher):
    left = tone(tmp_path / "0-left.wav", 0.5, freq=440)
    right = tone(tmp_path / "0-right.wav", 0.8, freq=880)
    media = tmp_path / "media"
    (media / "calls").mkdir(parents=True)
    prompt = media / "calls" / "otp-prompt.wav"
    prompt.write_bytes(b"RIFF")
    key = "acct/recordings/both.wav"
    done = _ended(tmp_path, [RecordingFiles(key, [str(left), str(right)])], "calls/otp-prompt.wav")

    ending.finish(publisher, done, media)

    stored, ended = _published(publisher, done.plan.plan_id)
    assert stored == RecordingStored(plan_id=done.plan.plan_id, account_id="ACending", key=key,
                                     channels=2, at=stored.at)
    assert isinstance(ended, PlanEnded)
    assert ended.recordings == (key,) and ended.cause == "normal" and ended.dtmf == "7"
    assert ended.legs == done.legs
    assert _channels(_stored(key)) == 2
    assert not prompt.exists(), "the plan's per-call prompt is released"
    assert not Path(done.tmpdir).exists(), "the plan's local folder is removed"


def test_a_file_holding_both_sides_is_stored_as_it_is(tmp_path, bucket, publisher):
    # FreeSWITCH's RECORD_STEREO writes one 2-channel file.
    stereo = tone(tmp_path / "stereo.wav", 0.5, channels=2)
    key = "acct/recordings/stereo.wav"
    done = _ended(tmp_path, [RecordingFiles(key, [str(stereo)])])

    ending.finish(publisher, done, tmp_path / "media")

    stored, ended = _published(publisher, done.plan.plan_id)
    assert stored.channels == 2 and ended.recordings == (key,)
    assert _stored(key) == stereo.read_bytes()


def test_a_plan_without_recordings_only_ends(tmp_path, bucket, publisher):
    done = _ended(tmp_path, [])
    ending.finish(publisher, done, tmp_path / "media")
    [ended] = _published(publisher, done.plan.plan_id)
    assert isinstance(ended, PlanEnded) and ended.recordings == ()
