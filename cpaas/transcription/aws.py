"""The cloud backend: Amazon Transcribe through boto3 (``CPAAS_TRANSCRIBE=aws``).

The recording is already in the platform's S3 bucket, so Transcribe reads it there and
writes its result back into the same bucket (``OutputBucketName``, under the platform's
prefix beside the account's recordings); the result is read through S3 like any object,
turned into segments per channel (channel identification for a stereo call), and
deleted: the platform keeps its own copy of the turns.
"""
from __future__ import annotations

import json
import logging
import time
from contextlib import closing
from typing import Any, Callable, Sequence

from cpaas import config
from cpaas.storage import S3Storage, Storage
from cpaas.transcription.turns import Segment

log = logging.getLogger(__name__)

#: Seconds between two looks at a running Transcribe job, and the longest wait for one.
POLL_EVERY, POLL_LIMIT = 5.0, 3600.0
_SENTENCE_END = (".", "?", "!")


class TranscribeFailed(Exception):
    """Amazon Transcribe ended the job FAILED (its reason in the message)."""


def segments_of(items: list[dict[str, Any]]) -> list[Segment]:
    """Transcribe's word items as sentences: punctuation joins the word before it, and a
    sentence ends at ``.``, ``?`` or ``!``."""
    segments: list[Segment] = []
    words: list[str] = []
    start = end = 0.0
    for item in items:
        content = item["alternatives"][0]["content"]
        if item.get("type") == "punctuation":
            if words:
                words[-1] += content
                if content in _SENTENCE_END:
                    segments.append(Segment(start, end, " ".join(words)))
                    words = []
            continue
        if not words:
            start = float(item["start_time"])
        end = float(item["end_time"])
        words.append(content)
    if words:
        segments.append(Segment(start, end, " ".join(words)))
    return segments


def channels_of(result: dict[str, Any], speakers: Sequence[str]) -> dict[str, list[Segment]]:
    """Transcribe's output document as segments per speaker (``ch_0`` is the left one)."""
    results = result["results"]
    if len(speakers) == 1:
        return {speakers[0]: segments_of(results.get("items", []))}
    by_label = {ch["channel_label"]: ch.get("items", [])
                for ch in results.get("channel_labels", {}).get("channels", [])}
    return {speaker: segments_of(by_label.get(f"ch_{i}", [])) for i, speaker in enumerate(speakers)}


class AwsBackend:
    """Transcribes recordings stored in S3 with Amazon Transcribe."""

    name = "aws"

    def __init__(self, storage: S3Storage, client: Any, language: str = "en-US",
                 poll_every: float = POLL_EVERY,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.storage = storage
        self.client = client
        self.language = language
        self.poll_every = poll_every
        self.sleep = sleep

    @classmethod
    def from_settings(cls, settings: config.Settings, storage: Storage) -> "AwsBackend":
        """The backend over the platform's bucket; Transcribe needs the recordings in S3."""
        import boto3

        if not isinstance(storage, S3Storage):
            raise ValueError("CPAAS_TRANSCRIBE=aws needs CPAAS_STORAGE_URL=s3://bucket[/prefix]")
        return cls(storage, boto3.client("transcribe"))

    def warm_up(self) -> None:
        """Nothing to load: the work happens in the cloud."""

    def transcribe(self, key: str, speakers: Sequence[str]) -> dict[str, list[Segment]]:
        """Start a Transcribe job on the object ``key``, wait for it, read its result."""
        name = "cpaas-" + key.rsplit("/", 1)[-1].rsplit(".", 1)[0] + f"-{int(time.time() * 1000)}"
        output = key.rsplit(".", 1)[0] + ".transcribe.json"
        self.client.start_transcription_job(
            TranscriptionJobName=name, LanguageCode=self.language, MediaFormat="wav",
            Media={"MediaFileUri": f"s3://{self.storage.bucket}/{self.storage.prefix}{key}"},
            OutputBucketName=self.storage.bucket, OutputKey=self.storage.prefix + output,
            Settings={"ChannelIdentification": True} if len(speakers) == 2 else {})
        self._wait(name)
        try:
            with closing(self.storage.open(output)) as body:
                result = json.loads(body.read())
        finally:
            self.storage.delete(output)
        return channels_of(result, speakers)

    def _wait(self, name: str) -> None:
        deadline = time.monotonic() + POLL_LIMIT
        while True:
            job = self.client.get_transcription_job(TranscriptionJobName=name)["TranscriptionJob"]
            status = job["TranscriptionJobStatus"]
            if status == "COMPLETED":
                return
            if status == "FAILED":
                raise TranscribeFailed(job.get("FailureReason", "no reason given"))
            if time.monotonic() > deadline:
                raise TranscribeFailed(f"still {status} after {POLL_LIMIT:.0f} s")
            self.sleep(self.poll_every)
