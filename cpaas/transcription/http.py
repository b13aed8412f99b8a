"""HTTP endpoint for a call's transcript."""
from __future__ import annotations

from flask import Blueprint, Response

from cpaas.envelope import NotFound, ok
from cpaas.http import caller, query_args, route
from cpaas.transcription import schemas, store

bp = Blueprint("transcripts", __name__)

DESCRIPTION = (
    "The transcript of a call placed with transcript: on, as turns {speaker: agent | "
    "customer, start, end (seconds from the start of the recording), text} in time order. "
    "transcript_status is off, pending, done, failed or deleted (by the recording retention "
    "policy); result is [] until it is done. Both sides are recorded for the transcript "
    "whatever recording_option says; audio recorded only for the transcript is deleted once "
    "the transcript is made and is never offered by GET /api/recording.")


@route(bp, "/transcript", "GET", "A call's transcript", query=schemas.TranscriptQuerySchema,
       description=DESCRIPTION)
def transcript() -> Response:
    request_id = query_args(schemas.TranscriptQuerySchema)["request_id"]
    found = store.read(caller().id, request_id)
    if found is None:
        raise NotFound("request_id", "call request")
    status, turns = found
    return ok(request_id=request_id, transcript_status=status, result=turns)
