"""HTTP endpoints for calls."""
from __future__ import annotations

from contextlib import closing

from flask import Blueprint, Response, stream_with_context

from cpaas.calls import schemas, service
from cpaas.envelope import ok
from cpaas.field_docs import DESCRIPTIONS
from cpaas.http import caller, json_body, query_args, route
from cpaas.platform import platform
from cpaas.telephony import tts

bp = Blueprint("calls", __name__)


@route(bp, "/click2call", "POST", "Connect an agent and a customer", body=schemas.Click2CallSchema)
def click2call() -> Response:
    data = json_body(schemas.Click2CallSchema)
    return ok(request_id=service.click2call(platform(), caller(), data))


@route(bp, "/outbound_call", "POST", "Call a customer and read out an OTP",
       body=schemas.OutboundCallSchema, description=DESCRIPTIONS["tts_engine_used"])
def outbound_call() -> Response:
    data = json_body(schemas.OutboundCallSchema)
    request_id = service.outbound_call(platform(), caller(), data)
    return ok(request_id=request_id, tts_engine_used=tts.engine_used_for(
        data, platform().settings.tts, request_id=request_id))


@route(bp, "/announce_template", "POST", "Submit an OTP announcement template for approval",
       body=schemas.AnnounceTemplateSchema)
def create_announce_template() -> Response:
    data = json_body(schemas.AnnounceTemplateSchema)
    return ok(**service.create_template(caller().id, data["template_text"]))


@route(bp, "/announce_template", "GET", "List the account's announcement templates")
def list_announce_templates() -> Response:
    return ok(result=service.list_templates(caller().id))


@route(bp, "/live_calls", "GET", "The account's live call legs (channels for modify_call)")
def live_calls() -> Response:
    return ok(result=service.live_calls(platform(), caller().id))


@route(bp, "/modify_call", "POST", "Transfer, hang up or record a live call",
       body=schemas.ModifyCallSchema)
def modify_call() -> Response:
    data = json_body(schemas.ModifyCallSchema)
    return ok(message=service.modify_call(platform(), caller(), data))


@route(bp, "/recording", "GET", "Download a call's recording (audio/wav)",
       query=schemas.RecordingQuerySchema)
def recording() -> Response:
    data = query_args(schemas.RecordingQuerySchema)
    name, stream = service.open_recording(platform(), caller(), data["request_id"],
                                          data.get("recording_name"))

    def chunks():
        with closing(stream):
            while chunk := stream.read(64 * 1024):
                yield chunk

    return Response(stream_with_context(chunks()), mimetype="audio/wav",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
