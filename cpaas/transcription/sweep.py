"""Transcripts left ``pending`` by a lost job (a scanner task, under its lease).

A job can vanish without ending its transcript ``done`` or ``failed``: the transcriber
SIGKILLed mid-job (RQ later moves it to its failed jobs without running our code) or
Redis flushed. This task looks now and then at the pending transcripts of calls that
ended a while ago and queues the job again for each whose RQ job is gone or ended
without its status moving; a job still queued or running is left alone. A second run of
a job is harmless: it replaces the transcript, and its status moves once.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from cpaas.models import CallRequest, Cdr
from cpaas.transcription import queueing
from cpaas.transcription.store import TranscriptState
from cpaas.validation import utcnow

log = logging.getLogger(__name__)

#: Seconds between two looks; a pending transcript younger than GRACE is not looked at
#: (its job may be on its way to the queue).
LOOK_EVERY, GRACE = 60.0, 60.0
BATCH = 100
_ALIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


class PendingTranscriptSweep:
    """The scanner task: each call is one look at the pending transcripts."""

    def __init__(self, r: redis.Redis, clock: Callable[[], datetime] = utcnow,
                 every: float = LOOK_EVERY, grace: float = GRACE) -> None:
        self.r = r
        self.queue = Queue(queueing.QUEUE, connection=r)
        self.clock = clock
        self.every, self.grace = timedelta(seconds=every), timedelta(seconds=grace)
        self._next = datetime.min

    def __call__(self) -> bool:
        """Queue again the pending transcripts whose job is gone; always False (one
        batch a look is plenty: lost jobs are rare)."""
        now = self.clock()
        if now < self._next:
            return False
        self._next = now + self.every
        rows = (Cdr.select(Cdr.request_id, Cdr.account_id)
                .where((Cdr.transcript_status == TranscriptState.PENDING.value)
                       & (Cdr.call_date < now - self.grace))
                .order_by(Cdr.call_date).limit(BATCH))
        for row in rows:
            job = self._job(row.request_id)
            if job is not None and job.get_status(refresh=False) in _ALIVE:
                continue
            if job is not None:
                job.delete()   # ended without moving the status: RQ's record of it goes
            self._requeue(row)
        return False

    def _job(self, request_id: str) -> Job | None:
        try:
            return Job.fetch(queueing.rq_job_id(request_id), connection=self.r)
        except NoSuchJobError:
            return None

    def _requeue(self, row: Cdr) -> None:
        request = CallRequest.get_or_none((CallRequest.id == row.request_id)
                                          & (CallRequest.account_id == row.account_id))
        if request is None:
            return
        queueing.enqueue(self.queue, request)
        log.warning("transcription queued again: its job was lost",
                    extra={"request_id": row.request_id, "account_id": row.account_id})
