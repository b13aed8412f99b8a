"""TTS rendering with the real espeak-ng and sox; Polly through botocore's own Stubber."""
from __future__ import annotations

import dataclasses
import io
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from cpaas.telephony import audio, espeak, tts
from cpaas.telephony.tts import Prosody
from cpaas.telephony.voices import UnknownVoice

TEMPLATE = "Your one time password is {otp}. I repeat, {otp}."


def render(tmp_path: Path, name: str, template: str = TEMPLATE, otp: str = "1987", **prosody: str) -> Path:
    return tts.render_otp(template, otp, Prosody(**prosody), tmp_path / f"{name}.wav")


def phonemes(ssml: str, voice: str = "en-us") -> str:
    """What espeak-ng would say for ``ssml``, as phoneme mnemonics."""
    return subprocess.run(
        ["espeak-ng", "-m", "-q", "-x", "-v", voice], input=ssml, capture_output=True, text=True, check=True
    ).stdout


# --- rendering ---------------------------------------------------------------------

def test_otp_audio_is_telephone_format_with_speech(tmp_path):
    path = render(tmp_path, "otp")
    assert audio.is_audio_wav(path)
    fmt = audio.info(path)
    assert (fmt.rate, fmt.channels, fmt.bits, fmt.encoding) == (8000, 1, 16, "Signed Integer PCM")
    assert audio.rms(path) > 0.01
    # Two sentences with eight digits read one by one: a few seconds, not a blip or a minute.
    assert 3.0 < audio.duration(path) < 15.0


def test_otp_digits_are_read_one_by_one():
    assert tts.speak_digits("1987") == "1, 9, 8, 7"
    assert tts.speak_digits("A7") == "A, 7"
    said = phonemes(tts.ssml_for(TEMPLATE.replace("{otp}", tts.speak_digits("1987")), Prosody()))
    assert "n'aIn" in said and "s'Ev@n" in said
    assert "h'VndrI2d" not in said  # not "nineteen hundred and eighty-seven"


@pytest.mark.parametrize("otp", ["", "12 34", "1<2", "１２", "1" * 33, None])
def test_malformed_otp_is_refused(otp):
    with pytest.raises(ValueError):
        tts.speak_digits(otp)


def test_template_without_placeholder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="placeholder"):
        tts.render_otp("Hello there.", "1234", Prosody(), tmp_path / "x.wav")


def test_repeat_is_not_a_render_parameter(tmp_path):
    # A caller passing repeat where dst goes gets a clear error, not a file named "2".
    with pytest.raises(TypeError, match="Play"):
        tts.render_otp(TEMPLATE, "1234", Prosody(), 2, tmp_path / "x.wav")  # type: ignore[arg-type]


def test_slow_is_longer_than_fast(tmp_path):
    durations = {rate: audio.duration(render(tmp_path, rate, rate=rate)) for rate in tts.RATES}
    ordered = [durations[rate] for rate in tts.RATES]
    assert ordered == sorted(ordered, reverse=True)
    assert durations["slow"] > durations["fast"] * 1.2


def test_volume_levels_are_ordered_and_never_clip(tmp_path):
    levels = {volume: render(tmp_path, volume, volume=volume) for volume in tts.VOLUMES}
    assert audio.peak(levels["x-loud"]) < 1.0
    assert audio.peak_dbfs(levels["x-loud"]) < -0.5
    assert audio.rms(levels["x-soft"]) < audio.rms(levels["loud"])
    loudness = [audio.rms(levels[v]) for v in tts.VOLUMES]
    assert loudness == sorted(loudness)


def test_silent_is_silence_as_long_as_the_speech(tmp_path):
    silent = render(tmp_path, "silent", volume="silent")
    spoken = render(tmp_path, "medium", volume="medium")
    assert audio.rms(silent) == 0.0
    assert audio.info(silent).is_telephone
    assert audio.duration(silent) == pytest.approx(audio.duration(spoken), rel=0.05)


def test_pitch_changes_the_audio(tmp_path):
    low = render(tmp_path, "low", pitch="x-low").read_bytes()
    high = render(tmp_path, "high", pitch="x-high").read_bytes()
    assert low != high


@pytest.mark.parametrize(
    ("voice", "language_code", "text"),
    [
        ("Joanna", "en-US", "Your code is {otp}."),
        ("Amy", "en-GB", "Your code is {otp}."),
        ("Raveena", "en-US", "Your code is {otp}."),  # the spec's example pairing
        ("Nicole", "en-AU", "Your code is {otp}."),
        ("Aditi", "hi-IN", "आपका कोड {otp} है।"),
        ("Conchita", "es-ES", "Su código es {otp}."),
        ("Penelope", "es-US", "Su código es {otp}."),
        ("Celine", "fr-FR", "Votre code est {otp}."),
        ("Hans", "de-DE", "Ihr Code ist {otp}."),
        ("Giorgio", "it-IT", "Il tuo codice è {otp}."),
        ("Ricardo", "pt-BR", "Seu código é {otp}."),
        ("Mizuki", "ja-JP", "コードは {otp} です。"),
    ],
)
def test_required_languages_render(tmp_path, voice, language_code, text):
    path = render(tmp_path, voice, template=text, otp="4821", voice=voice, language_code=language_code)
    assert audio.info(path).is_telephone
    assert audio.rms(path) > 0.01


def test_thirteen_word_sentence_renders(tmp_path):
    text = "The quick brown fox jumps over the lazy dog near the river bank."
    assert len(text.split()) == 13
    path = tts.render_text(text, Prosody(voice="Matthew"), tmp_path / "fox.wav")
    assert 2.0 < audio.duration(path) < 8.0


def test_render_text_refuses_empty_text(tmp_path):
    with pytest.raises(ValueError):
        tts.render_text("   ", Prosody(), tmp_path / "x.wav")


# --- SSML safety ---------------------------------------------------------------------

INJECTION = 'Code </prosody><audio src="x"/> <break time="10s"/> a < b & c "q" {otp}'


def test_ssml_escapes_user_text():
    ssml = tts.ssml_for(INJECTION, Prosody(rate="slow"))
    root = ET.fromstring(ssml)
    assert root.tag == "speak" and len(root) == 1
    prosody = root[0]
    assert prosody.tag == "prosody" and len(prosody) == 0  # no injected elements
    assert prosody.text == INJECTION
    assert prosody.attrib == {"rate": "slow", "pitch": "medium", "volume": "medium"}


def test_injected_markup_still_renders_and_is_not_obeyed(tmp_path):
    path = render(tmp_path, "inject", template=INJECTION)
    assert audio.info(path).is_telephone and audio.rms(path) > 0.01
    # An obeyed <break time="10s"/> would add ten seconds of pause.
    assert audio.duration(path) < 10.0


def test_control_characters_are_dropped():
    ssml = tts.ssml_for("a\x00b\x1bc\ufffed", Prosody())
    assert ET.fromstring(ssml)[0].text == "abcd"


def test_text_that_looks_like_options_is_spoken(tmp_path):
    # Text reaches espeak-ng in memory: option-like text is just words, and writes no file.
    path = tts.render_text("-w /tmp/x.wav --help", Prosody(), tmp_path / "opts.wav")
    assert audio.rms(path) > 0.01
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opts.wav"]


def test_neural_ssml_has_no_pitch():
    ssml = tts.ssml_for("hi", Prosody(voice="Kajal", engine_type="neural", pitch="x-high"))
    assert ET.fromstring(ssml)[0].attrib == {"rate": "medium", "volume": "medium"}


def test_overlong_text_is_refused():
    with pytest.raises(ValueError):
        tts.ssml_for("a" * (tts.MAX_TEXT_CHARS + 1), Prosody())


# --- prosody validation --------------------------------------------------------------

@pytest.mark.parametrize(
    "fields",
    [
        {"rate": '"><audio src="x"/>'},
        {"volume": "x- soft"},
        {"volume": "louder"},
        {"pitch": "x-higher"},
        {"engine_type": "generative"},
        {"language_code": "xx-XX"},
    ],
)
def test_values_outside_the_spec_are_refused(fields):
    with pytest.raises(ValueError):
        Prosody(**fields)


def test_unknown_voice_raises_with_the_known_list(tmp_path):
    with pytest.raises(UnknownVoice) as err:
        tts.render_otp(TEMPLATE, "1234", Prosody(voice="Nobody"), tmp_path / "x.wav")
    assert "Joanna" in str(err.value) and "Raveena" in str(err.value)
    assert not list(tmp_path.iterdir())


def test_engine_must_be_one_the_voice_has():
    with pytest.raises(ValueError, match="neural"):
        Prosody(voice="Kajal")  # default engine is standard; Kajal is neural-only
    with pytest.raises(ValueError, match="standard"):
        Prosody(voice="Raveena", engine_type="neural")
    assert Prosody(voice="Kajal", engine_type="neural").voice == "Kajal"


def test_from_request_uses_spec_names_and_defaults():
    body = {
        "customer_number": "91997927XXXX", "otp": "1987", "repeat": "1", "voice": "Raveena",
        "volume": "soft", "rate": "slow", "pitch": "medium", "language_code": "en-US",
        "tts_engine_type": "standard",
    }
    assert Prosody.from_request(body) == Prosody("Raveena", "soft", "slow", "medium", "en-US", "standard")
    assert Prosody.from_request({"voice": "", "rate": None}) == Prosody()
    with pytest.raises(ValueError):
        Prosody.from_request({"rate": 3})


# --- cache ---------------------------------------------------------------------------

def test_render_cached_reuses_the_same_file(tmp_path):
    first = tts.render_cached("Welcome to the campaign.", Prosody(), tmp_path)
    stamp = first.stat().st_mtime_ns
    again = tts.render_cached("Welcome to the campaign.", Prosody(), tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    other = tts.render_cached("Welcome to the campaign.", Prosody(rate="slow"), tmp_path)
    assert other != first
    assert audio.duration(other) > audio.duration(first)


def test_cache_key_covers_text_every_parameter_and_backend():
    base = Prosody()
    alternatives = {
        "voice": "Salli", "volume": "loud", "rate": "fast", "pitch": "low",
        "language_code": "en-GB", "engine_type": "neural",
    }
    assert set(alternatives) == {f.name for f in dataclasses.fields(Prosody)}
    keys = {tts.cache_key("hello", base, "espeak"), tts.cache_key("hello!", base, "espeak"),
            tts.cache_key("hello", base, "polly")}
    for name, value in alternatives.items():
        keys.add(tts.cache_key("hello", dataclasses.replace(base, **{name: value}), "espeak"))
    assert len(keys) == 3 + len(alternatives)


def test_otp_rendering_writes_only_its_destination(tmp_path):
    render(tmp_path, "call-1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call-1.wav"]


# --- backends ------------------------------------------------------------------------

def test_espeak_library_failure_is_a_tts_error_and_leaves_no_file(tmp_path, monkeypatch):
    def unavailable(*_args):
        raise espeak.EspeakUnavailable("cannot load libespeak-ng.so.1")

    monkeypatch.setattr(espeak, "synthesize", unavailable)
    with pytest.raises(tts.TTSError, match="cannot load"):
        render(tmp_path, "call-1")
    assert list(tmp_path.iterdir()) == []


def test_get_backend():
    assert isinstance(tts.get_backend("espeak"), tts.EspeakBackend)
    assert isinstance(tts.get_backend("polly"), tts.PollyBackend)
    assert isinstance(tts.get_backend("espeak"), tts.TTSBackend)
    with pytest.raises(ValueError):
        tts.get_backend("festival")


@pytest.fixture
def polly():
    client = boto3.client(
        "polly", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def pcm_response(seconds: float) -> dict:
    # A real tone, made by sox, as the raw 16-bit PCM Polly returns.
    pcm = subprocess.run(
        ["sox", "-D", "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw", "-",
         "synth", str(seconds), "sine", "440", "vol", "0.5"],
        capture_output=True, check=True,
    ).stdout
    return {"AudioStream": StreamingBody(io.BytesIO(pcm), len(pcm)), "ContentType": "audio/pcm",
            "RequestCharacters": 20}


def test_polly_request_and_wav(tmp_path, polly):
    client, stubber = polly
    prosody = Prosody(voice="Joanna", rate="slow", volume="loud")
    template = "Your code is {otp}. <b>"
    ssml = tts.ssml_for(template.replace("{otp}", tts.speak_digits("1987")), prosody)
    stubber.add_response("synthesize_speech", pcm_response(1.25), {
        "Text": ssml, "TextType": "ssml", "OutputFormat": "pcm", "SampleRate": "8000",
        "VoiceId": "Joanna", "Engine": "standard", "LanguageCode": "en-US",
    })
    path = tts.render_otp(template, "1987", prosody, tmp_path / "polly.wav", backend=tts.PollyBackend(client))
    assert audio.is_audio_wav(path)
    fmt = audio.info(path)
    assert fmt.is_telephone
    assert fmt.duration == pytest.approx(1.25, abs=0.001)
    assert audio.rms(path) > 0.3


def test_polly_language_code_only_for_a_voice_that_speaks_it(tmp_path, polly):
    client, stubber = polly
    backend = tts.PollyBackend(client)
    raveena = Prosody(voice="Raveena", language_code="en-US")
    stubber.add_response("synthesize_speech", pcm_response(0.5), {
        "Text": tts.ssml_for("hello", raveena), "TextType": "ssml", "OutputFormat": "pcm",
        "SampleRate": "8000", "VoiceId": "Raveena", "Engine": "standard",
    })
    kajal = Prosody(voice="Kajal", language_code="hi-IN", engine_type="neural")
    stubber.add_response("synthesize_speech", pcm_response(0.5), {
        "Text": tts.ssml_for("नमस्ते", kajal), "TextType": "ssml", "OutputFormat": "pcm",
        "SampleRate": "8000", "VoiceId": "Kajal", "Engine": "neural", "LanguageCode": "hi-IN",
    })
    tts.render_text("hello", raveena, tmp_path / "r.wav", backend=backend)
    tts.render_text("नमस्ते", kajal, tmp_path / "k.wav", backend=backend)
    assert audio.is_audio_wav(tmp_path / "r.wav") and audio.is_audio_wav(tmp_path / "k.wav")


def test_polly_errors_become_tts_errors_and_leave_no_file(tmp_path, polly):
    client, stubber = polly
    stubber.add_client_error(
        "synthesize_speech", service_error_code="InvalidSsmlException", service_message="bad", http_status_code=400
    )
    with pytest.raises(tts.TTSError, match="InvalidSsml"):
        tts.render_text("hello", Prosody(), tmp_path / "x.wav", backend=tts.PollyBackend(client))
    assert not list(tmp_path.iterdir())
