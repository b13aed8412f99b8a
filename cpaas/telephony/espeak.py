"""espeak-ng in-process, through its C library (``libespeak-ng.so.1``) and ctypes.

Running the ``espeak-ng`` program costs ~21 ms of CPU per OTP announcement, most of it
loading the language data again in each new process; the library loads it once per
process and then synthesises the same announcement in ~7 ms. The audio is the
program's: the library is called as the program calls it (its synthesis flags less
phoneme input, the amplitude as ``-a`` sets it, the voice as ``-v`` selects it), so for
text without ``[[`` or ``]]`` a process's first announcement equals the program's
sample for sample. Later ones differ from it by what the library carries from one
synthesis to the next (its pitch flutter runs on; the closing pause varies by ~40 ms with
the text spoken before): the same words, the speech within about 1 % of its length
(``tests/unit/test_espeak.py`` checks both).

The library keeps one global synthesiser, so calls are serialised by a lock. Text
reaches it through memory only: never a command line, never a file.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Any

#: ``speak_lib.h`` constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000   # report a missing data folder instead of exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 0x1
_SSML = 0x10
_ENDPAUSE = 0x1000
_PARAM_VOLUME = 2                # what the program's ``-a`` sets
_PHONEMES_SHOW = 0x1             # what the program's ``-x`` traces
_EE_OK = 0

#: The flags ``espeak-ng -m -b 1`` synthesises with (``src/espeak-ng.c``) but one: the
#: program also sets ``espeakPHONEMES``, which reads ``[[…]]`` inside the text as raw
#: phoneme input. Our text comes from users (templates, contact fields): it is words only.
SYNTH_FLAGS = _ENDPAUSE | _CHARS_UTF8 | _SSML
#: Without phoneme input espeak still reads ``[[``/``]]`` as punctuation, each a pause:
#: :func:`_words_only` makes them spaces, so they change nothing that is said.

_SAMPLES = ctypes.POINTER(ctypes.c_short)
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, _SAMPLES, ctypes.c_int, ctypes.c_void_p)


class _Voice(ctypes.Structure):
    """``espeak_VOICE``: the selector the program falls back to for a name it cannot load."""

    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte),
                ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte),
                ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


class EspeakUnavailable(RuntimeError):
    """The library is missing or would not start (no data folder)."""


class _Library:
    """The loaded library, its sample rate, and the buffer its callback fills."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise EspeakUnavailable(f"cannot load {name}: {exc}") from exc
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_SetPhonemeTrace.restype = None
        lib.espeak_SetPhonemeTrace.argtypes = [ctypes.c_int, ctypes.c_void_p]
        self.rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_DONT_EXIT)
        if self.rate <= 0:
            raise EspeakUnavailable(f"espeak_Initialize failed ({self.rate}): is espeak-ng-data installed?")
        self.lib = lib
        self.chunks: list[bytes] = []
        # Kept on the instance: ctypes does not keep a callback alive for the library.
        self.callback = _CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self.callback)

    def select(self, voice: str) -> None:
        """Choose ``voice`` as the program's ``-v`` does: by file name, else as a language
        (``en-gb+f2``: the language ``en-gb`` with the variant ``f2``)."""
        name = voice.encode("ascii")
        if self.lib.espeak_SetVoiceByName(name) == _EE_OK:
            return
        if self.lib.espeak_SetVoiceByProperties(ctypes.byref(_Voice(languages=name))) != _EE_OK:
            raise ValueError(f"espeak-ng has no voice {voice!r}")

    def _collect(self, samples: Any, count: int, _events: Any) -> int:
        if count > 0 and samples:
            self.chunks.append(ctypes.string_at(samples, count * 2))
        return 0   # 0: go on synthesising


_lock = threading.Lock()
_library: _Library | None = None


def _loaded() -> _Library:
    global _library
    if _library is None:
        _library = _Library()
    return _library


def load() -> None:
    """Load the library and its data now rather than on the first announcement.

    Raises :class:`EspeakUnavailable` when it cannot start.
    """
    with _lock:
        _loaded()


def _words_only(ssml: str) -> str:
    """``ssml`` with each ``[[`` and ``]]`` replaced by spaces (single brackets stay)."""
    return ssml.replace("[[", "  ").replace("]]", "  ")


def _speak(lib: _Library, ssml: str, voice: str, amplitude: int) -> bytes:
    """One synthesis of ``ssml`` (the caller holds the lock); the PCM it produced."""
    text = _words_only(ssml).encode("utf-8") + b"\0"
    lib.select(voice)
    lib.lib.espeak_SetParameter(_PARAM_VOLUME, amplitude, 0)
    buffer = ctypes.create_string_buffer(text, len(text))
    lib.chunks.clear()
    try:
        status = lib.lib.espeak_Synth(buffer, len(text), 0, _POS_CHARACTER, 0, SYNTH_FLAGS,
                                      None, None)
        if status == _EE_OK:
            status = lib.lib.espeak_Synchronize()
        if status != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed ({status})")
        return b"".join(lib.chunks)
    finally:
        lib.chunks.clear()


def synthesize(ssml: str, voice: str, amplitude: int) -> tuple[bytes, int]:
    """Speak ``ssml`` with the espeak-ng ``voice`` (e.g. ``en-us+f3``) at ``amplitude``.

    Returns 16-bit signed little-endian mono PCM and its sample rate (22050 Hz).
    Raises :class:`EspeakUnavailable` when the library cannot start, ``ValueError`` for
    a voice it does not have, and ``RuntimeError`` when synthesis fails.
    """
    with _lock:
        lib = _loaded()
        return _speak(lib, ssml, voice, amplitude), lib.rate


def phonemes(ssml: str, voice: str) -> str:
    """The phoneme mnemonics :func:`synthesize` speaks for ``ssml``, as ``espeak-ng -x``
    prints them: the same synthesis, traced (a check of what user text can make it say)."""
    libc = ctypes.CDLL(None)
    libc.tmpfile.restype = ctypes.c_void_p
    libc.fflush.argtypes = libc.fclose.argtypes = libc.fileno.argtypes = [ctypes.c_void_p]
    stream = libc.tmpfile()
    if not stream:
        raise OSError(ctypes.get_errno(), "tmpfile failed")
    try:
        with _lock:
            lib = _loaded()
            lib.lib.espeak_SetPhonemeTrace(_PHONEMES_SHOW, stream)
            try:
                _speak(lib, ssml, voice, 100)
            finally:
                lib.lib.espeak_SetPhonemeTrace(0, None)
        libc.fflush(stream)
        fd = libc.fileno(stream)
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", errors="replace")
    finally:
        libc.fclose(stream)
