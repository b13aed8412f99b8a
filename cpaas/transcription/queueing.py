"""Queueing a call's transcription once its CDR is committed (a notifier subscriber).

A call with ``transcript: off`` never queues a job. One with ``transcript: on`` that was
answered (only then was anything recorded) moves its CDR's transcript to ``pending``
and puts one job on the ``transcripts`` queue; a job that cannot be queued leaves the
transcript ``failed``, never ``pending`` for ever.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from rq import Queue

from cpaas.calls.service import recording_key
from cpaas.cdr.writer import CdrRecord
from cpaas.db import database
from cpaas.models import Account, CallRequest
from cpaas.transcription import store
from cpaas.transcription.keys import SPEAKERS, needs_own_audio, transcript_audio_key
from cpaas.transcription.store import TranscriptState

log = logging.getLogger(__name__)

QUEUE = "transcripts"
#: RQ job run by the ``transcriber`` process.
JOB = "workers.transcribe.transcribe"
#: Seconds one job may take (an hour-long call on a busy machine included).
JOB_TIMEOUT = 3600
#: Seconds RQ keeps a failed job (its arguments are keys and ids, no speech).
FAILURE_TTL = 7 * 86400


@dataclass(frozen=True)
class TranscriptionJob:
    """What a job transcribes: the stored audio, its channels, whether to delete it."""

    request_id: str
    account_id: str
    key: str
    speakers: tuple[str, ...] = SPEAKERS
    delete_audio: bool = False


def job_for(request: CallRequest, account_name: str) -> TranscriptionJob:
    """The job of a settled request with ``transcript: on``: its transcript-only audio,
    deleted afterwards, or its downloadable stereo recording, kept."""
    if needs_own_audio(request.recording_option):
        return TranscriptionJob(request.id, request.account_id,
                                transcript_audio_key(account_name, request.id), delete_audio=True)
    return TranscriptionJob(request.id, request.account_id,
                            recording_key(account_name, request.id))


def rq_job_id(request_id: str) -> str:
    """The RQ job id of a request's transcription (one job per request)."""
    return f"transcript-{request_id}"


def enqueue(queue: Queue, request: CallRequest) -> None:
    """Put the request's transcription job on ``queue`` (a Redis error is the caller's)."""
    job = job_for(request, Account.get_by_id(request.account_id).name)
    queue.enqueue(JOB, job, job_id=rq_job_id(request.id), job_timeout=JOB_TIMEOUT,
                  result_ttl=0, failure_ttl=FAILURE_TTL)
    log.info("transcription queued", extra={"request_id": request.id,
                                            "account_id": request.account_id})


class TranscriptionQueuer:
    """The subscriber: queues each answered call with ``transcript: on``."""

    def __init__(self, r: redis.Redis) -> None:
        self.queue = Queue(QUEUE, connection=r)

    def __call__(self, request: CallRequest, cdr: CdrRecord) -> None:
        """Notifier hook (``subscribe_call_settled``)."""
        if request.transcript != "on" or cdr.dial_status != "ANSWER":
            return
        with database.connection_context():
            row_id = store.cdr_id(request.account_id, request.id)
            if row_id is None or not store.set_status(row_id, TranscriptState.PENDING):
                return
            try:
                enqueue(self.queue, request)
            except redis.RedisError:
                log.exception("transcription not queued", extra={
                    "request_id": request.id, "account_id": request.account_id})
                store.set_status(row_id, TranscriptState.FAILED)
