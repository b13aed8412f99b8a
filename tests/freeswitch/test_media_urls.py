"""Prompts over HTTP for nodes that share no folder (FREESWITCH_MEDIA_URL): sealed URLs,
single use and never cacheable for secret prompts, one URL per round of a call."""
from __future__ import annotations

import dataclasses

import pytest
import redis
from flask import Flask

from cpaas.config import Settings
from cpaas.platform import Platform
from cpaas.telephony.events import parse
from cpaas.telephony.plans import Dial, Hangup, Play, Plan
from cpaas.telephony.recordings import engine_folder
from freeswitch import media
from tests.freeswitch.conftest import make_rig

BASE = "http://127.0.0.1:18080"


@pytest.fixture
def served(fs_redis: redis.Redis, workdir):
    settings = Settings(data_dir=workdir, freeswitch_media_url=BASE)
    (settings.media_dir / "calls").mkdir(parents=True)
    (settings.media_dir / "calls" / "otp-1.wav").write_bytes(b"RIFF-secret")
    (settings.media_dir / "prompt.wav").write_bytes(b"RIFF-cached")
    app = Flask(__name__)
    app.extensions["cpaas"] = Platform(settings=settings, redis=fs_redis, storage=None)
    app.register_blueprint(media.bp)
    return settings, app.test_client()


def _path(url: str) -> str:
    assert url.startswith(BASE + "/engine-media/") and url.endswith(".wav")
    return url[len(BASE):]


def test_a_secret_prompt_url_is_served_once(served):
    settings, client = served
    url = media.url_for(settings, "calls/otp-1.wav", "57362de4f0", once=True)
    assert "otp" not in url and "calls" not in url   # the token names no file
    assert client.head(_path(url)).status_code == 200   # a HEAD does not spend it
    first = client.get(_path(url))
    assert (first.status_code, first.data) == (200, b"RIFF-secret")
    assert first.headers["Cache-Control"] == "no-store"
    assert [client.get(_path(url)).status_code, client.head(_path(url)).status_code] == [410, 410]


def test_a_cached_prompt_url_serves_every_fetch(served):
    settings, client = served
    url = media.url_for(settings, "prompt.wav", "57362de4f0", once=False)
    answers = [client.get(_path(url)) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].headers["Cache-Control"].startswith("private, max-age=")


def test_a_node_uploads_a_recording_once_to_its_url(served, fs_redis):
    settings, client = served
    url = media.recording_url(settings, "57362de4f0", "57362de4f0-0.wav")
    path = url[len(BASE):]
    assert path.startswith("/engine-recordings/") and "57362de4f0" not in path
    assert client.put(path, data=b"RIFF-recording").status_code == 201
    landed = engine_folder(settings.data_dir) / "57362de4f0-0.wav"
    assert landed.read_bytes() == b"RIFF-recording"
    assert client.put(path, data=b"RIFF-other").status_code == 410   # single use
    # ...for as long as the token is good, not only for a prompt token's hour
    assert fs_redis.ttl(media._used_key(path.rsplit("/", 1)[1][:-4])) > media.TTL
    assert landed.read_bytes() == b"RIFF-recording"
    # No temporary left beside it (audio.replace_atomically writes hidden ".<stem>.*").
    assert [p.name for p in landed.parent.iterdir()] == ["57362de4f0-0.wav"]


def test_recording_and_prompt_tokens_do_not_stand_in_for_each_other(served):
    settings, client = served
    prompt = media.url_for(settings, "prompt.wav", "57362de4f0", once=False)
    token = prompt.rsplit("/", 1)[1]
    assert client.put(f"/engine-recordings/{token}", data=b"x").status_code == 404
    upload = media.recording_url(settings, "57362de4f0", "57362de4f0-1.wav")
    assert client.get(f"/engine-media/{upload.rsplit('/', 1)[1]}").status_code == 404
    with pytest.raises(ValueError):
        media.recording_url(settings, "57362de4f0", "../../etc/passwd.wav")
    assert not engine_folder(settings.data_dir).exists() or not any(
        engine_folder(settings.data_dir).iterdir())


def test_altered_foreign_and_expired_tokens_are_not_found(served, monkeypatch, tmp_path):
    settings, client = served
    url = media.url_for(settings, "prompt.wav", "57362de4f0", once=False)
    token = url.rsplit("/", 1)[1][:-4]
    altered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    other = media.url_for(dataclasses.replace(settings, data_dir=tmp_path), "prompt.wav",
                          "57362de4f0", once=False)   # sealed under another platform's key
    monkeypatch.setattr(media, "TTL", -1)
    expired = media.url_for(settings, "prompt.wav", "57362de4f0", once=False)
    for path in (f"/engine-media/{altered}.wav", _path(other), _path(expired),
                 "/engine-media/..%2Fsecret.key.wav", "/engine-media/x.wav"):
        assert client.get(path).status_code == 404, path


def test_each_round_of_a_secret_prompt_gets_its_own_single_use_url(fs_redis, workdir):
    rig = make_rig(fs_redis, workdir, freeswitch_media_url=BASE,
                   freeswitch_media_dir="/nonexistent/never-used")
    try:
        rig.nodes_up(1)
        (rig.settings.media_dir / "calls").mkdir(parents=True)
        (rig.settings.media_dir / "calls" / "otp-2.wav").write_bytes(b"RIFF")
        (rig.settings.media_dir / "hello.wav").write_bytes(b"RIFF")
        plan = Plan("d0d0d0d0d0", "ACalpha", "otp", [
            Dial("customer", "919900000001", "919900000009", 5),
            Play("customer", "hello.wav", 1), Play("customer", "calls/otp-2.wav", 2), Hangup()],
            ephemeral_files=["calls/otp-2.wav"])
        rig.client.originate(plan)
        assert parse(rig.events.ended(plan.plan_id)).cause == "normal"
        plays = [c.split("\n")[0].rsplit("::", 1)[1].removesuffix(" aleg")
                 for c in rig.double.commands if "uuid_broadcast" in c]
        assert len(plays) == 3
        shared, *secret = plays
        assert shared.startswith("{modname=mod_http_cache}" + BASE + "/engine-media/")
        prefix = "{modname=mod_httapi}http://(nohead=true)" + BASE.removeprefix("http://")
        assert all(p.startswith(prefix + "/engine-media/") for p in secret)
        assert len(set(secret)) == 2 and "/nonexistent/" not in "".join(plays)
        grants = [media.open_token(rig.settings, p.rsplit("/", 1)[1][:-4]) for p in plays]
        assert [g["o"] for g in grants] == [False, True, True]
        assert not any("http_remove_cache" in c for c in rig.double.commands)
    finally:
        rig.stop_listener()
        rig.double.stop()
