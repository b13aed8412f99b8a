"""The RQ worker class of the ``worker`` process.

RQ's SimpleWorker runs jobs in-process instead of forking one per job (a call job is a
few milliseconds; a fork would dominate call setup). This subclass also loads the job
module and connects to the engine before the first job, so the first call placed after
a start is as fast as the rest, and runs the due-work scanner in a thread while it
works (every worker process tries the scanner's lease; one holds it: ``cpaas.scanner``).
"""
from __future__ import annotations

import signal
import threading
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

    def work(self, *args: Any, **kwargs: Any) -> bool:
        """RQ's work loop, with this process's due-work scanner running beside it.

        Without RQ's own scheduler (``rq worker-pool`` asks for it): nothing here
        schedules RQ jobs for later (due work is the scanner's), and its process, forked
        from this one, keeps this process's Redis socket open after a SIGKILL, so Redis
        keeps the dead worker's blocking dequeue alive and hands it the next job, lost.
        """
        kwargs["with_scheduler"] = False
        stop = threading.Event()
        with _stop_signals_held():
            thread = _start_scanner(stop)
        try:
            return super().work(*args, **kwargs)
        finally:
            stop.set()
            thread.join(2)   # it gives its lease up, so a successor need not wait it out


def _start_scanner(stop: threading.Event) -> threading.Thread:
    """The scanner thread, with the tasks it runs while it holds the lease."""
    from cpaas import config, scanner
    from cpaas.callbacks.scheduler import CallbackTask
    from cpaas.campaigns.dialer import DialerTask
    from cpaas.calls import claim
    from cpaas.calls.line import LineTask
    from cpaas.calls.retention import RetentionTask
    from cpaas.redis_conn import get_redis
    from cpaas.storage import get_storage
    from cpaas.transcription.sweep import PendingTranscriptSweep

    settings = config.load()
    claim.bind(settings.effective_database_url)   # the database the call jobs use too
    r = get_redis(settings.effective_redis_url)
    tasks = [LineTask(settings, r), CallbackTask(settings, r), DialerTask(settings, r),
             RetentionTask(settings, get_storage()), PendingTranscriptSweep(r)]
    return scanner.start(r, tasks, settings.scan_interval, stop)
