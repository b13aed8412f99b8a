"""The states of a callback, declared once with the moves allowed between them.

A callback is ``scheduled`` until the scheduler fires it: ``fired`` when it left within
:data:`LATE_AFTER` of ``scheduled_at``, ``late`` past that (the platform was down or
behind), or ``failed`` without being dialed when it was more than
``CPAAS_CALLBACK_MAX_LATE`` seconds overdue. A fired or late callback whose call the
platform could not place at all (its job was lost, the engine refused it) ends
``failed`` too. Deleting a scheduled callback removes its row (as the API has always
done), so there is no ``deleted`` state. Every move is a conditional UPDATE
(:func:`advance`), so the scheduler and a PATCH or DELETE racing for the same row never
both win. One move back is not a transition: a claim whose call could not be queued at
all is undone, with its still-queued request, in one transaction (it never fired; see
:mod:`cpaas.callbacks.scheduler`).
"""
from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

from cpaas.models import Callback
from cpaas.states import Transitions

#: A callback fired later than this after its time is ``late``.
LATE_AFTER = timedelta(seconds=60)


class CallbackState(str, enum.Enum):
    """``callback.status``."""

    SCHEDULED = "scheduled"
    FIRED = "fired"
    LATE = "late"
    FAILED = "failed"


#: state → the states it may move to.
MOVES: Transitions[CallbackState] = Transitions(Callback.status, {
    CallbackState.SCHEDULED: frozenset({CallbackState.FIRED, CallbackState.LATE,
                                        CallbackState.FAILED}),
    CallbackState.FIRED: frozenset({CallbackState.FAILED}),
    CallbackState.LATE: frozenset({CallbackState.FAILED}),
    CallbackState.FAILED: frozenset(),
})
TRANSITIONS = MOVES.moves
sources = MOVES.sources


def fired_state(scheduled_at: datetime, fired_at: datetime) -> CallbackState:
    """``fired`` or ``late``, by how long after its time the callback left."""
    return CallbackState.LATE if fired_at - scheduled_at > LATE_AFTER else CallbackState.FIRED


def advance(callback_id: str, target: CallbackState, *conditions: Any, **changes: Any) -> bool:
    """Move the callback to ``target`` if its state allows it (and every extra peewee
    condition holds); True if it moved. ``changes`` are written in the same UPDATE."""
    return MOVES.advance(callback_id, target, *conditions, **changes)
