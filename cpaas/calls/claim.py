"""The call job's right to dial: claim the request (``queued`` → ``dialing``) first.

Only the job that moves the request out of ``queued`` hands its plan to an engine, so
a request the sweeper already settled, or a job RQ runs a second time, never dials.
"""
from __future__ import annotations

import logging
import time
from functools import lru_cache

import peewee

from cpaas import db
from cpaas.calls.state import CallState, advance
from cpaas.models import CallRequest

log = logging.getLogger(__name__)

#: How long a job waits for its request's row to become visible. The API commits the
#: row before it queues the job, so only a job queued by something that did not wait
#: for its commit gets here; past this the job gives up, and the sweeper closes the
#: request if its row ever appears.
VISIBLE_WAIT = 2.0
#: How long a job keeps trying while the database is unreachable (a restart takes a
#: second or two); past it the error ends the call with ``not placed: <error>``.
DATABASE_WAIT = 5.0


@lru_cache(maxsize=4)
def bind(url: str) -> None:
    """Point the models at ``url`` once per process (every thread then shares it)."""
    db.init(url)


def _try_claim(request_id: str) -> str:
    """``claimed``, ``missing`` (not visible) or the request's current status."""
    with db.database.connection_context():
        if advance(request_id, CallState.DIALING):
            return "claimed"
        row = CallRequest.get_or_none(CallRequest.id == request_id)
        return row.status if row else "missing"


def for_dialing(database_url: str, request_id: str) -> bool:
    """Claim the request for dialing; False when this job must not dial it."""
    bind(database_url)
    started = time.monotonic()
    delay = 0.05
    while True:
        try:
            outcome = _try_claim(request_id)
        except (peewee.OperationalError, peewee.InterfaceError):
            if time.monotonic() - started > DATABASE_WAIT:
                raise
            outcome = "unreachable"
        if outcome == "claimed":
            return True
        if outcome not in ("missing", "unreachable"):
            log.warning("request not dialed: already %s", outcome, extra={"request_id": request_id})
            return False
        if outcome == "missing" and time.monotonic() - started > VISIBLE_WAIT:
            log.error("request not dialed: its row is not visible", extra={"request_id": request_id})
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
