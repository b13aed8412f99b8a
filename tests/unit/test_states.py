"""Declared states: a move happens only from a state that allows it, once, on a real
database (SQLite in memory), whatever the order of the racers."""
from __future__ import annotations

import peewee
import pytest

from cpaas.calls.state import MOVES as CALL_MOVES, CallState
from cpaas.callbacks.state import MOVES as CALLBACK_MOVES, CallbackState


@pytest.mark.parametrize("moves", [CALL_MOVES, CALLBACK_MOVES])
def test_every_target_is_a_declared_state_and_final_states_have_no_moves(moves):
    states = set(moves.moves)
    assert all(targets <= states for targets in moves.moves.values())
    assert moves.open == {s for s, targets in moves.moves.items() if targets}


def test_sources_are_the_states_that_may_reach_a_target():
    assert sorted(CALL_MOVES.sources(CallState.DONE)) == ["dialing", "live", "queued"]
    assert CALL_MOVES.sources(CallState.QUEUED) == []
    assert CALLBACK_MOVES.sources(CallbackState.FIRED) == ["scheduled"]


def test_a_move_happens_once_and_only_from_an_allowed_state():
    db = peewee.SqliteDatabase(":memory:")

    class Row(peewee.Model):
        id = peewee.CharField(primary_key=True)
        status = peewee.CharField()
        note = peewee.CharField(default="")

        class Meta:
            database = db

    from cpaas.states import Transitions

    moves = Transitions(Row.status, CALL_MOVES.moves)
    with db.bind_ctx([Row]):
        db.create_tables([Row])
        Row.create(id="r1", status="queued")
        assert not moves.advance("r1", CallState.LIVE)          # queued cannot go live
        assert moves.advance("r1", CallState.DIALING, note="claimed")
        assert not moves.advance("r1", CallState.DIALING)       # the second racer loses
        assert not moves.advance("r1", CallState.DONE, Row.note == "other")  # extra condition
        assert moves.advance("r1", CallState.DONE)
        assert (Row.get_by_id("r1").status, Row.get_by_id("r1").note) == ("done", "claimed")
        assert not moves.advance("missing", CallState.DONE)
