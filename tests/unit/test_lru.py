"""The bounded least-recently-used map behind the per-process auth caches."""
from __future__ import annotations

from cpaas.lru import LRU


def test_keeps_at_most_maxsize_dropping_the_least_recently_used():
    cache: LRU[str, int] = LRU(3)
    for i, key in enumerate("abc"):
        cache.put(key, i)
    assert cache.get("a") == 0          # "a" is now the most recently used
    cache.put("d", 3)
    assert len(cache) == 3
    assert cache.get("b") is None       # the least recently used went first
    assert [cache.get(k) for k in "acd"] == [0, 2, 3]


def test_put_replaces_and_pop_removes():
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("a", 2)
    assert (cache.get("a"), len(cache)) == (2, 1)
    cache.pop("a")
    cache.pop("missing")
    assert (cache.get("a", -1), len(cache)) == (-1, 0)
    cache.put("b", 1)
    cache.clear()
    assert len(cache) == 0
