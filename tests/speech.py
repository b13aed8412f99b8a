"""Known English speech for transcription tests, spoken by the platform's own TTS.

tiny.en invents fluent text on audio that is not clear speech, so a test that checks
what a transcript says needs speech whose words it knows: the neural voice (hibari
"heart") through the platform's renderer, as a call would play it (8 kHz telephone WAV).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from cpaas.telephony import tts

NEURAL = tts.Prosody(voice="Joanna", engine_type="neural")


def speak(text: str, path: Path) -> Path:
    """``text`` in the neural voice as an 8 kHz mono WAV at ``path``."""
    return tts.render_text(text, NEURAL, path)


def stereo(path: Path, left: Path | None = None, right: Path | None = None,
           lead: float = 0.5) -> Path:
    """A 2-channel call recording (agent left, customer right) of the given sides, each
    after ``lead`` seconds of silence; a missing side is silent."""
    parts = []
    for index, side in enumerate((left, right)):
        padded = path.with_name(f"{path.stem}-{index}.wav")
        if side is None:
            subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(padded),
                            "trim", "0", "1"], check=True)
        else:
            subprocess.run(["sox", str(side), str(padded), "pad", str(lead), "0.5"], check=True)
        parts.append(str(padded))
    subprocess.run(["sox", "-M", *parts, str(path)], check=True)
    return path
