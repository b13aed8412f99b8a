"""The response envelope and the HTTP-level errors: 400, 404, 405, 413, 415; never HTML or 500."""
from __future__ import annotations

import dataclasses
import io
import json

import pytest

from cpaas import app as app_module
from cpaas.db import database
from cpaas.models import ContactList
from tests.api.conftest import SECRETS, body
from tests.api.helpers import all_routes, error_body, ok_body

GOOD = {"account": "account_1", "auth": SECRETS["account_1"]}

#: Routes of the Platform-core issue that take a JSON body.
CORE_TAGS = {"campaigns", "campaigns_root", "callbacks", "cdr"}
JSON_ROUTES = sorted({(r.method.upper(), r.path, r.body) for r in all_routes()
                      if r.body is not None and set(r.tags) & CORE_TAGS},
                     key=lambda t: (t[1], t[0]))


def _ids(routes):
    return [f"{m} {p}" for m, p, _ in routes]


def test_success_envelope_is_exactly_the_specs(api):
    resp = api.post("/api/create_campaign_list", {"list_name": "my_campaign_list"})
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    payload = resp.get_json()
    assert list(payload) == ["response"]
    inner = payload["response"]
    assert set(inner) == {"list_id", "success"}
    assert inner["success"] == "true"
    assert list(inner)[-1] == "success"


def test_validation_error_envelope(api):
    resp = api.post("/api/create_campaign_list", {"list_name": "x", "colour": "red"})
    assert resp.status_code == 400
    payload = resp.get_json()
    assert list(payload) == ["response"]
    inner = payload["response"]
    assert inner["success"] == "false"
    assert "colour" in inner["message"]
    assert inner["errors"] == {"colour": ["Unknown field."]}


def test_missing_required_field_is_named(api):
    inner = error_body(api.post("/api/create_campaign_list", {}), 400, "list_name")
    assert inner["errors"]["list_name"]


def test_malformed_json_is_400(api):
    resp = api.client.post("/api/create_campaign_list", data='{"list_name": ',
                           headers={**GOOD, "Content-Type": "application/json"})
    inner = error_body(resp, 400, "_body")
    assert inner["message"] == "request body is not valid JSON"


def test_json_that_is_not_an_object_is_400(api, subtests):
    for raw in ['["list_name"]', '"my_list"', "12", "null", "true"]:
        with subtests.test(raw=raw):
            resp = api.client.post("/api/create_campaign_list", data=raw,
                                   headers={**GOOD, "Content-Type": "application/json"})
            error_body(resp, 400, "_body")


def test_invalid_utf8_is_400(api):
    resp = api.client.post("/api/create_campaign_list", data=b'{"list_name": "\xff\xfe"}',
                           headers={**GOOD, "Content-Type": "application/json"})
    error_body(resp, 400)


def test_deeply_nested_json_is_400_not_500(api):
    resp = api.client.post("/api/create_campaign_list", data="[" * 100_000 + "]" * 100_000,
                           headers={**GOOD, "Content-Type": "application/json"})
    error_body(resp, 400)


def test_non_json_body_is_415(api, subtests):
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                         "application/xml", None]:
        with subtests.test(content_type=content_type):
            headers = dict(GOOD)
            if content_type:
                headers["Content-Type"] = content_type
            resp = api.client.post("/api/create_campaign_list", data='{"list_name": "a"}', headers=headers)
            inner = error_body(resp, 415)
            assert "JSON" in inner["message"]
    with database.connection_context():
        assert ContactList.select().count() == 0


def test_json_with_charset_is_accepted(api):
    resp = api.client.post("/api/create_campaign_list", data='{"list_name": "a"}',
                           headers={**GOOD, "Content-Type": "application/json; charset=utf-8"})
    ok_body(resp)


def test_wrong_method_is_405_envelope(api, subtests):
    for method, path in [("GET", "/api/create_campaign_list"), ("PUT", "/api/callback"),
                         ("POST", "/api/get_campaign_details"), ("DELETE", "/api/get_cdr_by_date"),
                         ("GET", "/stop_campaign"), ("POST", "/healthz"), ("PATCH", "/api/files")]:
        with subtests.test(method=method, path=path):
            resp = api.client.open(path, method=method, headers=GOOD, json={})
            inner = error_body(resp, 405)
            assert inner["message"] == "method not allowed for this endpoint"


def test_unknown_path_is_404_envelope(api):
    for path in ("/api/nope", "/nope", "/api/get_cdr_by_date/extra", "/%00"):
        resp = api.client.get(path, headers=GOOD)
        error_body(resp, 404)


def test_body_over_limit_is_413(api, settings):
    big = {"list_name": "a" * (settings.max_body_bytes + 10)}
    inner = error_body(api.post("/api/create_campaign_list", big), 413)
    assert "too large" in inner["message"]
    with database.connection_context():
        assert ContactList.select().count() == 0


def test_body_over_limit_is_413_before_auth(app, settings):
    resp = app.test_client().post("/api/create_campaign_list",
                                  data="x" * (settings.max_body_bytes + 1),
                                  headers={"Content-Type": "application/json"})
    error_body(resp, 413)


def test_small_body_limit_setting_applies(app, settings):
    small = app_module.create_app(dataclasses.replace(settings, max_body_bytes=200))
    client = small.test_client()
    resp = client.post("/api/create_campaign_list", json={"list_name": "a" * 300}, headers=GOOD)
    error_body(resp, 413)
    resp = client.post("/api/create_campaign_list", json={"list_name": "ok"}, headers=GOOD)
    ok_body(resp)


def test_body_without_content_length_is_still_limited(api, settings):
    """A streamed (chunked) body has no Content-Length; the limit must still hold."""
    raw = json.dumps({"list_name": "a" * (settings.max_body_bytes + 10)}).encode()
    resp = api.client.post("/api/create_campaign_list", input_stream=io.BytesIO(raw),
                           headers={**GOOD, "Content-Type": "application/json",
                                    "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
    error_body(resp, 413)


def test_request_id_header_is_echoed_or_generated(api):
    resp = api.get("/api/files")
    assert resp.headers["X-Request-Id"]
    resp = api.client.get("/api/files", headers={**GOOD, "X-Request-Id": "abc123"})
    assert resp.headers["X-Request-Id"] == "abc123"
    resp = api.client.get("/api/files", headers={**GOOD, "X-Request-Id": "<script>"})
    assert resp.headers["X-Request-Id"] != "<script>"


def _fuzz_bodies(schema) -> list:
    names = list(schema().load_fields)
    values = [None, [], {}, True, 10 ** 30, 1e300, -1, 1.5, "", " ", "x" * 5000, "\x00",
              "../../etc/passwd", "9999-12-31 23:59:59", "0001-01-01 00:00:00", "9999-12-31",
              "2023-13-45", "\u202e\u0000", ["a", 1, None], {"a": {"b": []}}]
    bodies: list = [{}, {"unknown_field": 1}, {n: "" for n in names}]
    for value in values:
        bodies.append({n: value for n in names})
    return bodies


@pytest.mark.parametrize("method,path,schema", JSON_ROUTES, ids=_ids(JSON_ROUTES))
def test_no_input_gives_a_500_or_html(api, method, path, schema):
    for payload in _fuzz_bodies(schema):
        resp = api.client.open(path, method=method, json=payload, headers=GOOD)
        # Some junk is a legal value (a number is a fine list_name); none may crash.
        assert resp.status_code in (200, 400, 404, 409, 413, 415), (payload, resp.data[:300])
        inner = body(resp)
        assert inner["success"] == ("true" if resp.status_code == 200 else "false")
        assert isinstance(inner.get("errors", {}), dict)
    for raw in ("NaN", '{"a": Infinity}', '{"a": 1e999}', "{" * 5000, "\x00", ""):
        resp = api.client.open(path, method=method, data=raw,
                               headers={**GOOD, "Content-Type": "application/json"})
        assert resp.status_code == 400, (raw, resp.data[:300])
        assert body(resp)["success"] == "false"


def test_get_with_unexpected_query_is_not_500(api):
    for path in ("/api/get_campaign_details", "/api/get_cdr_statistics", "/api/files",
                 "/api/get_live_call_statistics"):
        resp = api.get(path + "?x=%00&y=" + "z" * 3000)
        assert resp.status_code == 200
        assert body(resp)["success"] == "true"
