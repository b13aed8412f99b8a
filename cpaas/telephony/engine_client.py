"""The engine interface: the only way services and workers touch a switch.

Web and RQ processes hold an :class:`EngineClient`: it hands plans to an engine and
acts on live legs, and never runs a call itself. Two engines stand behind it: the
embedded PJSUA2 worker pool (:class:`pjsua_engine.client.EmbeddedClient`, talking to
the pool through Redis) and FreeSWITCH over ESL (:class:`freeswitch.client.FreeSwitchClient`).
:func:`engine_client` picks one from configuration. What engines report back travels
the other way, as :mod:`cpaas.telephony.events`.
"""
from __future__ import annotations

import abc
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import redis

from cpaas.config import Settings
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


def request_action(r: redis.Redis, cmd_key: str, reply_key: Callable[[str], str], channel: str,
                   action: LegAction, timeout: float, who: str) -> None:
    """Send ``action`` on ``channel`` to the process holding the leg (its command list
    ``cmd_key``) and wait for its answer on ``reply_key(request_id)``; raise on failure. Both
    engines' clients use it: the embedded pool's workers and FreeSWITCH's node drivers
    answer the same way (``ok``, or ``error``: ``not_found`` or a message)."""
    request_id = secrets.token_hex(8)
    r.rpush(cmd_key, json.dumps({
        "request_id": request_id, "channel": channel, "action": asdict(action),
        # A command that outlives its caller's patience must not run late.
        "expires": time.time() + timeout,
    }))
    got = r.blpop([reply_key(request_id)], timeout=timeout)
    if got is None:
        raise EngineError(f"{who} did not answer in time")
    reply = json.loads(got[1])
    if reply.get("ok"):
        return
    if reply.get("error") == "not_found":
        raise LegNotFound(channel)
    raise EngineError(reply.get("error") or "action failed")


class EngineClient(abc.ABC):
    """What every engine offers the processes that place and modify calls."""

    name: str

    @abc.abstractmethod
    def originate(self, plan: Plan) -> None:
        """Start executing ``plan``; progress is reported as engine events.

        The plan reaches the engine through :func:`cpaas.telephony.handoff.push`, so a
        plan the sweeper revoked is never dialed (:class:`~cpaas.telephony.handoff.Revoked`)."""

    @abc.abstractmethod
    def act(self, channel: str, action: LegAction, timeout: float = 5.0) -> None:
        """Apply ``action`` to the live leg ``channel``; raise on failure.

        Callers have already checked that the channel belongs to the account.
        """

    @abc.abstractmethod
    def held_plans(self) -> set[str]:
        """The ids of the plans the engine holds right now: handed to it and not ended
        (waiting for capacity, or running). The sweeper settles none of them."""

    def waiting(self) -> int:
        """Plans handed to the engine that wait for a free call slot (the campaign dialer
        holds back while the engine is this far behind: ``no_engine_capacity``)."""
        return 0

    @abc.abstractmethod
    def health(self) -> dict[str, str]:
        """What ``/healthz`` says of the engine: ``engine`` (ok | degraded | down |
        unknown), ``engine_type`` and whatever detail the engine has (cheap: a few reads)."""


def engine_client(settings: Settings, r: redis.Redis) -> EngineClient:
    """The client of the configured engine: FreeSWITCH's node drivers when
    ``FREESWITCH_ESL`` is set, else the embedded PJSUA2 pool."""
    if settings.freeswitch_esl:
        from freeswitch.client import FreeSwitchClient

        return FreeSwitchClient(r, settings)
    from pjsua_engine.client import EmbeddedClient

    return EmbeddedClient(r, settings)
