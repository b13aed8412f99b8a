"""The ``transcriber`` process's RQ job and worker class (``transcripts`` queue).

The process runs at nice 19 with one CPU thread (``cpaas.procs.transcriber``), so calls
keep the machine first. RQ's SimpleWorker runs each job in this process, where the
backend (the Whisper model, ~0.2 s to load) is built once, before the first job; a
forked work horse per job would load it every time.
"""
from __future__ import annotations

import logging
import signal
import sys
from functools import lru_cache
from typing import Any

from rq.worker import SimpleWorker

from cpaas import config, db, logs
from cpaas.storage import Storage, get_storage
from cpaas.transcription import job as transcription
from cpaas.transcription.queueing import TranscriptionJob
from cpaas.transcription.whisper import offline
from workers.worker import _STOP_SIGNALS, _stop_signals_held

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _context() -> tuple[transcription.Backend, Storage]:
    logs.setup()
    offline()
    settings = config.load()
    db.init(settings.effective_database_url)
    storage = get_storage()
    return transcription.backend_for(settings, storage), storage


def transcribe(job: TranscriptionJob) -> int:
    """RQ job: transcribe one call (:func:`cpaas.transcription.job.run`); the turn count."""
    backend, storage = _context()
    with db.database.connection_context():
        return len(transcription.run(backend, storage, job))


def _stop_before_work(signum: int, _frame: Any) -> None:
    log.info("stopped before the first job", extra={"signal": signum})
    sys.exit(0)


class TranscribeWorker(SimpleWorker):
    """SimpleWorker that loads the transcription backend before its first job.

    Threads it starts (CTranslate2's and onnxruntime's, at the warm-up; RQ's command listener) hold
    stop signals back, as the call worker's do (``workers.worker``), so Ctrl-C reaches
    the main thread at once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        with _stop_signals_held():
            backend, _storage = _context()
            backend.warm_up()
        # ``cpaas.procs`` starts this process with stop signals blocked; one that arrived
        # while the model loaded is a clean stop too (RQ's own handlers come with work()).
        for signum in _STOP_SIGNALS:
            signal.signal(signum, _stop_before_work)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)

    def subscribe(self) -> None:
        """RQ's command listener, in a thread that leaves stop signals to the main one."""
        with _stop_signals_held():
            super().subscribe()
