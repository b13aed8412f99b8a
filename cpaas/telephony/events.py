"""The engine contract's events: what every engine reports, typed, and their wire format.

Every engine (the embedded PJSUA2 pool, FreeSWITCH) reports what happens to a plan and
its legs as the typed events below, appended to one Redis stream; the ``events``
process reads the stream and feeds the CDR writer, so the writer never knows which
engine produced a call. Events are built and parsed only here: an engine constructs a
:class:`PlanEnded` (or another type) and calls :func:`publish` or :func:`encode`; a
reader calls :func:`decode`.

Wire format, version 1 (:data:`WIRE_VERSION`): one stream entry per event, its field
``event`` the JSON of an :class:`EngineEvent` envelope ``{type, plan_id, account_id, leg,
channel, at, data}``, and ``v`` the version. Entries written before ``v`` existed are
version 1 too, so events pending in the stream during an upgrade are read as before.
The parser ignores keys it does not know (a later version may add some) and refuses a
version it does not know (the consumer buries such an entry in the dead-letter stream,
from which it is replayed once the consumer is upgraded).
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Union

import redis

#: Redis stream all engines append to; the events process consumes it in a group.
EVENT_STREAM = "cpaas:events"
WIRE_VERSION = 1


class UnreadableEvent(ValueError):
    """A stream entry that is not an event of a wire version this release reads."""


@dataclass
class EngineEvent:
    """The envelope one event travels in (the wire format's JSON object)."""

    type: str
    plan_id: str
    account_id: str
    leg: str | None = None
    channel: str | None = None
    at: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)

    def to_fields(self) -> dict[str, str]:
        """Flatten for XADD (Redis stream entries are flat string maps)."""
        return {"event": json.dumps(asdict(self)), "v": str(WIRE_VERSION)}

    @classmethod
    def from_fields(cls, fields: Mapping) -> "EngineEvent":
        """Inverse of :meth:`to_fields`; accepts bytes or str keys, and entries without ``v``."""
        version = fields.get("v") or fields.get(b"v") or b"1"
        raw = fields.get("event") or fields.get(b"event")
        if raw is None or int(version) != WIRE_VERSION:
            raise UnreadableEvent(f"no event of wire version {WIRE_VERSION}")
        data = json.loads(raw)
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclass
class LegOutcome:
    """How one leg ended; carried by ``leg.hangup`` and inside ``plan.ended``.

    ``dial_status`` comes from the outcome table (:mod:`cpaas.telephony.outcomes`);
    ``sip_code`` is the final SIP response, ``hangup_cause`` the switch's own cause name
    (FreeSWITCH's ``Hangup-Cause``; None on the embedded engine).
    """

    role: str
    number: str
    channel: str
    started_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    sip_code: int | None = None
    dial_status: str = "CHANUNAVAIL"
    hangup_cause: str | None = None

    @classmethod
    def from_dict(cls, role: str, data: Mapping[str, Any]) -> "LegOutcome":
        """Read one leg from the wire (or a snapshot), tolerating missing and extra keys."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a leg is an object, not {type(data).__name__}")
        known = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        return cls(**{"role": role, "number": "", "channel": "", "started_at": 0.0, **known})


#: Fields of the envelope itself; an event's other fields travel in its ``data``.
_ENVELOPE_FIELDS = frozenset({"plan_id", "account_id", "at", "leg", "channel"})


@dataclass(frozen=True, kw_only=True)
class _Event:
    """What every event carries: the plan (= request or attempt) and its account."""

    TYPE: ClassVar[str]
    plan_id: str
    account_id: str
    at: float = field(default_factory=time.time)

    @classmethod
    def _payload(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in _ENVELOPE_FIELDS]

    def _data(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._payload()}

    def envelope(self) -> EngineEvent:
        """This event as it travels on the stream."""
        return EngineEvent(self.TYPE, self.plan_id, self.account_id, at=self.at,
                           data=self._data())


@dataclass(frozen=True, kw_only=True)
class _LegEvent(_Event):
    """What every event about one leg carries besides its plan."""

    leg: str        # the leg's role in its plan
    channel: str    # the id live_calls shows and modify_call takes

    def envelope(self) -> EngineEvent:
        """This event as it travels on the stream."""
        return dataclasses.replace(super().envelope(), leg=self.leg, channel=self.channel)


@dataclass(frozen=True, kw_only=True)
class _SipLegEvent(_LegEvent):
    """A leg event caused by a SIP response (``sip_code``; None when the switch has none)."""

    sip_code: int | None = None


@dataclass(frozen=True, kw_only=True)
class LegRinging(_SipLegEvent):
    """A provisional response arrived for the leg."""

    TYPE: ClassVar[str] = "leg.ringing"


@dataclass(frozen=True, kw_only=True)
class LegAnswered(_SipLegEvent):
    """The leg answered (200 OK)."""

    TYPE: ClassVar[str] = "leg.answered"


@dataclass(frozen=True, kw_only=True)
class LegDtmf(_LegEvent):
    """A DTMF digit arrived on the leg (``method``: ``info`` or ``rfc2833``)."""

    TYPE: ClassVar[str] = "leg.dtmf"
    digit: str
    method: str


@dataclass(frozen=True, kw_only=True)
class LegHangup(_Event):
    """One leg ended; its role and channel are its outcome's."""

    TYPE: ClassVar[str] = "leg.hangup"
    outcome: LegOutcome

    @property
    def leg(self) -> str:
        """The leg's role in its plan."""
        return self.outcome.role

    @property
    def channel(self) -> str:
        """The leg's channel id."""
        return self.outcome.channel

    def envelope(self) -> EngineEvent:
        """This event as it travels on the stream."""
        return EngineEvent(self.TYPE, self.plan_id, self.account_id, leg=self.leg,
                           channel=self.channel, at=self.at, data=asdict(self.outcome))


@dataclass(frozen=True, kw_only=True)
class RecordingStored(_Event):
    """A recording of the plan is in object storage under ``key``."""

    TYPE: ClassVar[str] = "recording.stored"
    key: str
    channels: int


@dataclass(frozen=True, kw_only=True)
class PlanEnded(_Event):
    """Every call of the plan is gone: the event its CDR is written from.

    ``legs`` is empty for a plan that never dialed (not queued, not placed, swept,
    refused); ``cause`` says why the plan ended (``normal``, ``dial_failed``,
    ``engine_worker_died``, ``swept: <why>``, …). ``ivr_result`` is what the plan's
    ``Branch`` did (:data:`cpaas.telephony.plans.IvrResult`; "" when none ran) and
    ``transfer_to`` the route it dialed (``agent:102``, ``number:…``; "" when none);
    both are optional on the wire, so an entry written without them reads as "".
    """

    TYPE: ClassVar[str] = "plan.ended"
    cause: str
    legs: Mapping[str, LegOutcome] = field(default_factory=dict)
    dtmf: str = ""
    recordings: tuple[str, ...] = ()
    ivr_result: str = ""
    transfer_to: str = ""

    def _data(self) -> dict[str, Any]:
        return {"legs": {role: asdict(o) for role, o in self.legs.items()}, "dtmf": self.dtmf,
                "recordings": list(self.recordings), "cause": self.cause,
                "ivr_result": self.ivr_result, "transfer_to": self.transfer_to}


Event = Union[LegRinging, LegAnswered, LegDtmf, LegHangup, RecordingStored, PlanEnded]
TYPES: dict[str, type] = {cls.TYPE: cls for cls in
                          (LegRinging, LegAnswered, LegDtmf, LegHangup, RecordingStored, PlanEnded)}


def parse(env: EngineEvent) -> Event | None:
    """The typed event an envelope carries; None for a type this release does not know
    (written by a newer engine: there is nothing here to apply it to)."""
    if isinstance(env.type, str) and env.type not in TYPES:
        return None
    data, ids = env.data or {}, {"plan_id": env.plan_id, "account_id": env.account_id, "at": env.at}
    try:
        if env.type == "plan.ended":
            return PlanEnded(**ids, cause=str(data.get("cause", "")), dtmf=str(data.get("dtmf", "")),
                             legs={role: LegOutcome.from_dict(role, leg)
                                   for role, leg in (data.get("legs") or {}).items()},
                             recordings=tuple(data.get("recordings") or ()),
                             ivr_result=str(data.get("ivr_result") or ""),
                             transfer_to=str(data.get("transfer_to") or ""))
        if env.type == "leg.hangup":
            return LegHangup(**ids, outcome=LegOutcome.from_dict(env.leg or "", data))
        cls = TYPES[env.type]   # a type that is no string fails here
        if issubclass(cls, _LegEvent):
            ids.update(leg=env.leg or "", channel=env.channel or "")
        return cls(**ids, **{name: data[name] for name in cls._payload() if name in data})
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise UnreadableEvent(f"malformed {env.type}: {type(err).__name__}") from err


def encode(event: Event) -> dict[str, str]:
    """The stream entry of one event."""
    return event.envelope().to_fields()


def decode(fields: Mapping) -> Event | None:
    """The event of one stream entry (see :func:`parse`); :class:`UnreadableEvent` if none."""
    try:
        env = EngineEvent.from_fields(fields)
    except UnreadableEvent:
        raise
    except (ValueError, TypeError, KeyError) as err:
        raise UnreadableEvent(f"unreadable entry: {type(err).__name__}") from err
    return parse(env)


def publish(r: redis.Redis, event: Event) -> None:
    """Append one event to the stream (for writers that keep no replay buffer of their
    own; an engine process publishes through :class:`cpaas.telephony.publisher.Publisher`)."""
    r.xadd(EVENT_STREAM, encode(event))
