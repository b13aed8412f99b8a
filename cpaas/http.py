"""HTTP helpers shared by the feature blueprints: body parsing, the caller, route docs."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from flask import Blueprint, g, request
from marshmallow import Schema, ValidationError

from cpaas.accounts import AuthRecord
from cpaas.envelope import ApiError


@dataclass
class RouteDoc:
    """What the OpenAPI generator needs to know about one route."""

    path: str
    method: str
    summary: str
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    tags: list[str] = field(default_factory=list)
    multipart: bool = False
    description: str = ""


ROUTES: list[RouteDoc] = []


def route(bp: Blueprint, path: str, method: str, summary: str, *, body: type[Schema] | None = None,
          query: type[Schema] | None = None, multipart: bool = False,
          prefix: str = "/api", description: str = "") -> Callable:
    """Register a view on ``bp`` and record it for the OpenAPI document (``description``:
    the operation's longer text, such as the columns a CSV file must have)."""

    def wrap(view: Callable) -> Callable:
        ROUTES.append(RouteDoc(prefix + path, method.lower(), summary, body, query,
                               [bp.name], multipart, description))
        # No automatic OPTIONS: it would answer with an empty HTML page, not the envelope.
        return bp.route(path, methods=[method], provide_automatic_options=False)(view)

    return wrap


def validation_error(err: ValidationError) -> ApiError:
    """A 400 naming every field that failed."""
    messages = err.messages if isinstance(err.messages, dict) else {"_body": err.messages}
    names = ", ".join(str(k) for k in messages)
    return ApiError(400, f"invalid request: check {names}", _stringify(messages))


def _stringify(messages: Any) -> Any:
    if isinstance(messages, dict):
        return {str(k): _stringify(v) for k, v in messages.items()}
    return messages


@lru_cache(maxsize=None)
def _schema(cls: type[Schema]) -> Schema:
    # A schema's fields are bound once; loading does not change the instance, so one
    # per class serves every request and thread (building one costs ~0.3 ms).
    return cls()


def json_body(schema: type[Schema]) -> dict[str, Any]:
    """Parse and validate the JSON body; 415 if not JSON, 400 if malformed or invalid."""
    if not request.is_json:
        raise ApiError(415, "request body must be JSON (Content-Type: application/json)")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser's recursion limit
        data = None
    if data is None:
        raise ApiError(400, "request body is not valid JSON", {"_body": ["malformed JSON"]})
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object", {"_body": ["not an object"]})
    try:
        return _schema(schema).load(data)
    except ValidationError as err:
        raise validation_error(err) from None


def query_args(schema: type[Schema]) -> dict[str, Any]:
    """Validate the query string with ``schema``."""
    try:
        return _schema(schema).load(request.args.to_dict())
    except ValidationError as err:
        raise validation_error(err) from None


def caller() -> AuthRecord:
    """The authenticated account of this request."""
    return g.account
