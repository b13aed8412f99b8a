"""The OpenAPI document tells the truth: schemathesis, every check, against the real app.

The app runs on its own SQLite file and Redis database (what the generated requests
store, queue or place stays there), served over loopback HTTP as a client would reach it.
"""
from __future__ import annotations

import collections
import re
import threading
from datetime import datetime
from typing import Any, Iterator

import jsonschema_rs
import pytest
import schemathesis
from marshmallow import Schema, ValidationError, fields
from schemathesis.config import HealthCheck, SchemathesisConfig, _checks
from schemathesis.engine import Status, events, from_schema
from werkzeug.serving import WSGIRequestHandler, make_server

from cpaas import accounts, config, db, openapi_fields, validation as v
from cpaas.app import create_app
from tests.api.conftest import SECRETS
from tests.api.helpers import all_routes

#: Generated cases per operation and phase: enough to cross every rule, quick enough to run.
MAX_EXAMPLES = 20


class _QuietHandler(WSGIRequestHandler):
    """No access log line per generated request (thousands of them)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory, redis_url) -> Iterator[str]:
    """Base URL of the app on a throwaway SQLite file and Redis database."""
    data_dir = tmp_path_factory.mktemp("openapi")
    settings = config.Settings(
        data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'cpaas.sqlite3'}",
        redis_url=redis_url.rsplit("/", 1)[0] + "/9", storage_url=str(data_dir / "bucket"),
        auth_fail_limit=100_000, auth_fail_window=60, admin_password="operator-pass")
    database = db.init(settings.database_url)
    db.create_schema(database)
    app = create_app(settings)
    database.connect(reuse_if_open=True)
    accounts._cache.clear()
    accounts.seed(settings.data_dir, SECRETS, settings.admin_password)
    database.close()
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        accounts._cache.clear()


# --- rules the document states in words: positive cases that break them are not drawn --

def _when(text: Any, zone: str = "UTC") -> datetime | None:
    try:
        return v.to_utc(v.LocalDateTime(iso=True).deserialize(text), zone)
    except ValidationError:  # an unreadable date is the schema's to judge
        return None


def _zone(body: dict[str, Any]) -> str:
    try:
        return v.TimeZone().deserialize(body.get("time_zone", "UTC"))
    except ValidationError:
        return "UTC"


def _states_only_schema_rules(case) -> bool:
    """False for a positive case that breaks a rule the document says in words only."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return True
    body = case.body if isinstance(case.body, dict) else {}
    path = case.operation.path
    if path == "/api/create_campaign" and not (_calling_hours_in_order(body.get("calling_hours"))
                                               and _digit_keys_fit(body)):
        return False
    if path == "/api/create_campaign" and "campaign_start_date" in body and "campaign_end_date" in body:
        start, end = _when(body["campaign_start_date"], _zone(body)), _when(body["campaign_end_date"], _zone(body))
        return start is None or end is None or end > start
    if path == "/api/callback" and case.method.upper() == "POST" and "scheduled_at" in body:
        when = _when(body["scheduled_at"], _zone(body))
        return when is None or when > v.utcnow()
    if path == "/api/get_cdr_by_date" and "start_call_date" in body and "end_call_date" in body:
        try:
            return v.Date().deserialize(body["end_call_date"]) >= v.Date().deserialize(body["start_call_date"])
        except ValidationError:
            return True
    if path == "/api/upload_file":
        return _upload_is_valid(body)
    return True


def _calling_hours_in_order(text: Any) -> bool:
    """calling_hours' start before its end (a range the schema cannot read is its to judge)."""
    match = re.fullmatch(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})", str(text or "").strip())
    return match is None or match.group(1, 2) < match.group(3, 4)


def _digit_keys_fit(body: dict[str, Any]) -> bool:
    """No ivr_digit_map key longer than ivr_max_digits."""
    keys = body.get("ivr_digit_map")
    try:
        most = v.IntLike().deserialize(body.get("ivr_max_digits", 1))
    except ValidationError:
        return True
    return not isinstance(keys, dict) or all(len(key) <= most for key in keys)


def _upload_is_valid(body: dict[str, Any]) -> bool:
    """The upload's name (file_name, else the part's own name) and a WAV's content."""
    name = str(body.get("file_name") or "").strip()
    if not name:
        return False  # the part's file name is not in the document's reach
    content = body.get("file", b"")
    content = content.encode() if isinstance(content, str) else bytes(content or b"")
    return not name.lower().endswith(".wav") or content[8:12] == b"WAVE"


def _run(base_url: str) -> tuple[collections.Counter, dict[tuple, str], list[str], int]:
    cfg = SchemathesisConfig()
    project = cfg.projects.override
    # "too slow" is hypothesis timing its own generation (contact_fields' printable-character
    # class is large), not a finding about the API; on two shared cores it comes and goes.
    project.update(headers={"account": "account_1", "auth": SECRETS["account_1"]},
                   suppress_health_check=[HealthCheck.too_slow])
    project.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
    project.checks.update(included_check_names=["all"])
    # A body over the size limit (CPAAS_MAX_BODY_BYTES, 1 MiB) is refused with 413, which
    # every operation declares: 10,000 contacts of long generated names come past it.
    checks = project.checks
    for name, config_class, defaults in (
            ("negative_data_rejection", _checks.NegativeDataRejectionConfig,
             _checks.NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES),
            ("positive_data_acceptance", _checks.PositiveDataAcceptanceConfig,
             _checks.POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES)):
        setattr(checks, name, config_class(expected_statuses=[*defaults, "413"]))
    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json", config=cfg)
    schema.hook("filter_case")(lambda ctx, case: _states_only_schema_rules(case))
    failures: collections.Counter = collections.Counter()
    examples: dict[tuple, str] = {}
    errors: list[str] = []
    operations: set[str] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            operations.add(event.recorder.label)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE:
                        key = (event.recorder.label, check.name)
                        failures[key] += 1
                        case = event.recorder.cases[case_id].value
                        examples.setdefault(key, f"{check.failure_info.failure.message[:300]!r} "
                                                 f"body={case.body!r:.300} query={case.query!r:.200}")
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            error = getattr(event, "value", None) or getattr(event, "exception", None)
            errors.append(f"{getattr(event, 'label', '')}: {error!r:.500}")
    return failures, examples, errors, len(operations)


def test_schemathesis_all_checks_find_nothing(served):
    failures, examples, errors, tested = _run(served)
    found = [f"{n} x {key}: {examples[key]}" for key, n in failures.items()]
    assert not errors and not found, "\n".join(errors + found)
    assert tested == len({(r.method, r.path) for r in all_routes()})


# --- the document, piece by piece -------------------------------------------------------

def _doc(served: str) -> dict[str, Any]:
    import requests

    return requests.get(f"{served}/api/openapi.json", timeout=10).json()


def test_405_lists_the_allowed_methods(served):
    import requests

    headers = {"account": "account_1", "auth": SECRETS["account_1"]}
    resp = requests.put(f"{served}/api/callback", headers=headers, timeout=10)
    assert resp.status_code == 405
    assert set(resp.headers["Allow"].split(", ")) == {"DELETE", "GET", "HEAD", "PATCH", "POST"}
    assert resp.json()["response"]["success"] == "false"
    resp = requests.get(f"{served}/api/click2call", headers=headers, timeout=10)
    assert (resp.status_code, resp.headers["Allow"]) == (405, "POST")


def test_every_error_status_is_declared_with_the_envelope(served):
    doc = _doc(served)
    envelope = doc["components"]["schemas"]["Error"]
    bad = {"response": {"success": "false", "message": "x", "extra": 1}}
    assert not jsonschema_rs.Draft202012Validator(envelope).is_valid(bad)
    for route in all_routes():
        responses = doc["paths"][route.path][route.method]["responses"]
        for status, answer in responses.items():
            if status != "200":
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        assert {"401", "413", "429"} <= set(responses)


def test_descriptions_come_from_the_spec(served):
    props = _doc(served)["components"]["schemas"]["CreateCampaign"]["properties"]
    assert props["campaign_type"]["description"] == "0=only announce, 1=Survey."
    assert props["retry_time"]["description"] == "After how much seconds retry should happen."


def _accepts(field: fields.Field, value: Any) -> bool:
    schema = Schema.from_dict({"x": field})()
    try:
        schema.load({"x": value})
        return True
    except ValidationError:
        return False


@pytest.mark.parametrize("field", [
    v.IntLike(minimum=1, maximum=10), v.IntLike(minimum=0, maximum=10_000_000), v.IntLike(minimum=0),
    v.IntLike(minimum=1, maximum=86400), v.Phone(), v.Choice(("0", "1")), v.PrefixedId("LS"),
    v.Text(max_length=30, strip=True, min_length=1), v.Text(max_length=30), v.Date(), v.LocalDateTime(),
    v.RetryStatuses(), v.TransferTarget(),
], ids=lambda f: type(f).__name__)
def test_field_schema_accepts_what_the_field_accepts(field):
    """Each fragment agrees with its field on values at and around every boundary."""
    # jsonschema-rs reads patterns as ECMA 262 does ("$" is the end of the string), as
    # schemathesis does; Python's jsonschema lets "$" match before a final newline.
    validator = jsonschema_rs.Draft202012Validator(openapi_fields.field_schema(field))
    values = [0, 1, 9, 10, 11, 86400, 86401, 9_999_999, 10_000_000, 10_000_001, 10 ** 12 - 1, 10 ** 12,
              5.0, 5.5, -1, "-0", "007", " 10 ", "10\n", "0000000000010", "1e3", "", " ", "abc",
              " LS0123456789", "LS0123456789", "LS0123456789 ", "LSabcdef0123\t", "LS0123456789x",
              "12345678", "+123456789012345", "1234567", 12345678, 1234567890123456, "12", "1234567",
              "2030-02-29", "2032-02-29", "2030-2-3", "1899-12-31", "9999-01-01", "2030-02-29 10:00:00",
              "2032-02-29 23:59:59", "2030-08-15 24:00:00", "2030-08-1512:55:00", " 2030-08-15  1:2:3 ",
              "busy", "NOANSER, busy", ",,BUSY,", ",", ["BUSY", ""], [""], [], ["CANCEL", 1], "abcdef",
              "ab\x01", "  ab  ", "\u3000abcde\u3000", "a" * 30, " " + "a" * 30 + " ", "a" * 31, None, True,
              ["1"], {"a": 1}]
    for value in values:
        assert validator.is_valid(value) == _accepts(field, value), (type(field).__name__, value)


def test_digit_string_pattern_is_exact_on_a_range():
    pattern = re.compile(f"^{openapi_fields.digit_string(7, 1234)}$")
    for number in range(0, 1500):
        assert bool(pattern.match(str(number))) == (7 <= number <= 1234), number
        assert bool(pattern.match(f"00{number}")) == (7 <= number <= 1234), number


def test_a_whole_number_reads_the_same_with_a_fraction_of_zero():
    """JSON has one number type: 12345678.0 is 12345678 (JSON Schema's integer says so too)."""
    assert v.Phone().deserialize(919979270001.0) == "919979270001"
    assert v.Choice(("0", "1")).deserialize(1.0) == "1"
    assert v.Text(max_length=10).deserialize(1560.0) == "1560"
    with pytest.raises(ValidationError):
        v.Phone().deserialize(91997927000.5)
