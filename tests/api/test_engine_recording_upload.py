"""A FreeSWITCH node that shares no folder PUTs each recording to the real app: chunked,
as mod_httapi sends it, past the JSON body cap, once per sealed URL."""
from __future__ import annotations

import dataclasses
import io
import os

from cpaas.app import create_app
from cpaas.telephony.recordings import engine_folder
from freeswitch import media

BASE = "http://127.0.0.1:18080"
#: What gunicorn tells the app of a chunked body (it ends the stream itself).
CHUNKED = {"headers": {"Transfer-Encoding": "chunked"},
           "environ_overrides": {"wsgi.input_terminated": True}}


def test_a_chunked_recording_larger_than_a_json_body_lands_whole(app, settings):
    settings = dataclasses.replace(settings, freeswitch_media_url=BASE)
    client = create_app(settings).test_client()
    body = b"RIFF" + os.urandom(settings.max_body_bytes * 2)
    url = media.recording_url(settings, "57362de4f0", "57362de4f0-0.wav")
    answer = client.put(url[len(BASE):], input_stream=io.BytesIO(body), **CHUNKED)
    assert answer.status_code == 201
    assert (engine_folder(settings.data_dir) / "57362de4f0-0.wav").read_bytes() == body
    again = client.put(url[len(BASE):], input_stream=io.BytesIO(b"RIFF"), **CHUNKED)
    assert again.status_code == 410


def test_the_upload_route_exists_only_for_nodes_over_http(app, settings):
    url = media.recording_url(dataclasses.replace(settings, freeswitch_media_url=BASE),
                              "57362de4f0", "57362de4f0-1.wav")
    answer = app.test_client().put(url[len(BASE):], data=b"RIFF")
    assert answer.status_code == 404
    assert not (engine_folder(settings.data_dir) / "57362de4f0-1.wav").exists()
