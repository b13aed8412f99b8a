"""The dead-letter stream: engine events that could not be applied, kept for replay.

An event lands here when it cannot be read at all, when applying it fails in a way a
retry cannot fix, or when it kept failing for the whole retry window (the database
down for longer than ``CPAAS_EVENT_RETRY_LIMIT``). Nothing here is ever dropped on its
own: ``/healthz`` reports how many there are and ``python -m cpaas events replay-dead``
puts them back on the event stream once the cause is fixed.
"""
from __future__ import annotations

import time

import redis

from cpaas.telephony.events import EVENT_STREAM

DEAD_STREAM = "cpaas:events:dead"
#: Hash entry id → JSON retry state of an event that failed and waits for its next try.
RETRYING_KEY = "cpaas:events:retrying"
#: Fields added beside the event's own; a replay strips them.
META = ("origin_id", "reason", "attempts", "plan_id", "buried_at")


def bury(r: redis.Redis, group: str, entry_id: bytes | str, fields: dict, reason: str,
         attempts: int, plan_id: str = "") -> None:
    """Move one event from the event stream's group to the dead-letter stream, atomically."""
    dead = {k: v for k, v in fields.items()
            if (k.decode() if isinstance(k, bytes) else k) not in META}
    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    dead.update(origin_id=eid, reason=reason[:500], attempts=str(attempts), plan_id=plan_id,
                buried_at=f"{time.time():.3f}")
    pipe = r.pipeline(transaction=True)
    pipe.xadd(DEAD_STREAM, dead)
    pipe.xack(EVENT_STREAM, group, entry_id)
    pipe.hdel(RETRYING_KEY, eid)
    pipe.execute()


def count(r: redis.Redis) -> int:
    """How many events wait in the dead-letter stream."""
    return int(r.xlen(DEAD_STREAM))


def plan_ids(r: redis.Redis) -> set[str]:
    """The requests that have an event in the dead-letter stream (the sweeper leaves
    them to a replay rather than close them with a CDR of its own)."""
    return {fields[b"plan_id"].decode() for _, fields in r.xrange(DEAD_STREAM)
            if fields.get(b"plan_id")}


def replay(r: redis.Redis, limit: int | None = None) -> int:
    """Put dead events back on the event stream, oldest first; returns how many.

    Each moves in one MULTI (append there, delete here), so a replay interrupted half
    way neither loses an event nor sends one twice.
    """
    moved = 0
    for entry_id, fields in r.xrange(DEAD_STREAM, count=limit):
        event = {k: v for k, v in fields.items() if k.decode() not in META}
        pipe = r.pipeline(transaction=True)
        pipe.xadd(EVENT_STREAM, event)
        pipe.xdel(DEAD_STREAM, entry_id)
        pipe.execute()
        moved += 1
    return moved
