"""The engine publisher's write-behind mode (a FreeSWITCH node driver's): writes land in
the order they were made, the caller never waits for Redis, and a Redis killed and
started again loses none of them (real redis-server, SIGKILLed)."""
from __future__ import annotations

import threading

import pytest
import redis

from cpaas.telephony import publisher as publisher_module
from cpaas.telephony.publisher import Publisher
from tests import servers

KEY = "test:publisher:order"


@pytest.fixture
def server():
    rd = servers.RedisServer(durable=True).start()
    try:
        yield rd
    finally:
        rd.stop()


def _client(rd: servers.RedisServer) -> redis.Redis:
    return redis.Redis.from_url(rd.url, socket_timeout=2, socket_connect_timeout=2)


def test_writes_behind_land_in_order_and_drain_waits_for_them(server):
    r = _client(server)
    pub = Publisher(r, "test-driver", background=True)
    for n in range(500):
        pub.write("push", lambda n=n: r.rpush(KEY, n))
    assert pub.drain(10)
    assert [int(v) for v in r.lrange(KEY, 0, -1)] == list(range(500))


def test_the_caller_does_not_wait_for_a_slow_write(server):
    r = _client(server)
    pub = Publisher(r, "test-driver", background=True)
    release = threading.Event()
    pub.write("slow", lambda: release.wait(10) and r.rpush(KEY, "slow"))
    pub.write("next", lambda: r.rpush(KEY, "next"))   # returns while "slow" still runs
    assert not pub.drain(0.2)                        # both still queued
    assert r.lrange(KEY, 0, -1) == []
    release.set()
    assert pub.drain(10)
    assert r.lrange(KEY, 0, -1) == [b"slow", b"next"]


def test_writes_made_while_redis_is_down_land_after_its_restart(server, monkeypatch):
    monkeypatch.setattr(publisher_module, "RETRY_EVERY", 0.1)
    r = _client(server)
    pub = Publisher(r, "test-driver", background=True)
    pub.write("before", lambda: r.rpush(KEY, "before"))
    assert pub.drain(10)
    server.kill()
    for n in range(20):
        pub.write("during", lambda n=n: r.rpush(KEY, f"during-{n}"))
    assert not pub.drain(1)                          # Redis is away: all still queued
    server.start()
    assert pub.drain(20)
    assert r.lrange(KEY, 0, -1) == [b"before"] + [f"during-{n}".encode() for n in range(20)]


def test_a_write_that_fails_for_another_reason_holds_none_behind_it(server):
    r = _client(server)
    pub = Publisher(r, "test-driver", background=True)

    def broken() -> None:
        raise ValueError("a bug, not Redis")

    pub.write("broken", broken)
    pub.write("next", lambda: r.rpush(KEY, "next"))
    assert pub.drain(10)
    assert r.lrange(KEY, 0, -1) == [b"next"]


def test_without_background_a_write_is_made_at_once(server):
    r = _client(server)
    pub = Publisher(r, "test-engine")
    pub.write("now", lambda: r.rpush(KEY, "now"))
    assert r.lrange(KEY, 0, -1) == [b"now"]          # no drain needed
    assert pub.drain(0)
