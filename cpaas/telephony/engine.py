"""The engine interface: the only way services and workers touch a switch.

Two implementations: the embedded PJSUA2 worker pool (``pjsua_engine``) and, later,
FreeSWITCH over ESL (``freeswitch``). ``get_engine()`` picks one from configuration.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Literal

from cpaas.telephony.plans import Plan


class EngineError(Exception):
    """The engine could not carry out a request (no capacity, worker gone, …)."""


class LegNotFound(EngineError):
    """No live leg with that channel id belongs to the caller's account."""


@dataclass(frozen=True)
class LegAction:
    """An action on a live leg (``modify_call``).

    ``kind``: ``blind_transfer`` (``leg`` is the transferer; its peer is bridged to the
    new leg), ``attended_transfer`` (``leg`` is the customer; it is held while the
    agent consults the target, then bridged to it when the agent hangs up),
    ``hangup``, ``record`` (start recording; ``record_key`` is the storage key).
    """

    kind: Literal["blind_transfer", "attended_transfer", "hangup", "record"]
    target: str | None = None           # digits: an extension or a number
    target_kind: Literal["agent", "number"] | None = None
    caller_id: str | None = None
    record_key: str | None = None


class Engine(abc.ABC):
    """What every engine offers."""

    name: str

    @abc.abstractmethod
    def originate(self, plan: Plan) -> None:
        """Start executing ``plan``; progress is reported as engine events."""

    @abc.abstractmethod
    def act(self, channel: str, action: LegAction, timeout: float = 5.0) -> None:
        """Apply ``action`` to the live leg ``channel``; raise on failure.

        Callers have already checked that the channel belongs to the account.
        """
