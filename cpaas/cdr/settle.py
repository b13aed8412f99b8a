"""Settling a call request: its one CDR and its move to ``done``, committed together.

Every writer of a call's CDR comes here (the events consumer, and the API when a call
could not even be queued), so a request gets exactly one CDR whoever writes first: the
move to ``done`` is a conditional UPDATE in the CDR's own transaction, and whoever
finds the request already done writes nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from cpaas.calls.state import CallState, advance
from cpaas.cdr import writer
from cpaas.db import database
from cpaas.models import CallRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settled:
    """A request whose CDR was just committed (what a post-commit hook is told)."""

    request: CallRequest
    record: writer.CdrRecord
    cdr_id: int | None


def settle(request: CallRequest, record: writer.CdrRecord) -> Settled | None:
    """Commit ``record`` and mark the request done; None if it was already settled."""
    with database.atomic():
        if not advance(request.id, CallState.DONE):
            log.info("request already settled; CDR not written again",
                     extra={"request_id": request.id, "account_id": request.account_id,
                            "dial_status": record.dial_status})
            return None
        cdr_id = writer.write(record)
    return Settled(request, record, cdr_id)
