"""No user string reaches SIP, a shell or a path: hostile values in every string field
of the call endpoints are refused with a 400 naming the field, and nothing is queued."""
from __future__ import annotations

import pytest
from rq import Queue

from cpaas.models import AnnounceTemplate, CallRequest, Cdr
from tests.api.conftest import body

PAYLOADS = ["919900000001\r\nX-Injected: 1", "919900000001&id", "919900000001|id",
            "9199'00000001", "919900000001;reboot", "sip:1@evil", "../../etc/passwd",
            "919900000001\n", "9199 00000001", "%0d%0a919900000001"]

CLICK2CALL = {"agent_number": "919900000101", "caller_id": "15168148111",
              "destination_number": "919900000102", "recording_option": "both", "transcript": "off"}


def _otp_body(api) -> dict:
    template = body(api.get("/api/announce_template"))["result"][0]["announce_template_id"]
    return {"customer_number": "919900000001", "otp": "1987", "announce_template_id": template,
            "repeat": "1", "caller_id": "15168148111", "voice": "Joanna", "volume": "soft",
            "rate": "slow", "pitch": "medium", "language_code": "en-US", "tts_engine_type": "standard"}


def _nothing_queued(settings) -> None:
    import redis

    assert Queue("calls", connection=redis.Redis.from_url(settings.redis_url)).count == 0
    assert CallRequest.select().count() == 0


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("field", list(CLICK2CALL))
def test_click2call_refuses_hostile_strings(api, settings, field, payload):
    r = api.post("/api/click2call", {**CLICK2CALL, field: payload})
    assert r.status_code == 400
    assert field in body(r)["errors"]
    _nothing_queued(settings)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_outbound_call_refuses_hostile_strings(api, settings, payload):
    base = _otp_body(api)
    for field in base:
        r = api.post("/api/outbound_call", {**base, field: payload})
        assert r.status_code in (400, 404), (field, r.data)
        assert field in body(r)["errors"], field
    _nothing_queued(settings)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_modify_call_refuses_hostile_strings(api, payload):
    for field, base in (("channel", {"modify_type": "0", "transfer_to": "102"}),
                        ("transfer_to", {"channel": "PJSIP/agent-1a2b3c4d", "modify_type": "0"}),
                        ("modify_type", {"channel": "PJSIP/agent-1a2b3c4d"})):
        r = api.post("/api/modify_call", {**base, field: payload})
        if field == "channel" and r.status_code == 404:
            # Channel ids are only ever looked up in the live-leg registry, so a value of
            # the channel alphabet that names no live leg is simply not found.
            assert "/" in payload or "." in payload
            continue
        assert r.status_code == 400, (field, r.data)
        assert field in body(r)["errors"]


def test_template_text_with_control_characters_is_refused(api):
    before = AnnounceTemplate.select().count()
    r = api.post("/api/announce_template", {"template_text": "Your code is {otp}\r\nINVITE sip:x"})
    assert r.status_code == 400 and "template_text" in body(r)["errors"]
    assert AnnounceTemplate.select().count() == before


@pytest.mark.parametrize("text", ["Code {otp} & more", "Code {otp} | more", "It's {otp}",
                                  "<speak>{otp}</speak>"])
def test_template_punctuation_is_plain_text(api, text):
    """Shell and markup characters are legitimate words here: stored as text, later
    escaped into SSML and fed to the TTS on stdin, never through a shell."""
    r = api.post("/api/announce_template", {"template_text": text})
    assert r.status_code == 200
    assert body(r)["status"] == "pending"


def test_unapproved_template_is_refused_and_foreign_template_is_404(api, other, settings):
    pending = body(api.post("/api/announce_template",
                            {"template_text": "New code {otp}"}))["announce_template_id"]
    r = api.post("/api/outbound_call", {**_otp_body(api), "announce_template_id": pending})
    assert r.status_code == 400 and "announce_template_id" in body(r)["errors"]
    r = other.post("/api/outbound_call", {**_otp_body(other), "announce_template_id": pending})
    assert r.status_code == 404
    theirs = _otp_body(other)["announce_template_id"]
    r = api.post("/api/outbound_call", {**_otp_body(api), "announce_template_id": theirs})
    assert r.status_code == 404
    _nothing_queued(settings)


def test_otp_must_be_4_to_10_digits(api):
    for otp in ("123", "12345678901", "12a4", ""):
        r = api.post("/api/outbound_call", {**_otp_body(api), "otp": otp})
        assert r.status_code == 400 and "otp" in body(r)["errors"]


def test_unknown_voice_lists_the_known_ones(api):
    r = api.post("/api/outbound_call", {**_otp_body(api), "voice": "Nobody"})
    assert r.status_code == 400
    assert "Joanna" in " ".join(body(r)["errors"]["voice"])


def test_click2call_accepts_the_spec_example_and_queues_one_plan(api, settings):
    import redis

    r = api.post("/api/click2call", {**CLICK2CALL, "agent_number": "+919979270001",
                                     "recording_option": "on", "transcript": "on"})
    assert r.status_code == 200
    request_id = body(r)["request_id"]
    assert len(request_id) == 10
    row = CallRequest.get_by_id(request_id)
    assert (row.agent_number, row.recording_option, row.transcript) == ("919979270001", "both", "on")
    assert Queue("calls", connection=redis.Redis.from_url(settings.redis_url)).count == 1


def test_modify_call_needs_a_target_for_transfers(api):
    r = api.post("/api/modify_call", {"channel": "PJSIP/agent-1a2b3c4d", "modify_type": "1"})
    assert r.status_code == 400 and "transfer_to" in body(r)["errors"]


_NO_TARGET = [{}, {"transfer_to": ""}, {"transfer_to": None}]


@pytest.mark.parametrize("modify_type", ["0", "1"])
@pytest.mark.parametrize("target", _NO_TARGET)
def test_modify_call_transfer_without_target_names_transfer_to(api, modify_type, target):
    r = api.post("/api/modify_call", {"channel": "PJSIP/agent-1a2b3c4d",
                                      "modify_type": modify_type, **target})
    assert r.status_code == 400 and list(body(r)["errors"]) == ["transfer_to"], r.data


@pytest.mark.parametrize("modify_type", ["2", "3"])
@pytest.mark.parametrize("target", _NO_TARGET)
def test_modify_call_hangup_and_record_take_no_target(api, modify_type, target):
    """Absent, "" or null passes validation and the request reaches the live-leg lookup
    (no such leg here: 404 on channel)."""
    r = api.post("/api/modify_call", {"channel": "PJSIP/agent-1a2b3c4d",
                                      "modify_type": modify_type, **target})
    assert r.status_code == 404 and list(body(r)["errors"]) == ["channel"], r.data


def test_a_call_that_cannot_be_queued_is_503_and_ends_with_its_cdr(app, settings):
    """The row is committed before the job is queued; a job that cannot be queued closes
    the request with its one CDR (and a job that reached Redis after all cannot dial it)."""
    import dataclasses

    from cpaas.app import create_app
    from tests.api.conftest import SECRETS
    from tests.servers import free_port

    broken = create_app(dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    r = broken.test_client().post("/api/click2call", json=CLICK2CALL,
                                  headers={"account": "account_1", "auth": SECRETS["account_1"]})
    assert r.status_code == 503 and body(r)["success"] == "false"
    (request,) = CallRequest.select()
    assert request.status == "done"
    (cdr,) = Cdr.select().where(Cdr.request_id == request.id)
    assert (cdr.dial_status, cdr.hangup_cause) == ("CHANUNAVAIL", "not queued")
