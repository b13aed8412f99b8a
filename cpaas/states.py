"""A state column with its allowed moves, declared once (as rq's ``JobStatus`` and
wazo-calld's ``transfers/state.py`` declare theirs).

Every move is one conditional UPDATE: the row moves only from a state that allows the
target, so two processes racing for the same move never both win. Call requests and
callbacks, campaigns, their contacts and their attempts use it.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import peewee

S = TypeVar("S", bound=enum.Enum)


class Transitions(Generic[S]):
    """The moves allowed on one model's state column (its values: a ``str`` enum)."""

    def __init__(self, column: peewee.Field, moves: Mapping[S, frozenset[S]]) -> None:
        self.column = column
        self.moves = dict(moves)
        #: States a row can still leave.
        self.open: frozenset[S] = frozenset(state for state, targets in self.moves.items() if targets)

    def sources(self, target: S) -> list[str]:
        """The states (their stored values) from which ``target`` may be reached."""
        return [state.value for state, targets in self.moves.items() if target in targets]

    def advance(self, row_id: Any, target: S, *conditions: Any, **changes: Any) -> bool:
        """Move row ``row_id`` to ``target`` if its state allows it and every extra peewee
        condition holds; ``changes`` are written in the same UPDATE. True if it moved."""
        model = self.column.model
        return bool(self.move(model._meta.primary_key == row_id, target, *conditions, **changes))

    def move(self, where: Any, target: S, *conditions: Any, **changes: Any) -> int:
        """Move every row matching ``where`` (and ``conditions``) whose state allows
        ``target`` (a table with a composite key names its row this way); how many moved."""
        model = self.column.model
        where &= self.column.in_(self.sources(target))
        for condition in conditions:
            where &= condition
        return model.update(**{self.column.name: target.value, **changes}).where(where).execute()
