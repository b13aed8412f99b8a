"""Sealed secrets: an OTP's text crosses Redis as a token only the platform's key opens."""
from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

from cpaas import config
from cpaas.telephony import sealed

TEXT = "Your one time password is 7, 3, 9, 2"


def _settings(tmp_path, **extra) -> config.Settings:
    return config.Settings(data_dir=tmp_path / "data", **extra)


def _fresh(settings: config.Settings) -> sealed.Box:
    """The box a new process would build (the per-process cache emptied)."""
    sealed._boxes.clear()
    return sealed.box(settings)


def test_a_token_opens_only_for_its_plan_and_hides_the_text(tmp_path):
    box = _fresh(_settings(tmp_path))
    token = box.seal(TEXT, "rqplan0001")
    assert token.startswith(sealed.PREFIX) and TEXT not in token and "password" not in token
    assert box.open(token, "rqplan0001") == TEXT
    assert box.seal(TEXT, "rqplan0001") != token            # a fresh nonce every time
    with pytest.raises(sealed.SealError):
        box.open(token, "rqplan0002")


@pytest.mark.parametrize("damage", [
    lambda t: t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1],   # a changed byte
    lambda t: t[: len(t) // 2],                                   # cut short
    lambda t: t.removeprefix(sealed.PREFIX),                      # not a token
    lambda t: sealed.PREFIX + "***",                              # not base64
])
def test_an_altered_token_is_refused(tmp_path, damage):
    box = _fresh(_settings(tmp_path))
    with pytest.raises(sealed.SealError):
        box.open(damage(box.seal(TEXT, "rqplan0001")), "rqplan0001")


def test_another_platforms_key_cannot_open_it(tmp_path):
    token = _fresh(_settings(tmp_path / "a")).seal(TEXT, "rqplan0001")
    with pytest.raises(sealed.SealError):
        _fresh(_settings(tmp_path / "b")).open(token, "rqplan0001")


def test_the_key_file_is_made_once_0600_and_reused(tmp_path):
    settings = _settings(tmp_path)
    token = _fresh(settings).seal(TEXT, "p1")
    assert settings.secret_key_file.stat().st_mode & 0o777 == 0o600
    assert len(base64.urlsafe_b64decode(settings.secret_key_file.read_bytes().strip())) == 32
    assert _fresh(settings).open(token, "p1") == TEXT
    assert [p.name for p in settings.data_dir.iterdir()] == ["secret.key"]   # no stray temporaries


def test_a_key_file_readable_by_others_is_made_private(tmp_path):
    settings = _settings(tmp_path)
    _fresh(settings)
    settings.secret_key_file.chmod(0o644)
    _fresh(settings)
    assert settings.secret_key_file.stat().st_mode & 0o777 == 0o600


SEAL_IN_A_PROCESS = """
import sys
from pathlib import Path
from cpaas import config
from cpaas.telephony import sealed
print(sealed.box(config.Settings(data_dir=Path(sys.argv[1]))).seal("hello", "p"))
"""


def test_processes_starting_together_agree_on_one_key(tmp_path):
    settings = _settings(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", SEAL_IN_A_PROCESS, str(settings.data_dir)],
                              stdout=subprocess.PIPE, text=True) for _ in range(6)]
    tokens = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    box = _fresh(settings)
    assert [box.open(token, "p") for token in tokens] == ["hello"] * 6


def test_cpaas_secret_key_is_used_when_set(tmp_path):
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    token = _fresh(_settings(tmp_path / "a", secret_key=key)).seal(TEXT, "p1")
    assert _fresh(_settings(tmp_path / "b", secret_key=key)).open(token, "p1") == TEXT
    assert not (tmp_path / "a" / "data" / "secret.key").exists()


@pytest.mark.parametrize("key", ["short", base64.urlsafe_b64encode(b"x" * 16).decode(), "é" * 44])
def test_a_malformed_cpaas_secret_key_is_refused(tmp_path, key):
    with pytest.raises(sealed.SealError, match="CPAAS_SECRET_KEY"):
        _fresh(_settings(tmp_path, secret_key=key))
