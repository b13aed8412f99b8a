"""The RQ worker class of the ``worker`` process.

RQ's SimpleWorker runs jobs in-process instead of forking one per job (a call job is a
few milliseconds; a fork would dominate call setup). This subclass also loads the job
module and connects to the engine before the first job, so the first call placed after
a start is as fast as the rest.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any, Iterator

from rq.worker import SimpleWorker

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Threads started inside never take SIGINT/SIGTERM (they inherit the mask).

    Only the main thread runs Python's signal handlers. A stop signal the kernel gave to
    another thread (RQ's pubsub listener, libespeak-ng's) would wait for the main
    thread's BLPOP to time out, minutes later, and Ctrl-C would hang until Redis went.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class WarmWorker(SimpleWorker):
    """SimpleWorker that prepares the call job's context at start-up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from workers import jobs

        with _stop_signals_held():
            jobs.warm_up()

    def subscribe(self) -> None:
        """RQ's command listener, in a thread that leaves stop signals to the main one."""
        with _stop_signals_held():
            super().subscribe()
