"""The lease that keeps one sweeper (and, later, one dialer scanner) active at a time."""
from __future__ import annotations

import time

import redis as redis_lib

from cpaas.lease import Lease, holder


def test_one_holder_at_a_time_and_a_successor_once_it_stops_renewing(redis_url):
    r = redis_lib.Redis.from_url(redis_url)
    r.delete("cpaas:lease:test-one")
    first, second = Lease(r, "test-one", ttl=1.0), Lease(r, "test-one", ttl=1.0)
    assert first.acquire_or_renew() and not second.acquire_or_renew()
    for _ in range(3):          # renewed past its TTL: still the only holder
        time.sleep(0.4)
        assert first.acquire_or_renew() and not second.acquire_or_renew()
    assert holder(r, "test-one")[0] == first.token
    time.sleep(1.2)             # the first holder died: it stopped renewing
    assert second.acquire_or_renew()
    assert not first.acquire_or_renew(), "a stalled holder must not take its lease back"
    first.release()             # and cannot release its successor's
    assert holder(r, "test-one")[0] == second.token
    second.release()
    assert holder(r, "test-one") is None
