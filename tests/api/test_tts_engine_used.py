"""The API says which TTS engine will speak: ``tts_engine_used`` on OTP calls and campaigns.

The voices are installed or missing for real: the hibari package is in the base
requirements; a setting naming a voice file that does not exist makes one missing.
"""
from __future__ import annotations

import pytest

from cpaas.docs import openapi_document
from cpaas.telephony import neural
from tests.api.helpers import campaign_body, make_list, ok_body
from tests.api.test_call_safety import _otp_body


@pytest.fixture(autouse=True)
def default_voices(monkeypatch, tmp_path):
    monkeypatch.delenv(neural.FEMALE_SETTING, raising=False)
    monkeypatch.delenv(neural.MALE_SETTING, raising=False)
    monkeypatch.setenv("HIBARI_HOME", str(tmp_path / "hibari-cache"))


def test_otp_call_answers_the_engine_used(api):
    neural = ok_body(api.post("/api/outbound_call", {**_otp_body(api), "tts_engine_type": "neural"}))
    assert neural["tts_engine_used"] == "neural"
    assert len(neural["request_id"]) == 10
    standard = ok_body(api.post("/api/outbound_call", _otp_body(api)))
    assert standard["tts_engine_used"] == "standard"


def test_otp_call_with_the_neural_voice_missing_says_standard(api, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(neural.FEMALE_SETTING, f"piper:{tmp_path / 'missing.onnx'}")
    with caplog.at_level("WARNING", logger="cpaas.telephony.tts"):
        answer = ok_body(api.post("/api/outbound_call", {**_otp_body(api), "tts_engine_type": "neural"}))
    assert answer["tts_engine_used"] == "standard"
    warnings = [r for r in caplog.records if getattr(r, "tts_engine_used", None) == "standard"]
    assert [r.request_id for r in warnings] == [answer["request_id"]]


def test_campaign_answers_the_engine_used(api, monkeypatch):
    list_id = make_list(api)
    spoken = ok_body(api.post("/api/create_campaign", campaign_body(
        list_id, voice="Joanna", tts_engine_type="neural")))
    assert spoken["tts_engine_used"] == "neural"
    monkeypatch.setenv(neural.MALE_SETTING, "off")
    male = ok_body(api.post("/api/create_campaign", campaign_body(
        list_id, campaign_name="male_campaign", voice="Matthew", tts_engine_type="neural")))
    assert male["tts_engine_used"] == "standard"
    assert male["campaign_id"].startswith("CM")


def test_openapi_documents_the_field(app):
    with app.app_context():
        paths = openapi_document()["paths"]
    for path in ("/api/outbound_call", "/api/create_campaign"):
        assert "tts_engine_used" in paths[path]["post"]["description"]
