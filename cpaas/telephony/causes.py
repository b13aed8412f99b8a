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
NO_LIVE_LEG = "no live leg"    # was live, and no leg is left in the live registry


def not_placed(error: str) -> str:
    """The call job could not hand the plan to the engine (``error`` names why)."""
    return _NOT_PLACED + error


def swept(why: str) -> str:
    """The sweeper settled an abandoned request; ``why`` is one of the reasons above."""
    return _SWEPT + why


def never_left(cause: str) -> bool:
    """Whether a plan that ended with ``cause`` surely sent no INVITE: it was never queued,
    never handed to an engine, or its job was lost before it ran."""
    return cause in (NOT_QUEUED, swept(JOB_LOST)) or cause.startswith(_NOT_PLACED)
