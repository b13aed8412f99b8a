"""Local files a plan owns: recordings to close, merge and publish.

(Per-call prompts are deleted through :mod:`cpaas.telephony.ephemeral`.)
"""
from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterable

from cpaas.telephony.audio import riff_size

log = logging.getLogger(__name__)


def wav_complete(path: str) -> bool:
    """Whether a WAV's RIFF header already accounts for the whole file.

    pjmedia's WAV writer fills the sizes in when the recorder port is destroyed, and
    since PJSIP 2.14 the conference bridge destroys ports asynchronously on its clock
    thread: for a few milliseconds after the recorder is dropped the header says 0.
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


def merge_stereo(left: str, right: str, out: str) -> None:
    """Interleave two mono WAVs into one 2-channel WAV (left, right); sox pads the shorter."""
    subprocess.run(["sox", "-M", left, right, out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)


def upload(key: str, path: str) -> None:
    """Put a finished recording into object storage under ``key``."""
    from cpaas.storage import get_storage  # imported late: storage pulls in its backends

    get_storage().put_file(key, path)
