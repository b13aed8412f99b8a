"""What a plan may carry to an engine: audio as safe names inside the media root."""
from __future__ import annotations

from pathlib import Path

import pytest

from cpaas.telephony.plans import Dial, Hangup, Play, Plan, media_path


def _plan(audio: str, ephemeral: list[str] | None = None) -> Plan:
    return Plan("rq1a2b3c4d", "ACplans", "otp",
                [Dial("customer", "15557650001", "15551230000"), Play("customer", audio), Hangup()],
                ephemeral_files=ephemeral or [])


def test_relative_names_inside_the_media_root_are_accepted():
    _plan("calls/rq1a2b3c4d-00ff.wav", ["calls/rq1a2b3c4d-00ff.wav"]).validate()
    root = Path("/srv/data folder with spaces/media")
    assert media_path(root, "cache/ab.wav") == root / "cache" / "ab.wav"


@pytest.mark.parametrize("name", ["/etc/passwd", "../secret.wav", "calls/../../x.wav", "a b.wav",
                                  "calls/x.wav\nuuid_kill", "", "x" * 201])
def test_anything_else_is_refused_in_play_ephemeral_files_and_resolution(name):
    with pytest.raises(ValueError):
        _plan(name).validate()
    with pytest.raises(ValueError):
        _plan("calls/ok.wav", [name]).validate()
    with pytest.raises(ValueError):
        media_path(Path("/srv/media"), name)
