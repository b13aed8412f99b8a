"""The ``events`` process's FreeSWITCH side: one driver thread per configured node.

Each thread has its own gevent hub and its own ESL connection (greenswitch allows one
connection per OS thread); what the drivers report goes to the engine event stream
that the same process's CDR consumer reads, exactly as the embedded engine's does.
"""
from __future__ import annotations

import logging
import threading

import redis

from cpaas.config import Settings
from freeswitch.driver import NodeDriver
from freeswitch.nodes import parse_nodes

log = logging.getLogger(__name__)


def start(settings: Settings, stop: threading.Event) -> list[threading.Thread]:
    """Start one driver thread per node of ``FREESWITCH_ESL``; they end when ``stop`` is set."""
    r = redis.Redis.from_url(settings.effective_redis_url)
    threads = []
    for node in parse_nodes(settings.freeswitch_esl or ""):
        driver = NodeDriver(settings, node, r, stop)
        thread = threading.Thread(target=driver.run, name=f"fs-{node.name}", daemon=True)
        thread.start()
        threads.append(thread)
        log.info("freeswitch driver started", extra={"node": node.name})
    return threads
