"""``python -m pjsua_engine``: run the embedded engine's worker pool.

With FreeSWITCH configured the embedded engine is not used; the process then idles
until stopped, because honcho stops every process of the Procfile when one exits.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading

from cpaas import logs
from cpaas.config import load
from pjsua_engine.pool import Pool

log = logging.getLogger("pjsua_engine")


def main() -> int:
    """Start the pool (or idle when FreeSWITCH is the engine); exit on SIGTERM/SIGINT."""
    logs.setup()
    settings = load()
    if settings.freeswitch_esl:
        log.info("FreeSWITCH configured, embedded engine idle")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        while not stop.wait(1.0):
            pass
        return 0
    pool = Pool(settings)
    signal.signal(signal.SIGTERM, pool.request_stop)
    signal.signal(signal.SIGINT, pool.request_stop)
    return pool.run()


if __name__ == "__main__":
    sys.exit(main())
