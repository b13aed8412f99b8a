"""The call job's speech: where secret prompts go, who may read them."""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import pytest
import redis

from cpaas.calls import plans as call_plans
from cpaas.telephony import audio
from cpaas.telephony.plans import Play, Plan, Say
from cpaas.telephony.tts import Prosody
from workers import jobs

TEMPLATE = "Your one time password is {otp}"


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def wide_umask():
    """Files and folders made under umask 0 would be world-readable unless made private."""
    old = os.umask(0)
    yield
    os.umask(old)


def _otp_plan() -> Plan:
    return call_plans.otp(secrets.token_hex(5), "ACjobs", "15557650001", "15551230000", TEMPLATE,
                          "1987", Prosody(), 2, 10)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _played(media: Path, plan: Plan) -> Path:
    return media / next(v for v in plan.verbs if isinstance(v, Play)).audio


def test_secret_prompt_is_0600_in_a_0700_folder(tmp_path, r, wide_umask):
    media = tmp_path / "media"
    ready, pending = jobs.prepare_speech(_otp_plan(), media)
    jobs.render_pending(ready, pending, "espeak", r)
    prompt = _played(media, ready)
    assert audio.is_audio_wav(prompt)
    assert _mode(prompt.parent) == 0o700
    assert _mode(prompt) == 0o600


def test_an_existing_calls_folder_is_made_private(tmp_path, r):
    media = tmp_path / "media"
    (media / "calls").mkdir(parents=True, mode=0o755)
    (media / "calls").chmod(0o755)
    ready, pending = jobs.prepare_speech(_otp_plan(), media)
    jobs.render_pending(ready, pending, "espeak", r)
    assert _mode(_played(media, ready).parent) == 0o700
    assert _mode(_played(media, ready)) == 0o600


def test_shared_prompt_stays_readable_by_a_media_server(tmp_path, wide_umask):
    # Cached, secret-free speech (campaign prompts) is for any engine user to play.
    media = tmp_path / "media"
    plan = Plan(secrets.token_hex(5), "ACjobs", "campaign",
                [Say("contact", "Hello from the campaign")])
    ready, pending = jobs.prepare_speech(plan, media)
    assert pending == []
    assert _mode(_played(media, ready)) == audio.FILE_MODE
