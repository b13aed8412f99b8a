"""Transcripts in the database and the CDR's ``transcript_status``.

The status is a CDR column that the API serves pre-rendered (``api_json``), so every
change goes through :func:`cpaas.cdr.writer.rewrite`, conditional on the states it may
come from: a job and the retention task racing change it once, and a transcript whose
CDR retention reached first is not kept.
"""
from __future__ import annotations

import enum
import json
import logging
from datetime import datetime
from typing import Any

from cpaas.cdr.writer import rewrite
from cpaas.db import database
from cpaas.models import CallRequest, Cdr, Transcript
from cpaas.states import Transitions
from cpaas.transcription.turns import Turn
from cpaas.validation import utcnow

log = logging.getLogger(__name__)


class TranscriptState(str, enum.Enum):
    """``cdr.transcript_status``."""

    OFF = "off"
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    DELETED = "deleted"


MOVES: Transitions[TranscriptState] = Transitions(Cdr.transcript_status, {
    TranscriptState.OFF: frozenset({TranscriptState.PENDING}),
    TranscriptState.PENDING: frozenset({TranscriptState.DONE, TranscriptState.FAILED,
                                        TranscriptState.DELETED}),
    TranscriptState.DONE: frozenset({TranscriptState.DELETED}),
    TranscriptState.FAILED: frozenset({TranscriptState.DELETED}),
    TranscriptState.DELETED: frozenset(),
})


def cdr_id(account_id: str, request_id: str) -> int | None:
    """The id of the request's CDR (a request has one), None before it is written."""
    row = (Cdr.select(Cdr.id).where((Cdr.account_id == account_id)
                                    & (Cdr.request_id == request_id)).first())
    return row.id if row else None


def set_status(row_id: int, target: TranscriptState) -> bool:
    """Move CDR ``row_id``'s transcript to ``target`` if its state allows; True if moved."""
    return rewrite(row_id, {"transcript_status": target.value},
                   Cdr.transcript_status.in_(MOVES.sources(target)))


def save(request_id: str, account_id: str, backend: str, turns: list[Turn]) -> None:
    """Keep the request's transcript (a second run replaces the first)."""
    with database.atomic():
        Transcript.delete().where(Transcript.request_id == request_id).execute()
        Transcript.create(request_id=request_id, account_id=account_id, backend=backend,
                          turns=json.dumps([t.to_dict() for t in turns]), created_at=utcnow())


def delete(request_id: str) -> None:
    """Remove the request's transcript, if it has one."""
    Transcript.delete().where(Transcript.request_id == request_id).execute()


def read(account_id: str, request_id: str) -> tuple[str, list[dict[str, Any]]] | None:
    """The status and turns of the account's request; None when the account has no such
    request (another account's request included).

    A call still in progress has no CDR yet: its transcript is ``pending`` if it asked
    for one, else ``off``.
    """
    row = (Cdr.select(Cdr.transcript_status)
           .where((Cdr.account_id == account_id) & (Cdr.request_id == request_id)).first())
    if row is None:
        request = CallRequest.get_or_none((CallRequest.id == request_id)
                                          & (CallRequest.account_id == account_id))
        if request is None:
            return None
        return (TranscriptState.PENDING.value if request.transcript == "on"
                else TranscriptState.OFF.value), []
    if row.transcript_status != TranscriptState.DONE.value:
        return row.transcript_status, []
    kept = Transcript.get_or_none((Transcript.request_id == request_id)
                                  & (Transcript.account_id == account_id))
    return row.transcript_status, json.loads(kept.turns) if kept else []


def expire(cutoff: datetime, limit: int) -> int:
    """Retention: delete the transcripts of calls that ended before ``cutoff`` (at most
    ``limit``) and mark their CDRs ``deleted``; how many CDRs were looked at.

    The transcript goes first and the status after, conditional on the state it read:
    a pass cut short in between deletes nothing new the next time and then changes the
    row; a job finishing meanwhile sees ``deleted`` and drops what it wrote.
    """
    rows = list(Cdr.select(Cdr.id, Cdr.account_id, Cdr.request_id)
                .where(Cdr.transcript_status.in_(MOVES.sources(TranscriptState.DELETED))
                       & (Cdr.call_date < cutoff))
                .order_by(Cdr.call_date).limit(limit))
    for row in rows:
        delete(row.request_id)
        if set_status(row.id, TranscriptState.DELETED):
            log.info("transcript deleted by retention",
                     extra={"request_id": row.request_id, "account_id": row.account_id})
    return len(rows)
