"""The slow end of a plan, off the SIP thread (:func:`cpaas.telephony.ending.finish`).

Merging with sox and uploading to object storage can take seconds; doing it on the
thread that polls pjsua would stall the SIP signalling of every other call of the
process. The finisher gets only plain data (file paths, outcomes), never a pjsua object.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from cpaas.telephony.ending import EndedPlan, finish
from pjsua_engine.report import Reporter

log = logging.getLogger(__name__)


class Finisher(threading.Thread):
    """Processes finished plans one by one, in the order they ended."""

    def __init__(self, reporter: Reporter, media_dir: Path,
                 on_start: Callable[[], None] | None = None) -> None:
        super().__init__(name="finisher", daemon=True)
        self.reporter = reporter
        self.media_dir = media_dir   # where the plans' per-call prompts are
        self.on_start = on_start
        self.queue: queue.Queue[EndedPlan | None] = queue.Queue()

    def submit(self, ended: EndedPlan) -> None:
        """Queue a plan whose calls are all gone."""
        self.queue.put(ended)

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        self.queue.put(None)
        self.join()

    def run(self) -> None:
        """Thread body."""
        if self.on_start is not None:
            self.on_start()
        while True:
            item = self.queue.get()
            if item is None:
                return
            try:
                finish(self.reporter, item, self.media_dir)
                # Announced: the pool no longer needs the snapshot to close its CDR.
                self.reporter.forget(item.plan)
            except Exception:
                log.exception("finishing plan failed", extra={"plan_id": item.plan.plan_id})
