"""The transcription job: transcribe each channel, merge the turns, keep them.

Runs in the ``transcriber`` process (``workers.transcribe``) with a backend built once
per process. The transcript's status ends ``done`` or ``failed``; transcript-only audio
is deleted either way, so it never outlives its one use. A transcript whose CDR
retention reached while the job ran (status ``deleted``) is removed, not kept.
"""
from __future__ import annotations

import logging
import time
from typing import Protocol, Sequence

from cpaas import config
from cpaas.storage import Storage
from cpaas.transcription import store
from cpaas.transcription.queueing import TranscriptionJob
from cpaas.transcription.store import TranscriptState
from cpaas.transcription.turns import Segment, Turn, merge

log = logging.getLogger(__name__)


class Backend(Protocol):
    """A speech recogniser: each channel of a stored recording as timed segments."""

    name: str

    def transcribe(self, key: str, speakers: Sequence[str]) -> dict[str, list[Segment]]:
        """The recording under ``key``, channel by channel (``speakers``, left first)."""

    def warm_up(self) -> None:
        """Get ready for the first job (load models, start thread pools)."""


def backend_for(settings: config.Settings, storage: Storage) -> Backend:
    """The backend ``CPAAS_TRANSCRIBE`` names (``whisper`` unless set)."""
    if settings.transcribe == "aws":
        from cpaas.transcription.aws import AwsBackend

        return AwsBackend.from_settings(settings, storage)
    if settings.transcribe != "whisper":
        raise ValueError(f"CPAAS_TRANSCRIBE must be whisper or aws, not {settings.transcribe!r}")
    from cpaas.transcription.whisper import WhisperBackend

    return WhisperBackend(storage, threads=settings.transcribe_threads)


def run(backend: Backend, storage: Storage, job: TranscriptionJob) -> list[Turn]:
    """Transcribe one call and record the outcome; the turns (an error is re-raised
    after the status says ``failed``, so RQ keeps the job among its failures)."""
    context = {"request_id": job.request_id, "account_id": job.account_id}
    row_id = store.cdr_id(job.account_id, job.request_id)
    started = time.monotonic()
    try:
        turns = merge(backend.transcribe(job.key, job.speakers))
        store.save(job.request_id, job.account_id, backend.name, turns)
        if row_id is None or not store.set_status(row_id, TranscriptState.DONE):
            store.delete(job.request_id)   # retention got there first
            log.info("transcript dropped: deleted by retention meanwhile", extra=context)
            return turns
    except Exception:
        log.exception("transcription failed", extra=context)
        if row_id is not None:
            store.set_status(row_id, TranscriptState.FAILED)
        raise
    finally:
        if job.delete_audio:
            storage.delete(job.key)
    log.info("transcript done", extra={**context, "turns": len(turns), "backend": backend.name,
                                       "seconds": round(time.monotonic() - started, 3)})
    return turns
