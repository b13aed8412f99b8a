"""The slow end of a plan, off the SIP thread: merge, upload, announce, clean up.

Merging with sox and uploading to object storage can take seconds; doing it on the
thread that polls pjsua would stall the SIP signalling of every other call of the
process. The finisher gets only plain data (file paths, outcomes), never a pjsua object.
"""
from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from cpaas.telephony import ephemeral
from pjsua_engine.files import merge_stereo, upload, wait_complete
from pjsua_engine.model import Finished, RecordingFiles
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
        self.queue: queue.Queue[Finished | None] = queue.Queue()

    def submit(self, finished: Finished) -> None:
        """Queue a plan whose calls are all gone."""
        self.queue.put(finished)

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
                self.finish(item)
            except Exception:
                log.exception("finishing plan failed", extra={"plan_id": item.plan.plan_id})

    def finish(self, done: Finished) -> None:
        """Publish recordings, then announce ``plan.ended`` and forget the plan."""
        stored = []
        for index, rec in enumerate(done.recordings):
            try:
                channels = self._store(rec, done.tmpdir, index)
            except Exception:
                log.exception("recording not stored",
                              extra={"plan_id": done.plan.plan_id, "key": rec.key})
                continue
            stored.append(rec.key)
            self.reporter.emit(done.plan, "recording.stored",
                               data={"key": rec.key, "channels": channels})
        ephemeral.release(self.reporter.r, done.plan.plan_id, done.plan.ephemeral_files,
                          self.media_dir)
        self.reporter.emit(done.plan, "plan.ended", data={
            "legs": {role: asdict(o) for role, o in done.legs.items()},
            "dtmf": done.dtmf, "recordings": stored, "cause": done.cause})
        self.reporter.forget(done.plan)
        if done.tmpdir:
            shutil.rmtree(done.tmpdir, ignore_errors=True)

    @staticmethod
    def _store(rec: RecordingFiles, tmpdir: str | None, index: int) -> int:
        """Upload one recording (stereo when both sides were recorded); its channel count."""
        wait_complete(rec.paths)
        if len(rec.paths) == 2:
            path = os.path.join(tmpdir or os.path.dirname(rec.paths[0]), f"{index}-stereo.wav")
            merge_stereo(rec.paths[0], rec.paths[1], path)
        else:
            path = rec.paths[0]
        upload(rec.key, path)
        log.info("recording stored", extra={"key": rec.key, "channels": len(rec.paths)})
        return len(rec.paths)
