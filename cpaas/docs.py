"""OpenAPI 3 document generated from the routes' marshmallow schemas, and Swagger UI."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, send_from_directory
from marshmallow import Schema, fields

from cpaas import validation as v
from cpaas.http import ROUTES

bp = Blueprint("docs", __name__)

try:
    from swagger_ui_bundle import swagger_ui_path
except ImportError:  # the docs page is optional; the JSON document is not
    swagger_ui_path = None


def _field_schema(field: fields.Field) -> dict[str, Any]:
    if isinstance(field, fields.Nested):
        return schema_object(field.nested if isinstance(field.nested, type) else type(field.nested))
    if isinstance(field, fields.List):
        return {"type": "array", "items": _field_schema(field.inner)}
    if isinstance(field, fields.Dict):
        return {"type": "object", "additionalProperties": {"type": "string"}}
    if isinstance(field, v.Choice):
        return {"type": "string", "enum": list(field.choices)}
    if isinstance(field, v.IntLike):
        out: dict[str, Any] = {"oneOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+$"}]}
        if field.minimum is not None:
            out["minimum"] = field.minimum
        if field.maximum is not None:
            out["maximum"] = field.maximum
        return out
    if isinstance(field, v.Phone):
        return {"type": "string", "pattern": v.PHONE_RE.pattern}
    if isinstance(field, v.PrefixedId):
        return {"type": "string", "pattern": field.pattern.pattern}
    if isinstance(field, v.LocalDateTime):
        return {"type": "string", "example": "2030-08-15 12:55:00"}
    if isinstance(field, v.Date):
        return {"type": "string", "format": "date"}
    if isinstance(field, v.Text):
        return {"type": "string", "maxLength": field.max_length}
    return {"type": "string"}


def schema_object(schema: type[Schema]) -> dict[str, Any]:
    """JSON Schema of a marshmallow schema's load fields."""
    instance = schema()
    props, required = {}, []
    for name, field in instance.load_fields.items():
        key = field.data_key or name
        props[key] = _field_schema(field)
        if field.required:
            required.append(key)
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3 document."""
    envelope = {"type": "object", "properties": {"response": {"type": "object"}}}
    paths: dict[str, dict[str, Any]] = {}
    for doc in ROUTES:
        op: dict[str, Any] = {
            "summary": doc.summary, "tags": doc.tags,
            "security": [{"account": [], "auth": []}],
            "responses": {str(code): {"description": text, "content": {"application/json": {"schema": envelope}}}
                          for code, text in (("200", "success"), ("400", "invalid request"),
                                             ("401", "missing or wrong credentials"),
                                             ("404", "not found in this account"))},
        }
        if doc.body is not None:
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": schema_object(doc.body)}}}
        if doc.multipart:
            op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"], "properties": {
                    "file": {"type": "string", "format": "binary"}, "file_name": {"type": "string"}}}}}}
        if doc.query is not None:
            op["parameters"] = [{"name": name, "in": "query", "required": f.required,
                                 "schema": _field_schema(f)}
                                for name, f in doc.query().load_fields.items()]
        paths.setdefault(doc.path, {})[doc.method] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "cpaas API", "version": "1.0.0",
                 "description": "Self-hosted voice platform. Every /api route needs the "
                                "account and auth headers."},
        "paths": paths,
        "components": {"securitySchemes": {
            "account": {"type": "apiKey", "in": "header", "name": "account"},
            "auth": {"type": "apiKey", "in": "header", "name": "auth"}}},
    }


@bp.route("/api/openapi.json", methods=["GET"])
def openapi_json() -> Response:
    return jsonify(openapi_document())


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>cpaas API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#ui"});</script></body></html>"""


@bp.route("/docs", methods=["GET"])
def docs_page() -> Response:
    return Response(_PAGE, mimetype="text/html")


@bp.route("/docs/static/<path:name>", methods=["GET"])
def docs_static(name: str) -> Response:
    if swagger_ui_path is None:
        return Response("swagger-ui-bundle is not installed\n", 404, mimetype="text/plain")
    return send_from_directory(swagger_ui_path, name)
