"""The in-process espeak-ng (its library) against the espeak-ng program."""
from __future__ import annotations

import array
import io
import math
import statistics
import subprocess
import sys
import threading
import wave

import pytest

from cpaas.telephony import espeak, tts
from cpaas.telephony.tts import Prosody
from cpaas.telephony.voices import KNOWN_VOICES, espeak_voice

TEXT = "Your one time password is 4, 0, 7, 1. Numbers: 12.5% & <tags> stay text."


def program(ssml: str, voice: str, amplitude: int = tts.ESPEAK_AMPLITUDE) -> tuple[bytes, int]:
    """What ``espeak-ng -m -b 1 -a N -v VOICE --stdout`` writes, as (PCM, rate)."""
    out = subprocess.run(
        ["espeak-ng", "-m", "-b", "1", "-a", str(amplitude), "-v", voice, "--stdout"],
        input=ssml.encode("utf-8"), capture_output=True, check=True,
    ).stdout
    with wave.open(io.BytesIO(out)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        return wav.readframes(wav.getnframes()), wav.getframerate()


def every_voice() -> list[str]:
    """Each distinct espeak-ng voice the Polly table maps to, in every language it speaks."""
    return sorted({espeak_voice(voice, language)
                   for voice in KNOWN_VOICES.values()
                   for language in {voice.language, *voice.languages}})


FIRST = """
import sys
from cpaas.telephony import espeak
pcm, rate = espeak.synthesize(sys.stdin.read(), sys.argv[1], int(sys.argv[2]))
sys.stdout.buffer.write(rate.to_bytes(4, "little") + pcm)
"""


def first_in_a_new_process(ssml: str, voice: str, amplitude: int = tts.ESPEAK_AMPLITUDE) -> tuple[bytes, int]:
    """What :func:`espeak.synthesize` returns on its first call in a fresh process."""
    out = subprocess.run([sys.executable, "-c", FIRST, voice, str(amplitude)], input=ssml.encode("utf-8"),
                         capture_output=True, check=True).stdout
    return out[4:], int.from_bytes(out[:4], "little")


def _sounding(samples: array.array) -> tuple[int, int]:
    """The first and last sample louder than the noise floor."""
    loud = [i for i, x in enumerate(samples) if abs(x) > 50]
    return loud[0], loud[-1]


def _loudness(samples: array.array, start: int, end: int, rate: int) -> list[float]:
    """RMS of each 20 ms from ``start`` to ``end``."""
    frame = rate // 50
    return [math.sqrt(sum(x * x for x in samples[i:i + frame]) / frame)
            for i in range(start, end, frame)]


def assert_same_speech(got: tuple[bytes, int], want: tuple[bytes, int]) -> None:
    """Equal but for what espeak carries from one synthesis to the next: same rate, onset
    within 10 ms, speech (onset to last sound) within 2 % of its length, peak within 12 %,
    the closing pause within 60 ms (it varies by ~40 ms with the text spoken before), and
    the loudness contour the same (correlation >= 0.95: the same words measure >= 0.998
    here, "caller 0 says 0" against "caller 1 says 7" 0.78)."""
    (pcm, rate), (ref, ref_rate) = got, want
    samples, reference = array.array("h", pcm), array.array("h", ref)
    assert rate == ref_rate
    (start, end), (ref_start, ref_end) = _sounding(samples), _sounding(reference)
    assert abs(start - ref_start) <= rate // 100
    assert abs((end - start) - (ref_end - ref_start)) <= 0.02 * (ref_end - ref_start)
    assert abs((len(samples) - end) - (len(reference) - ref_end)) <= rate * 60 // 1000
    assert abs(max(map(abs, samples)) / max(map(abs, reference)) - 1) < 0.12
    got_contour = _loudness(samples, start, end, rate)
    want_contour = _loudness(reference, ref_start, ref_end, rate)
    n = min(len(got_contour), len(want_contour))
    assert statistics.correlation(got_contour[:n], want_contour[:n]) >= 0.95


@pytest.mark.parametrize("voice", every_voice())
def test_each_mapped_voice_is_the_programs_sample_for_sample(voice):
    ssml = tts.ssml_for(TEXT, Prosody())
    pcm, rate = first_in_a_new_process(ssml, voice)
    assert (pcm, rate) == program(ssml, voice)
    assert len(pcm) > rate  # more than half a second of speech


@pytest.mark.parametrize("prosody", [
    Prosody(rate="x-fast", pitch="x-low", volume="x-loud"),
    Prosody(rate="x-slow", pitch="x-high", volume="x-soft"),
    Prosody(voice="Brian", language_code="en-GB", rate="slow"),
])
def test_prosody_is_the_programs(prosody):
    voice = espeak_voice(KNOWN_VOICES[prosody.voice], prosody.language_code)
    ssml = tts.ssml_for(TEXT, prosody)
    assert first_in_a_new_process(ssml, voice) == program(ssml, voice)


def test_later_calls_say_the_same_whatever_came_before():
    # A long-lived worker renders one call after another, in other voices and prosody.
    ssml = tts.ssml_for(TEXT, Prosody())
    want = program(ssml, "en-us+f3")
    for before in (Prosody(rate="x-slow", pitch="x-high"), Prosody(volume="x-loud"), Prosody()):
        espeak.synthesize(tts.ssml_for("other words before", before), "de+m3", 100)
        assert_same_speech(espeak.synthesize(ssml, "en-us+f3", tts.ESPEAK_AMPLITUDE), want)


def test_amplitude_is_the_programs_a_option():
    ssml = tts.ssml_for("loud and clear", Prosody())
    assert first_in_a_new_process(ssml, "en-us", 120) == program(ssml, "en-us", 120)
    loud, quiet = (array.array("h", espeak.synthesize(ssml, "en-us", a)[0]) for a in (120, 30))
    assert max(map(abs, loud)) > 3 * max(map(abs, quiet))


def test_unknown_voice_is_refused():
    with pytest.raises(ValueError, match="no voice"):
        espeak.synthesize("<speak>hi</speak>", "xx-nowhere", 50)


def test_concurrent_callers_each_get_their_own_audio():
    texts = {n: tts.ssml_for(f"caller {n} says {n * 7}", Prosody()) for n in range(6)}
    results: dict[int, tuple[bytes, int]] = {}

    def speak(n: int) -> None:
        results[n] = espeak.synthesize(texts[n], "en-us+f3", tts.ESPEAK_AMPLITUDE)

    threads = [threading.Thread(target=speak, args=(n,)) for n in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, ssml in texts.items():
        assert_same_speech(results[n], program(ssml, "en-us+f3"))


def program_phonemes(ssml: str, voice: str) -> str:
    """What ``espeak-ng -m -x -q -v VOICE`` prints for ``ssml``."""
    return subprocess.run(["espeak-ng", "-m", "-x", "-q", "-v", voice], input=ssml.encode("utf-8"),
                          capture_output=True, check=True).stdout.decode("utf-8")


def test_phoneme_trace_is_the_programs():
    ssml = tts.ssml_for(TEXT, Prosody())
    assert espeak.phonemes(ssml, "en-us+f3") == program_phonemes(ssml, "en-us+f3")
    assert espeak.phonemes(ssml, "en-us+f3").count("\n") >= 2


PHONEME_INPUT = ["Your code is [[h@l'oU]] 4, 0, 7, 1.", "[[", "]] [[ a [[b]] c ]] [[",
                 "Dear [[w'0rld]], [[ and ]] [[d'i:p [[n'Est]] ]] end"]


@pytest.mark.parametrize("text", PHONEME_INPUT)
@pytest.mark.parametrize("voice", ["en-us+f3", "de+m3"])
def test_user_text_never_switches_to_phoneme_input(text, voice):
    # Template text and contact fields are words: ``[[…]]`` is read as the letters inside.
    spaced = text.replace("[[", "  ").replace("]]", "  ")
    said = espeak.phonemes(tts.ssml_for(text, Prosody()), voice)
    assert said == espeak.phonemes(tts.ssml_for(spaced, Prosody()), voice)
    assert said == program_phonemes(tts.ssml_for(spaced, Prosody()), voice)


@pytest.mark.parametrize("text", ["&#91;&#91;h@l'oU&#93;&#93;", "<phoneme>[[h@l'oU]]</phoneme>",
                                  "]]></prosody></speak>[[h@l'oU]]"])
def test_entities_and_markup_in_user_text_cannot_reach_phoneme_input(text):
    # Escaped into the SSML, ``&#91;`` stays those characters and tags stay text.
    said = espeak.phonemes(tts.ssml_for(text, Prosody()), "en-us")
    assert "h@l'oU" not in said and said.strip()
