"""Fetch a call's recording through the API and measure it."""
from __future__ import annotations

from pathlib import Path

from cpaas.telephony import audio

#: RMS (full scale 1.0) above which a channel carries sound; line noise and silence
#: from the engine's null device stay far below it.
SOUND = 0.01


def fetch_recording(api, request_id: str, folder: Path, name: str | None = None) -> Path:
    """Download the request's recording via ``GET /api/recording``."""
    url = f"/api/recording?request_id={request_id}" + (f"&recording_name={name}" if name else "")
    r = api.get(url)
    assert r.status_code == 200, r.data[:300]
    assert r.mimetype == "audio/wav"
    path = folder / f"{request_id}-{name or 'latest'}.wav"
    path.write_bytes(r.data)
    assert audio.is_audio_wav(path)
    return path


def segment_rms(path: Path, start: float, end: float, channel: int | None = None) -> float:
    """RMS of ``path`` between two offsets (seconds)."""
    part = path.with_name(f"{path.stem}-{start:.1f}-{end:.1f}.wav")
    audio.trim(path, part, start, end)
    return audio.rms(part, channel)
