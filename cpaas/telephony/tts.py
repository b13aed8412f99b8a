"""Text to telephone audio: SSML building, the espeak-ng, offline neural and Amazon Polly
backends, OTPs.

``tts_engine_type: neural`` is spoken offline by a neural voice chosen by the Polly
voice's gender (:mod:`cpaas.telephony.neural`) when one is installed, else by espeak-ng,
never silently: :func:`resolve` picks the backend and logs a fallback, and
:func:`engine_used` tells the API which engine will speak.

Every rendered file is telephone audio (WAV, 8 kHz, mono, 16-bit signed PCM), written
atomically, so an engine can play it as soon as the path exists.

Security rules this module keeps:

* user text is XML-escaped into the SSML, so a template can never inject markup
  (``</prosody><audio src=…/>`` is read out, not obeyed); prosody attribute values
  come only from the spec's fixed lists;
* text reaches espeak-ng in memory (its library, :mod:`cpaas.telephony.espeak`), the
  neural voices in memory, and sox on stdin, never on a command line (``ps`` would show it); no program runs through a
  shell;
* OTP audio is rendered per call and never cached; the OTP and the text never
  appear in log records. :func:`render_cached` is for secret-free text only.

``repeat`` is not a rendering parameter: :func:`render_otp` renders the announcement
once, and the call plan's ``Play(times=repeat)`` plays it ``repeat`` times.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import subprocess
import time
import wave
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable
from xml.sax.saxutils import escape, quoteattr

from cpaas.telephony import audio, espeak, neural
from cpaas.telephony.voices import LANGUAGE_CODES, espeak_voice, lookup, speaking_language

log = logging.getLogger(__name__)

#: Allowed values from the spec (its ``x- soft`` etc. are line-wrapped ``x-soft``).
VOLUMES = ("silent", "x-soft", "soft", "medium", "loud", "x-loud")
RATES = ("x-slow", "slow", "medium", "fast", "x-fast")
PITCHES = ("x-low", "low", "medium", "high", "x-high")
ENGINE_TYPES = ("standard", "neural")
BACKENDS = ("espeak", "polly")
DEFAULT_BACKEND = "espeak"

#: Where the OTP goes in an announcement template.
OTP_PLACEHOLDER = "{otp}"
OTP_RE = re.compile(r"^[0-9A-Za-z]{1,32}$")
#: Polly bills at most 3000 characters of text per request; espeak gets the same cap.
MAX_TEXT_CHARS = 3000

#: Peak level (dBFS) each volume is normalised to by the espeak backend. Peak
#: normalisation removes espeak's own loudness differences between voices and texts,
#: so the steps follow espeak's SSML volume ratios (about -10, -4, 0, +4, +7 dB around
#: medium) while ``x-loud`` keeps 1 dB of headroom and nothing ever clips.
VOLUME_PEAK_DB = {"x-soft": -17.0, "soft": -10.0, "medium": -6.0, "loud": -3.0, "x-loud": -1.0}

#: espeak-ng amplitude (its default is 100). At 100, SSML ``loud``/``x-loud`` saturate
#: inside espeak itself, which no later gain can undo; 50 leaves x-loud near -2.6 dBFS.
ESPEAK_AMPLITUDE = 50
SUBPROCESS_TIMEOUT = 30

CACHE_VERSION = 3  # bump when rendering changes, so stale cached audio is not reused
_INVALID_XML_RE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class TTSError(RuntimeError):
    """A backend failed to produce audio."""


@dataclass(frozen=True)
class Prosody:
    """How to speak: Polly voice id, the SSML prosody values, language and engine.

    Values are checked on construction (``ValueError``; an unknown voice raises
    :class:`~cpaas.telephony.voices.UnknownVoice`, also a ``ValueError``), so a
    ``Prosody`` is always safe to put into SSML and valid for Polly.
    """

    voice: str = "Joanna"
    volume: str = "medium"
    rate: str = "medium"
    pitch: str = "medium"
    language_code: str = "en-US"
    engine_type: str = "standard"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field outside the spec's allowed values."""
        for field_name, allowed in (
            ("volume", VOLUMES), ("rate", RATES), ("pitch", PITCHES), ("engine_type", ENGINE_TYPES),
        ):
            value = getattr(self, field_name)
            if value not in allowed:
                raise ValueError(f"{field_name} must be one of {', '.join(allowed)}; got {value!r}")
        if self.language_code not in LANGUAGE_CODES:
            raise ValueError(
                f"language_code must be one of {', '.join(sorted(LANGUAGE_CODES))}; got {self.language_code!r}"
            )
        voice = lookup(self.voice)
        if not voice.supports(self.engine_type):
            others = ", ".join(sorted(voice.engines & set(ENGINE_TYPES)))
            raise ValueError(
                f"voice {voice.name} is not available on the {self.engine_type} engine; "
                f"use tts_engine_type {others}"
            )

    @classmethod
    def from_request(cls, data: Mapping[str, Any]) -> "Prosody":
        """Build from API request fields (``voice``, …, ``tts_engine_type``).

        Missing, ``None`` or empty fields take the spec's defaults.
        """
        names = {
            "voice": "voice", "volume": "volume", "rate": "rate", "pitch": "pitch",
            "language_code": "language_code", "tts_engine_type": "engine_type",
        }
        given = {attr: data[key] for key, attr in names.items() if data.get(key) not in (None, "")}
        for attr, value in given.items():
            if not isinstance(value, str):
                raise ValueError(f"{attr} must be a string")
        return cls(**given)

    def cache_fields(self) -> dict[str, str]:
        """Every parameter that changes the audio, for cache keys."""
        return dataclasses.asdict(self)


@runtime_checkable
class TTSBackend(Protocol):
    """Something that turns SSML into a telephone WAV file."""

    name: str

    def synthesize(self, ssml: str, prosody: Prosody, dst: Path) -> None:
        """Write telephone audio (8 kHz mono 16-bit WAV) speaking ``ssml`` to ``dst``."""
        ...


def _run(args: list[str], stdin: bytes) -> bytes:
    """Run a program (no shell) feeding ``stdin``; return stdout or raise :class:`TTSError`."""
    try:
        proc = subprocess.run(args, input=stdin, capture_output=True, timeout=SUBPROCESS_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TTSError(f"{args[0]} failed: {exc}") from exc
    if proc.returncode != 0:
        raise TTSError(f"{args[0]} exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


class EspeakBackend:
    """Offline TTS: espeak-ng (in-process) reads the SSML, sox makes it telephone audio.

    The Polly voice picks an espeak-ng language and variant (see
    :mod:`cpaas.telephony.voices`); ``engine_type`` has no local meaning beyond the
    SSML differences :func:`ssml_for` makes. The level is then peak-normalised per
    volume (:data:`VOLUME_PEAK_DB`), and ``silent`` gives digital silence as long as
    the speech would have been.
    """

    name = "espeak"

    def synthesize(self, ssml: str, prosody: Prosody, dst: Path) -> None:
        """Render ``ssml`` with espeak-ng into the telephone WAV ``dst``."""
        voice = espeak_voice(lookup(prosody.voice), prosody.language_code)
        try:
            pcm, rate = espeak.synthesize(ssml, voice, ESPEAK_AMPLITUDE)
        except (espeak.EspeakUnavailable, ValueError, RuntimeError) as exc:
            raise TTSError(f"espeak-ng failed: {exc}") from exc
        if not pcm:
            raise TTSError(f"espeak-ng produced no audio for voice {voice}")
        audio.replace_atomically(dst, lambda tmp: self._finish(pcm, rate, prosody, tmp))

    @staticmethod
    def _finish(pcm: bytes, rate: int, prosody: Prosody, tmp: Path) -> None:
        """Resample espeak's PCM (on stdin; never on disk) to telephone format and set its level."""
        source = ["-t", "raw", "-r", str(rate), "-e", "signed-integer", "-b", "16", "-c", "1", "-"]
        to_telephone(source, pcm, prosody, tmp)


def to_telephone(source: list[str], samples: bytes, prosody: Prosody, tmp: Path,
                 effects: tuple[str, ...] = ()) -> None:
    """Raw ``samples`` (sox input options ``source``; stdin, never on disk) as a telephone WAV
    at ``prosody``'s volume, after the sox ``effects`` (applied at the source rate)."""
    if prosody.volume == "silent":
        _run([audio.SOX, "-D", *source, *audio.TELEPHONE_FORMAT, audio.sox_arg(tmp)], samples)
        # The engines render silent text as near-zeros; this makes it exact for any input.
        audio.silence(audio.duration(tmp), tmp)
        return
    # One sox run: effects, resample, then peak-normalise the telephone-rate signal (so
    # the resampler cannot push a peak past the target). A process per step cost
    # more than the work: this is on every OTP call's path.
    _run([audio.SOX, "-D", *source, *audio.TELEPHONE_FORMAT, audio.sox_arg(tmp), *effects,
          "rate", str(audio.TELEPHONE_RATE), "channels", "1",
          "gain", "-n", f"{VOLUME_PEAK_DB[prosody.volume]:g}"], samples)


class NeuralBackend:
    """An offline neural voice (:mod:`cpaas.telephony.neural`) for ``tts_engine_type: neural``.

    The engines read plain text: the SSML's text (escaped by :func:`ssml_for`, so
    parsing it back gives the user's words) is spoken, its prosody applied here:
    ``rate`` as the engine's speed, ``pitch`` (a sox pitch shift, length kept) and
    ``volume`` (peak level, as the espeak backend sets it) on the audio.
    """

    def __init__(self, voice: str) -> None:
        self.voice = voice
        self.name = f"neural:{voice}"

    def synthesize(self, ssml: str, prosody: Prosody, dst: Path) -> None:
        """Speak the text of ``ssml`` with the neural voice into the telephone WAV ``dst``."""
        text = "".join(ET.fromstring(ssml).itertext()).strip()
        try:
            samples, rate = neural.speak(self.voice, neural.readable(self.voice, text),
                                         neural.RATE_SPEED[prosody.rate])
            if not len(samples):  # e.g. text in a script the English G2P has no sounds for
                raise neural.NeuralUnavailable(f"{self.voice} produced no audio for this text")
        except neural.NeuralUnavailable as exc:
            # Installed but would not load (a damaged model), or silent: speak anyway, say so.
            _log_fallback(prosody, str(exc))
            EspeakBackend().synthesize(ssml_for(text, prosody, polly=False), prosody, dst)
            return
        source = ["-t", "raw", "-r", str(rate), "-e", "floating-point", "-b", "32", "-c", "1", "-"]
        cents = neural.PITCH_CENTS[prosody.pitch]
        effects = ("pitch", str(cents)) if cents else ()
        pcm = samples.astype("<f4").tobytes()
        audio.replace_atomically(dst, lambda tmp: to_telephone(source, pcm, prosody, tmp, effects))


class PollyBackend:
    """Amazon Polly: ``SynthesizeSpeech`` as 8 kHz PCM, wrapped into a WAV file.

    ``client`` is a boto3 Polly client; by default one is made on first use from the
    usual AWS configuration (region falling back to us-east-1).
    """

    name = "polly"

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        """The boto3 Polly client, created on first use."""
        if self._client is None:
            import boto3  # deferred: only deployments using Polly pay for importing boto3

            region = boto3.session.Session().region_name or "us-east-1"
            self._client = boto3.client("polly", region_name=region)
        return self._client

    def request(self, ssml: str, prosody: Prosody) -> dict[str, str]:
        """The ``synthesize_speech`` parameters for ``ssml`` spoken with ``prosody``.

        ``LanguageCode`` is sent only when the voice speaks it (Polly uses it to pick a
        bilingual voice's language); otherwise Polly's default for the voice applies.
        """
        voice = lookup(prosody.voice)
        params = {
            "Text": ssml,
            "TextType": "ssml",
            "OutputFormat": "pcm",
            "SampleRate": str(audio.TELEPHONE_RATE),
            "VoiceId": voice.name,
            "Engine": prosody.engine_type,
        }
        if prosody.language_code in voice.languages:
            params["LanguageCode"] = prosody.language_code
        return params

    def synthesize(self, ssml: str, prosody: Prosody, dst: Path) -> None:
        """Ask Polly for ``ssml`` and write the telephone WAV ``dst``."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.synthesize_speech(**self.request(ssml, prosody))
            stream = response["AudioStream"]
            try:
                pcm = stream.read()
            finally:
                stream.close()
        except (BotoCoreError, ClientError) as exc:
            raise TTSError(f"Polly synthesis failed: {exc}") from exc
        if not pcm or len(pcm) % 2:
            raise TTSError(f"Polly returned {len(pcm)} bytes, not 16-bit PCM")
        audio.replace_atomically(dst, lambda tmp: _write_pcm_wav(pcm, tmp))


def _write_pcm_wav(pcm: bytes, path: Path) -> None:
    """Wrap raw 16-bit little-endian mono PCM at 8 kHz into a WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(audio.TELEPHONE_RATE)
        out.writeframes(pcm)


def get_backend(name: str) -> TTSBackend:
    """A backend by name: ``espeak`` (offline default) or ``polly``."""
    if name == "espeak":
        return EspeakBackend()
    if name == "polly":
        return PollyBackend()
    raise ValueError(f"unknown TTS backend {name!r}; choose one of {', '.join(BACKENDS)}")


def ssml_for(text: str, prosody: Prosody, polly: bool = True) -> str:
    """``text`` as SSML spoken with ``prosody``; the text is escaped, never markup.

    Characters XML cannot carry (control characters) are dropped. ``pitch`` is left
    out for Polly's neural engine, which rejects it (Polly raises
    InvalidSsmlException); ``polly=False`` keeps it (espeak-ng honours it).
    """
    prosody.validate()  # attribute values below must come from the allowed lists
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"text longer than {MAX_TEXT_CHARS} characters")
    body = escape(_INVALID_XML_RE.sub("", text))
    attrs = {"rate": prosody.rate, "pitch": prosody.pitch, "volume": prosody.volume}
    if polly and prosody.engine_type == "neural":
        del attrs["pitch"]
    rendered = " ".join(f"{key}={quoteattr(value)}" for key, value in attrs.items())
    return f"<speak><prosody {rendered}>{body}</prosody></speak>"


def speak_digits(otp: str) -> str:
    """The OTP with its characters separated so each is read on its own: ``1, 9, 8, 7``.

    Raises ``ValueError`` unless the OTP is 1–32 letters or digits.
    """
    if not isinstance(otp, str) or not OTP_RE.fullmatch(otp):
        raise ValueError("otp must be 1-32 letters or digits")
    return ", ".join(otp)


def _default(backend: TTSBackend | None) -> TTSBackend:
    return backend if backend is not None else get_backend(DEFAULT_BACKEND)


def _neural_choice(prosody: Prosody) -> neural.Choice:
    voice = lookup(prosody.voice)
    return neural.choose(voice.gender, speaking_language(voice, prosody.language_code))


def _log_fallback(prosody: Prosody, reason: str, **extra: str) -> None:
    """Say, never silently, that a neural request is spoken by the standard engine."""
    log.warning("neural voice not available: the standard engine speaks", extra={
        "voice": prosody.voice, "gender": lookup(prosody.voice).gender,
        "language_code": prosody.language_code, "reason": reason,
        "tts_engine_used": "standard", **extra})


def resolve(backend: TTSBackend, prosody: Prosody) -> TTSBackend:
    """The backend that really speaks ``prosody``.

    For ``tts_engine_type: neural`` on the offline default (espeak), the neural voice of
    the Polly voice's gender when it is installed; otherwise ``backend`` itself, with
    the fallback logged. Polly speaks its own neural voices.
    """
    if backend.name != "espeak" or prosody.engine_type != "neural":
        return backend
    choice = _neural_choice(prosody)
    if choice.available:
        return NeuralBackend(choice.voice)
    _log_fallback(prosody, choice.reason)
    return backend


def engine_used(prosody: Prosody, backend_name: str, **context: str) -> str:
    """``neural`` or ``standard``: the engine that will speak ``prosody`` with the
    configured backend (``CPAAS_TTS``), for the API's ``tts_engine_used``. A neural
    request that falls back is logged with ``context`` (``request_id=…``)."""
    if backend_name != "espeak" or prosody.engine_type != "neural":
        return prosody.engine_type
    choice = _neural_choice(prosody)
    if choice.available:
        return "neural"
    _log_fallback(prosody, choice.reason, **context)
    return "standard"


def warm_up() -> None:
    """Load the installed offline neural voices now, so the first neural call does not wait
    (hibari ~0.7 s, piper ~0.8 s); a worker calls it once at start-up."""
    log.info("neural voices loaded", extra={"neural_voices": neural.warm_up()})


def engine_used_for(data: Mapping[str, Any], backend_name: str, **context: str) -> str:
    """:func:`engine_used` for validated API request fields (``voice``, …, ``tts_engine_type``)."""
    return engine_used(Prosody.from_request(data), backend_name, **context)


def render_text(text: str, prosody: Prosody, dst: Path, backend: TTSBackend | None = None) -> Path:
    """Render ``text`` (plain text, escaped into SSML) into the telephone WAV ``dst``
    with the backend that really speaks ``prosody`` (:func:`resolve`)."""
    return _render(text, prosody, dst, resolve(_default(backend), prosody))


def _render(text: str, prosody: Prosody, dst: Path, backend: TTSBackend) -> Path:
    """:func:`render_text` with ``backend`` already resolved."""
    if not isinstance(dst, (str, os.PathLike)):
        raise TypeError(f"dst must be a path, not {type(dst).__name__}")
    if not text.strip():
        raise ValueError("nothing to say: text is empty")
    dst = Path(dst)
    started = time.perf_counter()
    backend.synthesize(ssml_for(text, prosody, polly=backend.name == "polly"), prosody, dst)
    log.debug(
        "tts %s voice=%s rate=%s volume=%s -> %s in %.0f ms",
        backend.name, prosody.voice, prosody.rate, prosody.volume, dst.name,
        (time.perf_counter() - started) * 1000,
    )
    return dst


def render_otp(
    template_text: str, otp: str, prosody: Prosody, dst: Path, backend: TTSBackend | None = None
) -> Path:
    """Render one OTP announcement into ``dst``: the template with ``{otp}`` spoken digit by digit.

    The file holds the announcement once; the call plays it ``repeat`` times
    (``Play(times=repeat)``). OTP audio is never cached: render it per call into a
    per-call path and list that path in the plan's ``ephemeral_files``.
    Raises ``ValueError`` when the template has no ``{otp}`` or the OTP is malformed.
    """
    if not isinstance(dst, (str, os.PathLike)):
        raise TypeError("dst must be a path; render_otp renders once, repeats are Play(times=…)")
    if OTP_PLACEHOLDER not in template_text:
        raise ValueError(f"announcement template has no {OTP_PLACEHOLDER} placeholder")
    return render_text(template_text.replace(OTP_PLACEHOLDER, speak_digits(otp)), prosody, dst, backend)


def cache_key(text: str, prosody: Prosody, backend_name: str) -> str:
    """Hash of the text, every TTS parameter and the backend that renders them."""
    material = {"v": CACHE_VERSION, "backend": backend_name, "text": text, **prosody.cache_fields()}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


def render_cached(
    text: str, prosody: Prosody, cache_dir: Path, backend: TTSBackend | None = None
) -> Path:
    """Render ``text`` once per distinct (text, prosody, backend) and reuse the file.

    Only for text without secrets (campaign or IVR prompts): never pass OTP text, which
    would then sit in the cache. Concurrent callers may both render; the atomic rename
    makes the last one win with identical content.
    """
    backend = resolve(_default(backend), prosody)
    path = Path(cache_dir) / f"{cache_key(text, prosody, backend.name)}.wav"
    if path.exists() and audio.is_audio_wav(path):
        return path
    return _render(text, prosody, path, backend)
