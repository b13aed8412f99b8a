"""Plans and actions for one node's driver, taken from Redis by a thread of their own.

The driver's loop runs in gevent, where a blocking Redis read would stall every ESL
event of the node; polling instead costs a share of a core per node while idle. This
thread blocks in ``BLPOP`` on the node's two lists (actions first), only while the node
is connected (otherwise the work stays in Redis, where the client and the sweeper see
it), hands each item over through a thread-safe queue and wakes the driver's loop with
a gevent async watcher, the one gevent object another thread may touch.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import redis

from freeswitch.nodes import Node

log = logging.getLogger(__name__)

BLOCK_SECONDS = 0.5   # how long one BLPOP waits, so a stop is noticed within half a second


class Inbox(threading.Thread):
    """Feeds ``items`` with ``(kind, raw)``: ``kind`` is ``"cmd"`` or ``"plan"``."""

    def __init__(self, r: redis.Redis, node: Node, stop: threading.Event, wake: Any) -> None:
        super().__init__(name=f"fs-inbox-{node.name}", daemon=True)
        self.r = r
        self.node = node
        self.stop = stop
        self.wake = wake                  # a gevent async watcher of the driver's hub
        self.active = threading.Event()   # set while the node is connected
        self.items: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()

    def run(self) -> None:
        """Thread body."""
        kinds = {self.node.cmd_key.encode(): "cmd", self.node.plans_key.encode(): "plan"}
        while not self.stop.is_set():
            if not self.active.wait(BLOCK_SECONDS):
                continue
            try:
                got = self.r.blpop([self.node.cmd_key, self.node.plans_key], timeout=BLOCK_SECONDS)
            except redis.RedisError:
                log.warning("cannot read the node's work", extra={"node": self.node.name})
                self.stop.wait(BLOCK_SECONDS)
                continue
            if got is not None:
                self.items.put((kinds[got[0]], got[1]))
                self.wake.send()
