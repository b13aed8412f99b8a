"""The causes of a plan that the platform, not an engine, ended: written into the CDR's
``hangup_cause`` by their producers and read by subscribers that must tell "the call
never left the platform" from a call that failed at the far end.

Built and recognised only here, so a rename cannot silently break a reader.
"""
from __future__ import annotations

#: The request's job never reached Redis (the API answered 503).
NOT_QUEUED = "not queued"
_NOT_PLACED = "not placed: "
_SWEPT = "swept: "
#: Why the sweeper settles a request (:func:`cpaas.calls.sweeper.abandoned`).
JOB_LOST = "job lost"          # queued, and its job is in no queue: never dialed
NOT_DIALED = "not dialed"      # claimed for dialing, and no engine holds it
NEVER_HANDED = "never handed"  # claimed, and its job died before handing it to an engine
NO_LIVE_LEG = "no live leg"    # was live, and no leg is left in the live registry
#: A campaign contact on the campaign's DND list at the moment it was to be dialed: the
#: plan ends before any INVITE, and the CDR says ``DND``.
DND = "dnd"
#: The callee declined (SIP 600/603, FreeSWITCH CALL_REJECTED): the CDR's hangup cause,
#: which a campaign never retries.
DECLINED = "declined"


def not_placed(error: str) -> str:
    """The call job could not hand the plan to the engine (``error`` names why)."""
    return _NOT_PLACED + error


def swept(why: str) -> str:
    """The sweeper settled an abandoned request; ``why`` is one of the reasons above."""
    return _SWEPT + why


def ivr(result: str) -> str:
    """The hangup cause of an IVR call that ended without a transfer (``result`` is the
    plan's ``ivr_result``: ``no_input``, ``invalid`` or ``transfer_failed``)."""
    return f"ivr {result}"


def is_declined(cause: str) -> bool:
    """Whether a CDR's hangup cause says the callee declined the call."""
    return cause == DECLINED


def never_left(cause: str) -> bool:
    """Whether a plan that ended with ``cause`` surely sent no INVITE: it was never queued,
    never handed to an engine, or its job was lost before it ran."""
    return cause in (NOT_QUEUED, swept(JOB_LOST), swept(NEVER_HANDED)) or \
        cause.startswith(_NOT_PLACED)
