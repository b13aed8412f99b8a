"""Transcription accuracy through the engine: a plan dials an echoing sandbox number,
records the customer's side and plays a sentence in the neural voice; the echo comes
back on the customer channel, which tiny.en must transcribe with a word error rate of
at most 15% over five Harvard sentences (lower-cased, punctuation removed)."""
from __future__ import annotations

import re

from rq import Queue

from cpaas import ids
from cpaas.calls.service import queue_plan, record_request, recording_key
from cpaas.db import database
from cpaas.platform import CALLS_QUEUE
from cpaas.storage import storage_for
from cpaas.telephony.plans import Dial, Hangup, Plan, Record, Say
from cpaas.transcription.whisper import WhisperBackend, load_model
from tests.api.helpers import account_id
from tests.e2e.audio_checks import fetch_recording
from tests.e2e.numbers import CALLER_ID, number

SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
]
MAX_WER = 0.15


def words(text: str) -> list[str]:
    """Lower-cased words without punctuation (an apostrophe joins: it's → its)."""
    return re.sub(r"[^a-z0-9 ]", "", text.lower().replace("-", " ")).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions, insertions, deletions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def test_edit_distance_counts_each_kind_of_error():
    assert edit_distance(words("the birch canoe"), words("The birch canoe.")) == 0
    assert edit_distance(words("a b c d"), words("a x c")) == 2      # one substituted, one lost
    assert edit_distance([], words("thank you")) == 2


def _spoken_and_recorded(platform, api, sentence: str) -> str:
    """Place the plan for one sentence and return its request id once its CDR is in."""
    request_id = ids.request_id()
    with database.connection_context():
        account = account_id("account_1")
        record_request(account, request_id, "otp", agent_number="", customer_number="",
                       caller_id=CALLER_ID, recording_option="customer", transcript="off",
                       destination_context="otp", call_direction="outbound-api")
    key = recording_key("account_1", request_id)
    plan = Plan(request_id, account, "otp", [
        Dial("customer", number("102"), CALLER_ID),
        Record(key, right="customer"),
        Say("customer", sentence, voice="Joanna", engine_type="neural"),
        Hangup(),
    ], max_legs=1)
    queue_plan(Queue(CALLS_QUEUE, connection=platform.redis), plan)
    assert platform.cdr(api, request_id)["recording_name"] == key
    return request_id


def test_the_customer_channel_is_transcribed_within_15_percent_wer(platform, api, tmp_path):
    backend = WhisperBackend(storage_for(platform.settings), model=load_model(threads=2))
    errors = total = 0
    heard = []
    for sentence in SENTENCES:
        request_id = _spoken_and_recorded(platform, api, sentence)
        wav = fetch_recording(api, request_id, tmp_path)
        segments = backend.transcribe_file(wav, ("customer",))["customer"]
        text = " ".join(s.text for s in segments)
        heard.append(text)
        errors += edit_distance(words(sentence), words(text))
        total += len(words(sentence))
    assert errors / total <= MAX_WER, (errors, total, heard)
