"""Publishing a call's recordings, for every engine: wait for the files, merge, upload.

An engine records each side of a call to a local WAV (8 kHz mono, as the embedded
engine's recorders write them) or both sides to one stereo WAV (FreeSWITCH's
``RECORD_STEREO``); :func:`store` turns them into the one object the API serves.
"""
from __future__ import annotations

import logging
import os
import subprocess
import time
import wave
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cpaas.telephony.audio import riff_size

log = logging.getLogger(__name__)


@dataclass
class RecordingFiles:
    """One recording: a storage key and its local WAV files (one per side, left first,
    or a single file holding every channel)."""

    key: str
    paths: list[str] = field(default_factory=list)


def engine_folder(data_dir: Path) -> Path:
    """Where an engine's recordings land before the finisher uploads them (both engines;
    a FreeSWITCH node writes or uploads them there)."""
    return data_dir.resolve() / "engine-recordings"


def wav_complete(path: str) -> bool:
    """Whether a WAV's RIFF header already accounts for the whole file.

    A writer fills the sizes in when it closes the file, and not always at once: since
    PJSIP 2.14 the conference bridge destroys recorder ports asynchronously on its
    clock thread, so for a few milliseconds after the recorder is dropped the header
    says 0.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        return False
    return riff_size(path) == size - 8


def wait_complete(paths: Iterable[str], timeout: float = 10.0) -> bool:
    """Wait until every WAV is closed by its writer; False if one is still open."""
    deadline = time.monotonic() + timeout
    pending = list(paths)
    while pending:
        pending = [p for p in pending if not wav_complete(p)]
        if pending and time.monotonic() > deadline:
            log.warning("recording not closed in time", extra={"paths": pending})
            return False
        if pending:
            time.sleep(0.02)
    return True


def _interleave(left: str, right: str, out: str) -> None:
    """Two mono WAVs as one 2-channel WAV (left, right); sox pads the shorter.

    The inputs are the engine's own telephone-format files, so unlike
    :func:`cpaas.telephony.audio.merge_stereo` nothing is probed or converted first.
    """
    subprocess.run(["sox", "-M", left, right, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)


def upload(key: str, path: str) -> None:
    """Put a finished recording into object storage under ``key``."""
    from cpaas.storage import get_storage  # imported late: storage pulls in its backends

    get_storage().put_file(key, path)


def _channels(path: str) -> int:
    try:
        with wave.open(path, "rb") as wav:
            return wav.getnchannels()
    except (OSError, wave.Error, EOFError):
        return 1


def store(rec: RecordingFiles, workdir: str | None, index: int) -> int:
    """Upload one recording (two sides merged to stereo, in ``workdir`` or beside the
    first side); returns its channel count."""
    wait_complete(rec.paths)
    if len(rec.paths) == 2:
        path = os.path.join(workdir or os.path.dirname(rec.paths[0]), f"{index}-stereo.wav")
        _interleave(rec.paths[0], rec.paths[1], path)
        channels = 2
    else:
        path = rec.paths[0]
        channels = _channels(path)
    upload(rec.key, path)
    log.info("recording stored", extra={"key": rec.key, "channels": channels})
    return channels
