"""The fenced handoff on a real Redis: a plan is handed once or revoked, never both, and a
Redis that lost its data makes a missing marker prove nothing."""
from __future__ import annotations

from datetime import timedelta, timezone

import pytest
import redis as redis_lib

from cpaas.telephony import handoff
from cpaas.validation import utcnow

QUEUE = "cpaas:test:plans"


@pytest.fixture
def r(redis_url) -> redis_lib.Redis:
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    return client


@pytest.fixture
def later(r):
    """A creation time well inside the current epoch (so its marker is judged)."""
    handoff.epoch(r)
    return utcnow() + timedelta(seconds=handoff.CLOCK_MARGIN + 1)


def test_a_handed_plan_cannot_be_revoked(r, later):
    handoff.push(r, QUEUE, "p1", '{"plan_id": "p1"}')
    assert handoff.revoke(r, "p1", later) == "handed"
    assert r.lrange(QUEUE, 0, -1) == [b'{"plan_id": "p1"}']


def test_a_revoked_plan_is_never_queued(r, later):
    assert handoff.revoke(r, "p1", later) == "revoked"
    with pytest.raises(handoff.Revoked):
        handoff.push(r, QUEUE, "p1", '{"plan_id": "p1"}')
    assert r.llen(QUEUE) == 0
    assert handoff.revoke(r, "p1", later) == "revoked"   # asked again: the same answer


def test_handing_a_plan_twice_queues_it_once(r):
    handoff.push(r, QUEUE, "p1", "one")
    handoff.push(r, QUEUE, "p1", "two")
    assert r.lrange(QUEUE, 0, -1) == [b"one"]
    assert 0 < r.ttl(handoff.marker_key("p1")) <= handoff.MARKER_TTL


def test_after_redis_lost_its_data_a_missing_marker_proves_nothing(r, later):
    handoff.push(r, QUEUE, "p1", "one")
    created = utcnow()
    r.flushdb()          # the marker (and the queue) are gone
    assert handoff.revoke(r, "p1", created) == "unknown"
    with pytest.raises(handoff.Revoked):     # fenced all the same: a slow job dials nothing
        handoff.push(r, QUEUE, "p1", "again")
    # A request created once the new epoch began is judged by its marker again.
    fresh = utcnow() + timedelta(seconds=handoff.CLOCK_MARGIN + 1)
    assert handoff.revoke(r, "p2", fresh) == "revoked"


def test_a_request_created_just_as_the_epoch_began_is_not_judged(r):
    start = handoff.epoch(r)
    assert handoff.epoch(r) == start          # kept, never restarted while present
    assert handoff.revoke(r, "p1", utcnow()) == "unknown"


def test_a_request_older_than_its_marker_could_live_is_not_judged(r):
    old = utcnow() - timedelta(seconds=handoff.MARKER_TTL)
    began = (old - timedelta(hours=1)).replace(tzinfo=timezone.utc).timestamp()
    r.set(handoff.EPOCH_KEY, f"{began:.6f}")
    assert handoff.revoke(r, "p1", old) == "unknown"      # its marker may have expired

