"""/healthz, /api/openapi.json, /docs (no auth) and the RQ dashboard at /rq (operator password)."""
from __future__ import annotations

import base64
import dataclasses

from openapi_spec_validator import validate

from cpaas import app as app_module
from tests import servers
from tests.api.conftest import SECRETS
from tests.api.helpers import all_routes, error_body, ok_body


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_healthz(app):
    inner = ok_body(app.test_client().get("/healthz"))
    # The checks; the reports beside them (engine, carrier, …) have tests of their own.
    assert {k: inner[k] for k in ("status", "database", "redis", "success")} == \
        {"status": "ok", "database": "ok", "redis": "ok", "success": "true"}


def test_openapi_document_is_valid_openapi_3(app):
    resp = app.test_client().get("/api/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    doc = resp.get_json()
    validate(doc)
    assert doc["openapi"].startswith("3.")


def _resolve(doc: dict, schema: dict) -> dict:
    """A schema with its top-level $ref followed."""
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_openapi_documents_every_route_with_its_body(app):
    doc = app.test_client().get("/api/openapi.json").get_json()
    for route in all_routes():
        op = doc["paths"][route.path][route.method]
        assert op["security"] == [{"account": [], "auth": []}]
        assert {"401", "413", "429"} <= set(op["responses"]), route.path
        if route.body is not None:
            schema = _resolve(doc, op["requestBody"]["content"]["application/json"]["schema"])
            assert set(schema["properties"]) == set(route.body().load_fields)
            assert schema.get("additionalProperties") is False, (route.path, schema)
            assert {"400", "415"} <= set(op["responses"]), route.path
    create = _resolve(doc, doc["paths"]["/api/create_campaign"]["post"]["requestBody"]["content"]
                      ["application/json"]["schema"])
    assert {"list_id", "campaign_name", "campaign_type", "campaign_caller_id", "campaign_start_date",
            "campaign_end_date"} <= set(create["required"])
    assert create["properties"]["volume"]["enum"] == ["silent", "x-soft", "soft", "medium", "loud", "x-loud"]
    assert {"repeat", "repeat_count", "max_retries", "retry_attempts"} <= set(create["properties"])
    upload = doc["paths"]["/api/upload_file"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    assert doc["paths"]["/api/callback"]["get"]["parameters"][0]["name"] == "request_id"
    assert "/stop_campaign" in doc["paths"]


def test_docs_page_without_auth(app):
    client = app.test_client()
    resp = client.get("/docs")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    assert "/api/openapi.json" in page and "SwaggerUIBundle" in page
    for asset in ("/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"):
        assert client.get(asset).status_code == 200, asset


def test_public_routes_ignore_bad_credentials(app):
    client = app.test_client()
    bad = {"account": "account_1", "auth": "wrong"}
    assert client.get("/healthz", headers=bad).status_code == 200
    assert client.get("/api/openapi.json", headers=bad).status_code == 200


def test_rq_dashboard_needs_the_operator_password(app, subtests):
    client = app.test_client()
    for headers in [{}, _basic("admin", "wrong"), _basic("root", "operator-pass"), _basic("admin", ""),
                    _basic("admin", "operator-pass "), {"Authorization": "Bearer operator-pass"},
                    {"account": "account_1", "auth": "x"}]:
        for path in ("/rq/", "/rq/0/data/queues.json", "/rq/0/view/workers"):
            with subtests.test(headers=headers, path=path):
                resp = client.get(path, headers=headers)
                assert resp.status_code == 401
                assert resp.headers["WWW-Authenticate"].startswith("Basic")
                assert b"<html" not in resp.data.lower()


def test_rq_dashboard_with_operator_password(app, settings):
    assert settings.admin_password == "operator-pass"
    client = app.test_client()
    resp = client.get("/rq/", headers=_basic("admin", "operator-pass"), follow_redirects=True)
    assert resp.status_code == 200
    resp = client.get("/rq/0/data/queues.json", headers=_basic("admin", "operator-pass"))
    assert resp.status_code == 200 and "queues" in resp.get_json()
    assert client.get("/rq/0/data/queues.json").status_code == 401


def test_account_credentials_do_not_open_the_dashboard(app):
    resp = app.test_client().get("/rq/", headers=_basic("account_1", SECRETS["account_1"]))
    assert resp.status_code == 401


def test_api_error_is_json_under_rq_prefix_lookalike(api):
    """Only /rq is the dashboard; /api/rq is an ordinary (unknown) API path."""
    error_body(api.get("/api/rq"), 404)


def test_healthz_reports_redis_down_as_503(app, settings):
    broken = app_module.create_app(dataclasses.replace(
        settings, redis_url=f"redis://127.0.0.1:{servers.free_port()}/0"))
    client = broken.test_client()
    inner = error_body(client.get("/healthz"), 503)
    assert (inner["status"], inner["database"], inner["redis"]) == ("down", "ok", "down")
    # Auth does not depend on Redis: the failure limiter fails open.
    ok_body(client.get("/api/files", headers={"account": "account_1", "auth": SECRETS["account_1"]}))
    error_body(client.get("/api/files", headers={"account": "account_1", "auth": "wrong"}), 401)
