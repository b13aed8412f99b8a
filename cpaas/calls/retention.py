"""Recording retention (a task of :mod:`cpaas.scanner`, under its single-runner lease).

With ``CPAAS_RECORDING_RETENTION_DAYS`` set, a call's recordings are deleted from storage
once its CDR's ``call_date`` (when the call ended) is older than that; the CDR then shows
``recording_name`` empty and keeps ``media_deleted_at``, so GET /api/recording can say the
recording was deleted by retention rather than never made. The objects go first and the
row after: a pass cut short in between deletes them again (a no-op) and then changes
the row, which is conditional on the names it read, so overlapping scanners change it once.
Transcripts go by the same clock: deleted, and the CDR's ``transcript_status`` ``deleted``
(:func:`cpaas.transcription.store.expire`).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from cpaas import config
from cpaas.cdr.writer import rewrite
from cpaas.models import Cdr
from cpaas.storage import Storage
from cpaas.transcription import store as transcripts
from cpaas.validation import utcnow

log = logging.getLogger(__name__)

#: CDRs one pass clears at most (the scanner runs again at once when it is full).
BATCH = 100
#: Seconds between two looks for old recordings (none is due sooner than that matters).
LOOK_EVERY = 30.0


class RetentionTask:
    """The scanner's retention task: each call is one pass over the expired recordings."""

    def __init__(self, settings: config.Settings, storage: Storage,
                 clock: Callable[[], datetime] = utcnow) -> None:
        days = settings.recording_retention_days
        self.keep = timedelta(days=days) if days is not None else None
        self.storage = storage
        self.clock = clock
        # A short retention (a test's seconds) is looked at more often than LOOK_EVERY.
        self.every = timedelta(seconds=min(LOOK_EVERY, self.keep.total_seconds() / 4)
                               if self.keep else 0.0)
        self._next = datetime.min

    def __call__(self) -> bool:
        """Delete the recordings past retention; True when a batch limit was reached."""
        if self.keep is None:
            return False
        now = self.clock()
        if now < self._next:
            return False
        rows = list(Cdr.select(Cdr.id, Cdr.account_id, Cdr.request_id, Cdr.recording_name)
                    .where((Cdr.recording_name != "") & (Cdr.call_date < now - self.keep))
                    .order_by(Cdr.call_date).limit(BATCH))
        for row in rows:
            self.expire(row, now)
        more = len(rows) == BATCH
        more |= transcripts.expire(now - self.keep, BATCH) == BATCH
        if not more:
            self._next = now + self.every
        return more

    def expire(self, row: Cdr, now: datetime) -> None:
        """Delete one CDR's recordings and record that retention did."""
        for key in filter(None, row.recording_name.split(",")):
            self.storage.delete(key)
        if rewrite(row.id, {"recording_name": "", "media_deleted_at": now},
                   Cdr.recording_name == row.recording_name):
            log.info("recordings deleted by retention",
                     extra={"request_id": row.request_id, "account_id": row.account_id})
