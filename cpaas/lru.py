"""A bounded least-recently-used map for per-process caches fed by untrusted input."""
from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``maxsize`` entries; adding one more drops the least recently used.

    Request handlers (greenlets, threads) share one instance: every step tolerates a key
    that another one has just removed.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value under ``key`` (now the most recently used), or ``default``."""
        try:
            value = self._items[key]
            self._items.move_to_end(key)
        except KeyError:
            return default
        return value

    def put(self, key: K, value: V) -> None:
        """Store ``value`` under ``key``, dropping the oldest entries past the bound."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            try:
                self._items.popitem(last=False)
            except KeyError:
                break

    def pop(self, key: K) -> None:
        """Forget ``key`` (no error when absent)."""
        self._items.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
