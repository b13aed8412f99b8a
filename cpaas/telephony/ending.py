"""The end of a plan, the same for every engine: recordings, prompts, then ``PlanEnded``.

Once every call of a plan is gone, its engine hands over an :class:`EndedPlan` (plain
data: outcomes, digits, local recording files) and :func:`finish` does the rest in the
order the platform relies on: each recording is stored and announced, the plan's
per-call prompts are released (:mod:`cpaas.telephony.ephemeral`), and only then is
:class:`~cpaas.telephony.events.PlanEnded` published, so a CDR never names a recording
that is not stored yet. It takes seconds (sox, object storage): engines call it off any
thread that carries signalling.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from cpaas.telephony import ephemeral
from cpaas.telephony.events import LegOutcome, PlanEnded, RecordingStored
from cpaas.telephony.plans import Plan
from cpaas.telephony.publisher import Publisher
from cpaas.telephony.recordings import RecordingFiles, store
from cpaas.transcription.keys import is_transcript_audio

log = logging.getLogger(__name__)


@dataclass
class EndedPlan:
    """A plan whose calls are all gone, with what is left to publish."""

    plan: Plan
    legs: dict[str, LegOutcome]
    dtmf: str
    recordings: list[RecordingFiles]
    cause: str
    tmpdir: str | None   # the engine's local folder for this plan's files, removed at the end
    ivr_result: str = ""   # what the plan's Branch did (PlanEnded.ivr_result)
    transfer_to: str = ""  # the route it dialed


def finish(publisher: Publisher, done: EndedPlan, media_dir: Path) -> None:
    """Store and announce the recordings, release the prompts (inside ``media_dir``),
    publish :class:`PlanEnded`, and remove the plan's local folder."""
    plan, stored = done.plan, []
    for index, rec in enumerate(done.recordings):
        try:
            channels = store(rec, done.tmpdir, index)
        except Exception:
            log.exception("recording not stored", extra={"plan_id": plan.plan_id, "key": rec.key})
            continue
        if not done.tmpdir:
            # Files the engine wrote outside a folder of the plan's own (a FreeSWITCH
            # node's, or uploaded by it): stored now, so no longer needed here.
            ephemeral.remove(rec.paths)
        if not is_transcript_audio(rec.key):   # never offered for download: not in the CDR
            stored.append(rec.key)
        publisher.publish(RecordingStored(plan_id=plan.plan_id, account_id=plan.account_id,
                                          key=rec.key, channels=channels))
    ephemeral.release(publisher.r, plan.plan_id, plan.ephemeral_files, media_dir)
    publisher.publish(PlanEnded(plan_id=plan.plan_id, account_id=plan.account_id,
                                legs=done.legs, dtmf=done.dtmf, recordings=tuple(stored),
                                cause=done.cause, ivr_result=done.ivr_result,
                                transfer_to=done.transfer_to))
    if done.tmpdir:
        shutil.rmtree(done.tmpdir, ignore_errors=True)
