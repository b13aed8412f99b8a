"""Per-call prompts are deleted whichever finishes last: the call or the render."""
from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import redis

from cpaas.telephony import ephemeral


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def _prompt(media: Path) -> tuple[str, Path]:
    plan_id = secrets.token_hex(5)
    return plan_id, media / f"{plan_id}-prompt.wav"


def test_prompt_rendered_while_the_call_is_up_is_deleted_when_it_ends(r, tmp_path):
    plan_id, path = _prompt(tmp_path)
    path.write_bytes(b"RIFF")
    assert ephemeral.settle(r, plan_id, str(path)) is True
    assert path.exists(), "kept for the call that will play it"
    ephemeral.release(r, plan_id, [path.name], tmp_path)
    assert not path.exists()


def test_prompt_rendered_after_the_call_ended_is_deleted_by_the_job(r, tmp_path):
    plan_id, path = _prompt(tmp_path)
    ephemeral.release(r, plan_id, [path.name], tmp_path)    # a busy number: nothing to delete yet
    path.write_bytes(b"RIFF")
    assert ephemeral.settle(r, plan_id, str(path)) is False
    assert not path.exists()
    assert 0 < r.ttl(ephemeral.ENDED_KEY.format(plan_id=plan_id)) <= ephemeral.ENDED_TTL


def test_another_plans_end_does_not_delete_a_prompt(r, tmp_path):
    ended, _ = _prompt(tmp_path)
    plan_id, path = _prompt(tmp_path)
    ephemeral.release(r, ended, ["gone.wav"], tmp_path)
    path.write_bytes(b"RIFF")
    assert ephemeral.settle(r, plan_id, str(path)) is True
    assert path.exists()


def test_only_names_inside_the_media_root_are_deleted(r, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    plan_id, path = _prompt(tmp_path)
    path.write_bytes(b"RIFF")
    ephemeral.release(r, plan_id, [str(path), f"../{path.name}", f"x/../../{path.name}",
                                   f"/{path.name}"], media)
    assert path.exists()
    assert r.exists(ephemeral.ENDED_KEY.format(plan_id=plan_id))


def test_private_folder_is_made_and_tightened(tmp_path):
    made = ephemeral.private_folder(tmp_path / "a" / "calls")
    assert made.is_dir() and made.stat().st_mode & 0o777 == 0o700
    made.chmod(0o755)
    assert ephemeral.private_folder(made).stat().st_mode & 0o777 == 0o700
