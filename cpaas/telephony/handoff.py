"""A plan goes to an engine once, or is revoked: never both, and the sweeper can tell which.

The call job claims its request in the database (``queued`` → ``dialing``), prepares the
plan (the dial check, the speech) and then pushes it onto an engine's queue in Redis. A
job killed between its claim and that push leaves a request that is ``dialing`` while
nothing holds it; so does an engine that died holding the plan, when its INVITE may
have reached the far end. The sweeper must tell the two apart: a campaign contact whose
call never left is dialed again, one whose call may have left has had its try.

So each request has a marker. :func:`push` sets it to ``handed`` and queues the plan in
one step, only if no marker exists; :func:`revoke` (the sweeper) sets it to ``revoked``
only if none exists. Whichever runs first wins: a job that was only slow, not dead,
finds its plan revoked and dials nothing (:class:`Revoked`).

A Redis that lost its data (flushed, or restarted without its files) lost markers too,
and a missing marker would then read as "never handed". :data:`EPOCH_KEY` is written
once and never expires, so its absence shows the loss: the sweeper starts a new epoch,
and only a request created after the epoch began is judged by its marker
(:func:`revoke` answers ``unknown`` for older ones, and still fences them).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

import redis
from redis.commands.core import Script

from cpaas.telephony.engine_client import EngineError

#: How long a marker outlives its handoff: far longer than a request stays ``dialing``
#: (it rings for seconds, and the sweeper judges it within a minute), short enough that
#: a day of calls keeps only an hour of markers. An older request is never judged by a
#: marker that may have expired.
MARKER_TTL = 3600
#: When (Redis's clock, epoch seconds) this Redis's data began, as far as markers go.
EPOCH_KEY = "cpaas:handoff:epoch"
#: Requests created this close after the epoch began are not judged by their marker:
#: their creation time comes from another host's clock (NTP keeps them milliseconds apart).
CLOCK_MARGIN = 1.0

_PUSH = """
if redis.call('SET', KEYS[2], 'handed', 'NX', 'EX', ARGV[2]) then
  redis.call('RPUSH', KEYS[1], ARGV[1])
  return 'queued'
end
return redis.call('GET', KEYS[2])
"""


_push_script: Script | None = None


class Revoked(EngineError):
    """The sweeper gave the request up before its plan was handed: nothing was dialed,
    and the request already has its ending."""


def marker_key(plan_id: str) -> str:
    return f"cpaas:handoff:plan:{plan_id}"


def push(r: redis.Redis, queue_key: str, plan_id: str, payload: str) -> None:
    """Queue ``payload`` (the plan's JSON) on ``queue_key`` and mark the plan handed, in
    one step; raise :class:`Revoked` when the sweeper revoked it first. Handing the same
    plan twice queues it once."""
    global _push_script
    if _push_script is None:   # built once (it hashes the source); EVALSHA thereafter
        _push_script = r.register_script(_PUSH)
    if _push_script(keys=[queue_key, marker_key(plan_id)], args=[payload, MARKER_TTL],
                    client=r) == b"revoked":
        raise Revoked(plan_id)


Verdict = Literal["revoked", "handed", "unknown"]


def revoke(r: redis.Redis, plan_id: str, created_at: datetime) -> Verdict:
    """Make sure the plan of a request created at ``created_at`` (naive UTC) is never
    handed from now on, and say whether it ever was: ``revoked`` (never), ``handed``, or
    ``unknown`` when Redis lost its data since the request was created."""
    pipe = r.pipeline(transaction=True)
    pipe.set(marker_key(plan_id), "revoked", nx=True, ex=MARKER_TTL)
    pipe.get(marker_key(plan_id))
    _, value = pipe.execute()
    if value != b"revoked":
        return "handed"
    created = created_at.replace(tzinfo=timezone.utc).timestamp()
    began, now = _epoch_and_now(r)
    judged = began + CLOCK_MARGIN <= created and now - created < MARKER_TTL / 2
    return "revoked" if judged else "unknown"


def epoch(r: redis.Redis) -> float:
    """When this Redis's markers began (starting a new epoch when none is recorded)."""
    return _epoch_and_now(r)[0]


def _epoch_and_now(r: redis.Redis) -> tuple[float, float]:
    seconds, micros = r.time()
    now = seconds + micros / 1e6
    r.set(EPOCH_KEY, f"{now:.6f}", nx=True)
    return float(r.get(EPOCH_KEY)), now
