"""The RQ worker class of the ``worker`` process.

RQ's SimpleWorker runs jobs in-process instead of forking one per job (a call job is a
few milliseconds; a fork would dominate call setup). This subclass also loads the job
module and connects to the engine before the first job, so the first call placed after
a start is as fast as the rest.
"""
from __future__ import annotations

from typing import Any

from rq.worker import SimpleWorker


class WarmWorker(SimpleWorker):
    """SimpleWorker that prepares the call job's context at start-up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from workers import jobs

        jobs.warm_up()
