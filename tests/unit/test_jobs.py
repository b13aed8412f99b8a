"""The call job's speech: where secret prompts go, who may read them."""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import pytest
import redis

from cpaas import config
from cpaas.calls import plan_builders as call_plans
from cpaas.telephony import audio, sealed
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


@pytest.fixture
def box(tmp_path) -> sealed.Box:
    return sealed.box(config.Settings(data_dir=tmp_path / "data"))


def _otp_plan(box: sealed.Box) -> Plan:
    return call_plans.otp(secrets.token_hex(5), "ACjobs", "15557650001", "15551230000", TEMPLATE,
                          "1987", Prosody(), 2, 10, box)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _played(media: Path, plan: Plan) -> Path:
    return media / next(v for v in plan.verbs if isinstance(v, Play)).audio


def test_secret_prompt_is_0600_in_a_0700_folder(tmp_path, r, box, wide_umask):
    media = tmp_path / "media"
    ready, pending = jobs.prepare_speech(_otp_plan(box), media, box)
    jobs.render_pending(ready, pending, "espeak", r)
    prompt = _played(media, ready)
    assert audio.is_audio_wav(prompt)
    assert _mode(prompt.parent) == 0o700
    assert _mode(prompt) == 0o600


def test_an_existing_calls_folder_is_made_private(tmp_path, r, box):
    media = tmp_path / "media"
    (media / "calls").mkdir(parents=True, mode=0o755)
    (media / "calls").chmod(0o755)
    ready, pending = jobs.prepare_speech(_otp_plan(box), media, box)
    jobs.render_pending(ready, pending, "espeak", r)
    assert _mode(_played(media, ready).parent) == 0o700
    assert _mode(_played(media, ready)) == 0o600


def test_with_a_media_group_a_secret_prompt_is_that_group_s_and_no_one_else_s(
        tmp_path, r, box, wide_umask):
    import grp

    group = next(g for g in grp.getgrall() if g.gr_gid != os.getgid())   # not ours already
    media = tmp_path / "media"
    ready, pending = jobs.prepare_speech(_otp_plan(box), media, box, group=group.gr_name)
    jobs.render_pending(ready, pending, "espeak", r)
    prompt = _played(media, ready)
    assert audio.is_audio_wav(prompt)
    assert (_mode(prompt.parent), prompt.parent.stat().st_gid) == (0o2750, group.gr_gid)
    assert (_mode(prompt), prompt.stat().st_gid) == (0o640, group.gr_gid)
    # A numeric gid names the same group; a folder left 0700 before is opened to it.
    again, _ = jobs.prepare_speech(_otp_plan(box), media, box, group=str(group.gr_gid))
    assert _mode(_played(media, again).parent) == 0o2750


def test_shared_prompt_stays_readable_by_a_media_server(tmp_path, box, wide_umask):
    # Cached, secret-free speech (campaign prompts) is for any engine user to play.
    media = tmp_path / "media"
    plan = Plan(secrets.token_hex(5), "ACjobs", "campaign",
                [Say("contact", "Hello from the campaign")])
    ready, pending = jobs.prepare_speech(plan, media, box)
    assert pending == []
    assert _mode(_played(media, ready)) == audio.FILE_MODE


def test_the_plan_carries_the_otp_sealed_and_the_job_renders_it_spoken(tmp_path, r, box):
    plan = _otp_plan(box)
    assert "1987" not in plan.to_json() and "1, 9, 8, 7" not in plan.to_json()
    ready, pending = jobs.prepare_speech(plan, tmp_path / "media", box)
    assert [p.text for p in pending] == [TEMPLATE.replace("{otp}", "1, 9, 8, 7")]
    assert "1, 9, 8, 7" not in ready.to_json() and not any(isinstance(v, Say) for v in ready.verbs)


def test_a_token_sealed_under_another_key_fails_before_the_dial(tmp_path, box):
    other = sealed.box(config.Settings(data_dir=tmp_path / "elsewhere"))
    with pytest.raises(sealed.SealError):
        jobs.prepare_speech(_otp_plan(other), tmp_path / "media", box)
