"""Normalised engine events and the SIP-outcome → CDR status mapping.

Every engine (embedded PJSUA2 pool, FreeSWITCH) reports what happens to a plan's legs
as these events, appended to one Redis stream. The ``events`` process reads the stream
and feeds the CDR writer, so the writer never knows which engine produced a call.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: Redis stream all engines append to; the events process consumes it in a group.
EVENT_STREAM = "cpaas:events"

EventType = Literal[
    "leg.ringing",       # provisional response received
    "leg.answered",      # 200 OK
    "leg.dtmf",          # data: {"digit": "5", "method": "info"|"rfc2833"}
    "leg.hangup",        # data: LegOutcome as a dict
    "recording.stored",  # data: {"key": "...", "channels": 1|2}
    "plan.ended",        # data: {"legs": {role: LegOutcome}, "dtmf": "...", "recordings": [...], "cause": "..."}
]


@dataclass
class EngineEvent:
    """One thing that happened to a plan or one of its legs."""

    type: EventType
    plan_id: str
    account_id: str
    leg: str | None = None
    channel: str | None = None
    at: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)

    def to_fields(self) -> dict[str, str]:
        """Flatten for XADD (Redis stream entries are flat string maps)."""
        return {"event": json.dumps(asdict(self))}

    @classmethod
    def from_fields(cls, fields: dict) -> "EngineEvent":
        """Inverse of :meth:`to_fields`; accepts bytes or str keys."""
        raw = fields.get("event") or fields.get(b"event")
        return cls(**json.loads(raw))


@dataclass
class LegOutcome:
    """How one leg ended; carried by ``leg.hangup`` and inside ``plan.ended``."""

    role: str
    number: str
    channel: str
    started_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    sip_code: int | None = None
    dial_status: str = "CHANUNAVAIL"


# GUIDE §1: SIP outcome → (dial_status, call_status), Asterisk words as in the spec.
CALL_STATUS = {
    "ANSWER": "ANSWERED",
    "BUSY": "BUSY",
    "NOANSWER": "NO ANSWER",
    "CANCEL": "CANCEL",
    "CONGESTION": "CONGESTION",
    "CHANUNAVAIL": "CHANUNAVAIL",
    "DND": None,
}


def dial_status_for(sip_code: int | None, *, answered: bool = False,
                    cancelled: bool = False, ring_timeout: bool = False) -> str:
    """Map a leg's final SIP outcome to the spec's ``dial_status``.

    ``cancelled`` means *we* ended the leg before it answered (our CANCEL → 487);
    ``ring_timeout`` means it rang past the plan's ring timeout.
    """
    if answered:
        return "ANSWER"
    if cancelled:
        return "CANCEL"
    if ring_timeout or sip_code in (408, 480):
        return "NOANSWER"
    if sip_code in (486, 600):
        return "BUSY"
    if sip_code in (500, 502, 503, 504):
        return "CONGESTION"
    return "CHANUNAVAIL"


def call_status_for(dial_status: str) -> str | None:
    """The CDR's ``call_status`` for a ``dial_status``."""
    return CALL_STATUS.get(dial_status, "CHANUNAVAIL")
