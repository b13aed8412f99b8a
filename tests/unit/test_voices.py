"""The Polly voice table and its espeak-ng stand-ins, checked against the real espeak-ng."""
from __future__ import annotations

import subprocess
from functools import lru_cache

import botocore.session
import pytest

from cpaas.telephony import voices
from cpaas.telephony.voices import KNOWN_VOICES, UnknownVoice, espeak_voice, lookup

REQUIRED_LANGUAGES = (
    "en-US", "en-GB", "en-IN", "en-AU", "hi-IN", "es-ES", "es-US", "fr-FR", "de-DE", "it-IT", "pt-BR", "ja-JP",
)
REQUIRED_VOICES = (
    "Joanna Matthew Raveena Aditi Kajal Ivy Kendra Kimberly Salli Joey Justin Kevin Ruth Stephen Amy Emma "
    "Brian Arthur Nicole Olivia Russell Lupe Penelope Miguel Pedro Conchita Lucia Enrique Celine Lea Mathieu "
    "Marlene Vicki Hans Daniel Carla Bianca Giorgio Adriano Camila Vitoria Ricardo Thiago Mizuki Takumi "
    "Kazuha Tomoko"
).split()


@lru_cache(maxsize=None)
def espeak_listing() -> tuple[frozenset[str], frozenset[str]]:
    """(languages, variant file names) as ``espeak-ng --voices`` lists them."""
    languages = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True).stdout
    variants = subprocess.run(
        ["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True
    ).stdout
    langs = frozenset(line.split()[1] for line in languages.splitlines()[1:] if line.strip())
    names = frozenset(
        line.split()[4].removeprefix("!v/") for line in variants.splitlines()[1:] if "!v/" in line
    )
    return langs, names


@lru_cache(maxsize=None)
def polly_enums() -> dict[str, set[str]]:
    """Polly's own VoiceId, LanguageCode and Engine enums from botocore's service model."""
    model = botocore.session.get_session().get_service_model("polly")
    return {name: set(model.shape_for(name).enum) for name in ("VoiceId", "LanguageCode", "Engine")}


def test_required_voices_and_languages_are_covered():
    assert set(REQUIRED_VOICES) <= set(KNOWN_VOICES)
    spoken = {language for voice in KNOWN_VOICES.values() for language in voice.languages}
    assert set(REQUIRED_LANGUAGES) <= spoken


def test_table_agrees_with_polly_service_model():
    enums = polly_enums()
    for voice in KNOWN_VOICES.values():
        assert voice.name in enums["VoiceId"], voice.name
        assert set(voice.languages) <= enums["LanguageCode"], voice.name
        assert voice.engines <= enums["Engine"], voice.name
        assert voice.engines & {"standard", "neural"}, f"{voice.name} unusable with the API's engine types"
        assert voice.gender in ("Female", "Male")
    assert voices.LANGUAGE_CODES <= enums["LanguageCode"]


def test_known_engine_support():
    assert lookup("Joanna").engines == {"standard", "neural"}
    assert lookup("Raveena").engines == {"standard"}
    assert lookup("Kajal").engines == {"neural"}
    assert lookup("Kevin").supports("neural") and not lookup("Kevin").supports("standard")


def test_every_voice_maps_to_an_espeak_voice_that_exists():
    languages, variants = espeak_listing()
    for voice in KNOWN_VOICES.values():
        for language_code in voice.languages:
            language, _, variant = espeak_voice(voice, language_code).partition("+")
            assert language in languages, (voice.name, language)
            assert variant in variants, (voice.name, variant)


def test_every_espeak_voice_actually_speaks():
    names = {espeak_voice(v, code) for v in KNOWN_VOICES.values() for code in v.languages}
    for name in sorted(names):
        proc = subprocess.run(["espeak-ng", "-v", name, "--stdout", "1"], capture_output=True, check=False)
        assert proc.returncode == 0 and len(proc.stdout) > 1000, name


def test_gender_picks_the_variant():
    assert espeak_voice(lookup("Joanna"), "en-US") == "en-us+f3"
    assert espeak_voice(lookup("Matthew"), "en-US") == "en-us+m3"
    for voice in KNOWN_VOICES.values():
        assert voice.variant[0] == ("f" if voice.gender == "Female" else "m"), voice.name


def test_voices_of_one_language_and_gender_sound_different():
    en_us_female = [v.variant for v in KNOWN_VOICES.values() if v.language == "en-US" and v.gender == "Female"]
    assert len(set(en_us_female)) == len(voices.FEMALE_VARIANTS)


def test_language_code_only_switches_a_bilingual_voice():
    assert espeak_voice(lookup("Aditi"), "hi-IN").startswith("hi+")
    assert espeak_voice(lookup("Aditi"), "en-IN").startswith("en-gb+")
    # The spec's own example: Raveena with language_code en-US speaks Indian English.
    assert espeak_voice(lookup("Raveena"), "en-US").startswith("en-gb+")
    assert espeak_voice(lookup("Lupe"), "es-US").startswith("es-419+")
    assert espeak_voice(lookup("Mizuki"), "ja-JP").startswith("ja+")


def test_unknown_voice_lists_the_known_names():
    with pytest.raises(UnknownVoice) as err:
        lookup("Nobody")
    message = str(err.value)
    assert "Nobody" in message
    assert all(name in message for name in ("Joanna", "Raveena", "Matthew", "Takumi"))
    assert isinstance(err.value, ValueError)


def test_names_are_case_sensitive_with_a_hint():
    with pytest.raises(UnknownVoice, match="did you mean 'Joanna'"):
        lookup("joanna")


def test_non_string_name_is_unknown():
    with pytest.raises(UnknownVoice):
        lookup(None)  # type: ignore[arg-type]
