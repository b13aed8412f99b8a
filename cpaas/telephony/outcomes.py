"""The one table from an engine's outcome of a leg to the spec's dial statuses.

Engines report facts (:class:`LegEnd`: answered or not, the final SIP response, the
switch's hangup cause, whether we cancelled it or its ring timed out, whether the far
end answered the INVITE at all); :func:`dial_status` turns them into the spec's
Asterisk-style words (GUIDE §1), and :func:`call_status_for` into the CDR's
``call_status``. No engine decides a status on its own, so the embedded engine and
FreeSWITCH give the same call the same CDR.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cpaas.telephony.events import LegOutcome

DialStatus = Literal["ANSWER", "BUSY", "NOANSWER", "CANCEL", "CONGESTION", "CHANUNAVAIL", "DND"]

#: Final SIP responses (GUIDE §1). A 487 only ever answers our own CANCEL (RFC 3261
#: §9.2). Any code not listed (404, 484, other 4xx/6xx) is CHANUNAVAIL.
SIP_STATUS: dict[int, DialStatus] = {
    486: "BUSY", 600: "BUSY",
    408: "NOANSWER", 480: "NOANSWER",
    487: "CANCEL",
    500: "CONGESTION", 502: "CONGESTION", 503: "CONGESTION", 504: "CONGESTION",
}

#: FreeSWITCH hangup causes (GUIDE §6: 486 → USER_BUSY, 480 → NO_USER_RESPONSE,
#: 408 → RECOVERY_ON_TIMER_EXPIRE, 500/503 → NORMAL_TEMPORARY_FAILURE, ring past
#: ``originate_timeout`` → NO_ANSWER, 487 → ORIGINATOR_CANCEL), used when no SIP code is
#: known. Any cause not listed (UNALLOCATED_NUMBER, INVALID_NUMBER_FORMAT, CALL_REJECTED,
#: …) is CHANUNAVAIL, as its SIP code (404, 484, 403/603) is.
CAUSE_STATUS: dict[str, DialStatus] = {
    "USER_BUSY": "BUSY",
    "NO_ANSWER": "NOANSWER", "NO_USER_RESPONSE": "NOANSWER",
    "RECOVERY_ON_TIMER_EXPIRE": "NOANSWER",
    "ORIGINATOR_CANCEL": "CANCEL",
    "NORMAL_TEMPORARY_FAILURE": "CONGESTION", "SWITCH_CONGESTION": "CONGESTION",
    "NORMAL_CIRCUIT_CONGESTION": "CONGESTION", "NETWORK_OUT_OF_ORDER": "CONGESTION",
}

#: dial_status → the CDR's call_status (the spec's words).
CALL_STATUS: dict[str, str | None] = {
    "ANSWER": "ANSWERED",
    "BUSY": "BUSY",
    "NOANSWER": "NO ANSWER",
    "CANCEL": "CANCEL",
    "CONGESTION": "CONGESTION",
    "CHANUNAVAIL": "CHANUNAVAIL",
    "DND": None,
}

#: Responses that say the callee declined the call (not merely busy): never retried.
DECLINED_SIP = frozenset({600, 603})
DECLINED_CAUSES = frozenset({"CALL_REJECTED"})


@dataclass(frozen=True)
class LegEnd:
    """What an engine knows about how one leg ended.

    ``cancelled``: we hung the leg up before it answered (for any reason, the ring
    timeout included); ``ring_timeout``: it rang past the plan's ring timeout;
    ``heard``: the far end answered our INVITE with anything at all, even a 100 (False
    only when the engine knows nothing came back); ``sip_code``: the final SIP
    response; ``cause``: the switch's own hangup cause (FreeSWITCH's ``Hangup-Cause``).
    """

    answered: bool = False
    cancelled: bool = False
    ring_timeout: bool = False
    heard: bool = True
    sip_code: int | None = None
    cause: str | None = None


def dial_status(end: LegEnd) -> DialStatus:
    """The spec's ``dial_status`` of a leg that ended.

    A leg nothing ever answered (pjsip's own 408 or 503, our ring timeout on silence, a
    switch with nothing listening) is CHANUNAVAIL, not NOANSWER: the destination is
    unreachable, not unanswered. A SIP code, when the engine has one, decides over the
    switch's cause name, which is coarser (FreeSWITCH gives 408 and 504 one cause).
    """
    if end.answered:
        return "ANSWER"
    if end.cancelled and not end.ring_timeout:
        return "CANCEL"
    if not end.heard:
        return "CHANUNAVAIL"
    if end.ring_timeout:
        return "NOANSWER"
    if end.sip_code:
        return SIP_STATUS.get(end.sip_code, "CHANUNAVAIL")
    if end.cause:
        return CAUSE_STATUS.get(end.cause, "CHANUNAVAIL")
    return "CHANUNAVAIL"


def call_status_for(status: str) -> str | None:
    """The CDR's ``call_status`` for a ``dial_status``."""
    return CALL_STATUS.get(status, "CHANUNAVAIL")


def declined(outcome: LegOutcome) -> bool:
    """Whether the callee declined the leg (SIP 600 or 603, FreeSWITCH CALL_REJECTED)."""
    if outcome.sip_code:
        return outcome.sip_code in DECLINED_SIP
    return outcome.hangup_cause in DECLINED_CAUSES
