"""The states of a call request, declared once with the moves allowed between them.

A request is ``queued`` when its row is committed, ``dialing`` once its job claimed it
(the only holder that may hand it to an engine), ``live`` once a leg answered, and
``done`` once its one CDR is committed. Every move is a conditional UPDATE
(:func:`advance`), so two processes racing for the same move never both win: that is
what keeps a request from being dialed twice or getting two CDRs.
"""
from __future__ import annotations

import enum

from cpaas.models import CallRequest
from cpaas.states import Transitions


class CallState(str, enum.Enum):
    """``call_request.status``."""

    QUEUED = "queued"
    DIALING = "dialing"
    LIVE = "live"
    DONE = "done"


#: state → the states it may move to.
MOVES: Transitions[CallState] = Transitions(CallRequest.status, {
    CallState.QUEUED: frozenset({CallState.DIALING, CallState.DONE}),
    CallState.DIALING: frozenset({CallState.LIVE, CallState.DONE}),
    CallState.LIVE: frozenset({CallState.DONE}),
    CallState.DONE: frozenset(),
})
TRANSITIONS = MOVES.moves
#: States a request can still leave (a CDR has not been written yet).
OPEN = MOVES.open
sources = MOVES.sources


def advance(request_id: str, target: CallState) -> bool:
    """Move the request to ``target`` if its current state allows it; True if it moved.

    Run it inside the transaction that commits what the move stands for (the CDR, for
    ``done``), so the move and its consequence are committed or lost together.
    """
    return MOVES.advance(request_id, target)
