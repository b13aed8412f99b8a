"""HTTP endpoints of ``/api/callback``."""
from __future__ import annotations

from flask import Blueprint, Response

from cpaas.callbacks import schemas, service
from cpaas.envelope import ok
from cpaas.http import caller, json_body, query_args, route

bp = Blueprint("callbacks", __name__)


@route(bp, "/callback", "POST", "Schedule a callback", body=schemas.CreateCallbackSchema)
def create_callback() -> Response:
    data = json_body(schemas.CreateCallbackSchema)
    return ok(request_id=service.create(caller().id, data))


@route(bp, "/callback", "PATCH", "Change a scheduled callback", body=schemas.UpdateCallbackSchema)
def update_callback() -> Response:
    data = json_body(schemas.UpdateCallbackSchema)
    service.update(caller().id, data)
    return ok(message="callback data modified successfully", request_id=data["request_id"])


@route(bp, "/callback", "DELETE", "Delete a scheduled callback", body=schemas.CallbackIdSchema)
def delete_callback() -> Response:
    data = json_body(schemas.CallbackIdSchema)
    service.delete(caller().id, data["request_id"])
    return ok(message="callback request deleted successfully", request_id=data["request_id"])


@route(bp, "/callback", "GET", "Read a callback", query=schemas.CallbackIdSchema)
def read_callback() -> Response:
    data = query_args(schemas.CallbackIdSchema)
    return ok(result=service.read(caller().id, data["request_id"]))
