"""The spec's response envelope: ``{"response": {..., "success": "true"|"false"}}``."""
from __future__ import annotations

from typing import Any

from flask import Response, json

from cpaas.jsontext import JsonArray

#: Stands in for a pre-encoded value while the rest of the envelope is encoded.
_SLOT = "\x00json:{}\x00"


def ok(**fields: Any) -> Response:
    """A 200 success envelope carrying ``fields``."""
    return _respond({**fields, "success": "true"}, 200)


def failure(status: int, message: str, errors: dict[str, list[str]] | None = None, /,
            **extra: Any) -> Response:
    """An error envelope: one-sentence message and, for validation, per-field reasons.

    The parameters are positional-only so that ``extra`` may carry any field name,
    ``status`` included (``/healthz`` reports ``"status": "down"``)."""
    body: dict[str, Any] = {"success": "false", "message": message}
    if errors:
        body["errors"] = errors
    body.update(extra)
    return _respond(body, status)


def _respond(body: dict[str, Any], status: int) -> Response:
    raw = {name: value for name, value in body.items() if isinstance(value, JsonArray)}
    for name in raw:
        body[name] = _SLOT.format(name)
    text = json.dumps({"response": body})
    for name, value in raw.items():
        # The slot's encoding (NUL escaped) cannot occur in any other value we send.
        text = text.replace(json.dumps(_SLOT.format(name)), value.text, 1)
    return Response(text, status=status, mimetype="application/json")


class ApiError(Exception):
    """Raised by services and views; rendered as an error envelope."""

    def __init__(self, status: int, message: str,
                 errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


class NotFound(ApiError):
    """404 naming the field whose object does not exist (or is another account's)."""

    def __init__(self, field: str, what: str) -> None:
        super().__init__(404, f"{what} not found", {field: [f"no such {what} in this account"]})


class Conflict(ApiError):
    """409 for a duplicate unique name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(409, message, {field: ["already exists in this account"]})
