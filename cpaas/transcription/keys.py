"""Where a call's transcript-only audio is stored, and how it is told from recordings.

With ``transcript: on`` a call records both sides for its transcript whatever its
``recording_option`` asked for. When that option is not ``both``, the transcript's
stereo audio is a second recording under the key below: the engine stores it like any
recording but it never becomes part of the CDR's ``recording_name`` (so the recording
endpoint never offers it), and the transcription job deletes it once it is done.
"""
from __future__ import annotations

from cpaas.storage import account_prefix

#: The channels of a call's 2-channel recording, left first.
SPEAKERS = ("agent", "customer")
_FOLDER, _SUFFIX = "transcripts/", "-audio.wav"


def transcript_audio_key(account_name: str, request_id: str) -> str:
    """The storage key of the audio a request records only for its transcript."""
    return f"{account_prefix(account_name)}{_FOLDER}{request_id}{_SUFFIX}"


def is_transcript_audio(key: str) -> bool:
    """Whether ``key`` names transcript-only audio (never offered for download)."""
    folder, _, name = key.rpartition("/")
    return folder.endswith(_FOLDER.rstrip("/")) and name.endswith(_SUFFIX)


def needs_own_audio(recording_option: str) -> bool:
    """Whether a call with ``transcript: on`` records a second, transcript-only stereo
    file: every option but ``both`` leaves a side out of the downloadable recording."""
    return recording_option != "both"
