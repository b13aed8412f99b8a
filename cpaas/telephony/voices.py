"""Amazon Polly voice names and the local espeak-ng voice each one stands in for.

The API accepts Polly voice ids (``voice``), Polly language codes (``language_code``) and
Polly engine types (``tts_engine_type``), so a request is valid or invalid exactly as it
would be against Polly, whichever TTS backend renders it.

Coverage: every Polly voice that the ``standard`` or ``neural`` engine can speak (the two
engine types the API allows), in every Polly language — taken from Polly's
``DescribeVoices`` catalogue. Voices that exist only for the ``long-form`` or
``generative`` engines (Patrick, Alba, Raul, …) are left out: no allowed
``tts_engine_type`` could ever select them.

Names are matched case-sensitively, as Polly's ``VoiceId`` is (``joanna`` is rejected by
Polly too); :class:`UnknownVoice` suggests the correctly cased name when there is one.

Offline, each voice maps to ``<espeak language>+<variant>``: the espeak-ng language
closest to the voice's language (espeak-ng has no Australian, Indian, Irish, … English,
so those use British English ``en-gb``) and a female (``f*``) or male (``m*``) variant.
Voices of one language and gender get different variants, in table order, so two voices
of a language sound different; the first voice listed of each gender gets ``f3``/``m3``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Gender = Literal["Female", "Male"]

#: Polly language code → espeak-ng language (a name ``espeak-ng --voices`` lists).
ESPEAK_LANGUAGES: dict[str, str] = {
    "arb": "ar",
    "ar-AE": "ar",
    "ca-ES": "ca",
    "cmn-CN": "cmn",
    "cs-CZ": "cs",
    "cy-GB": "cy",
    "da-DK": "da",
    "de-AT": "de",
    "de-CH": "de",
    "de-DE": "de",
    "en-AU": "en-gb",
    "en-GB": "en-gb",
    "en-GB-WLS": "en-gb",
    "en-IE": "en-gb",
    "en-IN": "en-gb",
    "en-NZ": "en-gb",
    "en-SG": "en-gb",
    "en-US": "en-us",
    "en-ZA": "en-gb",
    "es-ES": "es",
    "es-MX": "es-419",
    "es-US": "es-419",
    "fi-FI": "fi",
    "fr-BE": "fr-be",
    "fr-CA": "fr-fr",
    "fr-FR": "fr-fr",
    "hi-IN": "hi",
    "is-IS": "is",
    "it-IT": "it",
    "ja-JP": "ja",
    "ko-KR": "ko",
    "nb-NO": "nb",
    "nl-BE": "nl",
    "nl-NL": "nl",
    "pl-PL": "pl",
    "pt-BR": "pt-br",
    "pt-PT": "pt",
    "ro-RO": "ro",
    "ru-RU": "ru",
    "sv-SE": "sv",
    "tr-TR": "tr",
    "yue-CN": "yue",
}

#: espeak-ng variants handed out in order to the voices of one language and gender.
#: f1/m1 are "age 70" variants, so they come last.
FEMALE_VARIANTS = ("f3", "f2", "f4", "f5", "f1")
MALE_VARIANTS = ("m3", "m2", "m4", "m5", "m6", "m7", "m1")

_S = frozenset({"standard"})
_N = frozenset({"neural"})
_SN = frozenset({"standard", "neural"})

# (id, language, gender, engines, additional languages). Within a language the voice
# listed first for a gender gets the first variant, so the best-known voices come first.
_TABLE: tuple[tuple[str, str, Gender, frozenset[str], tuple[str, ...]], ...] = (
    # English (US)
    ("Joanna", "en-US", "Female", _SN, ()),
    ("Matthew", "en-US", "Male", _SN, ()),
    ("Salli", "en-US", "Female", _SN, ()),
    ("Kendra", "en-US", "Female", _SN, ()),
    ("Kimberly", "en-US", "Female", _SN, ()),
    ("Ivy", "en-US", "Female", _SN, ()),
    ("Ruth", "en-US", "Female", _N, ()),
    ("Danielle", "en-US", "Female", _N, ()),
    ("Joey", "en-US", "Male", _SN, ()),
    ("Justin", "en-US", "Male", _SN, ()),
    ("Kevin", "en-US", "Male", _N, ()),
    ("Stephen", "en-US", "Male", _N, ()),
    ("Gregory", "en-US", "Male", _N, ()),
    # English (British, Welsh, Australian, Indian, Irish, New Zealand, Singapore, South Africa)
    ("Amy", "en-GB", "Female", _SN, ()),
    ("Brian", "en-GB", "Male", _SN, ()),
    ("Emma", "en-GB", "Female", _SN, ()),
    ("Arthur", "en-GB", "Male", _N, ()),
    ("Geraint", "en-GB-WLS", "Male", _S, ()),
    ("Nicole", "en-AU", "Female", _S, ()),
    ("Russell", "en-AU", "Male", _S, ()),
    ("Olivia", "en-AU", "Female", _N, ()),
    ("Raveena", "en-IN", "Female", _S, ()),
    ("Aditi", "en-IN", "Female", _S, ("hi-IN",)),
    ("Kajal", "en-IN", "Female", _N, ("hi-IN",)),
    ("Niamh", "en-IE", "Female", _N, ()),
    ("Aria", "en-NZ", "Female", _N, ()),
    ("Jasmine", "en-SG", "Female", _N, ()),
    ("Ayanda", "en-ZA", "Female", _N, ()),
    # Spanish
    ("Conchita", "es-ES", "Female", _S, ()),
    ("Enrique", "es-ES", "Male", _S, ()),
    ("Lucia", "es-ES", "Female", _SN, ()),
    ("Sergio", "es-ES", "Male", _N, ()),
    ("Mia", "es-MX", "Female", _SN, ()),
    ("Andres", "es-MX", "Male", _N, ()),
    ("Lupe", "es-US", "Female", _SN, ()),
    ("Miguel", "es-US", "Male", _S, ()),
    ("Penelope", "es-US", "Female", _S, ()),
    ("Pedro", "es-US", "Male", _N, ()),
    # French
    ("Celine", "fr-FR", "Female", _S, ()),
    ("Mathieu", "fr-FR", "Male", _S, ()),
    ("Lea", "fr-FR", "Female", _SN, ()),
    ("Remi", "fr-FR", "Male", _N, ()),
    ("Chantal", "fr-CA", "Female", _S, ()),
    ("Gabrielle", "fr-CA", "Female", _N, ()),
    ("Liam", "fr-CA", "Male", _N, ()),
    ("Isabelle", "fr-BE", "Female", _N, ()),
    # German
    ("Marlene", "de-DE", "Female", _S, ()),
    ("Hans", "de-DE", "Male", _S, ()),
    ("Vicki", "de-DE", "Female", _SN, ()),
    ("Daniel", "de-DE", "Male", _N, ()),
    ("Hannah", "de-AT", "Female", _N, ()),
    ("Sabrina", "de-CH", "Female", _N, ()),
    # Italian
    ("Carla", "it-IT", "Female", _S, ()),
    ("Giorgio", "it-IT", "Male", _S, ()),
    ("Bianca", "it-IT", "Female", _SN, ()),
    ("Adriano", "it-IT", "Male", _N, ()),
    # Portuguese
    ("Camila", "pt-BR", "Female", _SN, ()),
    ("Ricardo", "pt-BR", "Male", _S, ()),
    ("Vitoria", "pt-BR", "Female", _SN, ()),
    ("Thiago", "pt-BR", "Male", _N, ()),
    ("Ines", "pt-PT", "Female", _SN, ()),
    ("Cristiano", "pt-PT", "Male", _S, ()),
    # Japanese
    ("Mizuki", "ja-JP", "Female", _S, ()),
    ("Takumi", "ja-JP", "Male", _SN, ()),
    ("Kazuha", "ja-JP", "Female", _N, ()),
    ("Tomoko", "ja-JP", "Female", _N, ()),
    # Other languages
    ("Zeina", "arb", "Female", _S, ()),
    ("Hala", "ar-AE", "Female", _N, ("arb",)),
    ("Zayd", "ar-AE", "Male", _N, ("arb",)),
    ("Arlet", "ca-ES", "Female", _N, ()),
    ("Zhiyu", "cmn-CN", "Female", _SN, ()),
    ("Hiujin", "yue-CN", "Female", _N, ()),
    ("Jitka", "cs-CZ", "Female", _N, ()),
    ("Gwyneth", "cy-GB", "Female", _S, ()),
    ("Naja", "da-DK", "Female", _S, ()),
    ("Mads", "da-DK", "Male", _S, ()),
    ("Sofie", "da-DK", "Female", _N, ()),
    ("Suvi", "fi-FI", "Female", _N, ()),
    ("Dora", "is-IS", "Female", _S, ()),
    ("Karl", "is-IS", "Male", _S, ()),
    ("Seoyeon", "ko-KR", "Female", _SN, ()),
    ("Jihye", "ko-KR", "Female", _N, ()),
    ("Liv", "nb-NO", "Female", _S, ()),
    ("Ida", "nb-NO", "Female", _N, ()),
    ("Lotte", "nl-NL", "Female", _S, ()),
    ("Ruben", "nl-NL", "Male", _S, ()),
    ("Laura", "nl-NL", "Female", _N, ()),
    ("Lisa", "nl-BE", "Female", _N, ()),
    ("Ewa", "pl-PL", "Female", _S, ()),
    ("Jacek", "pl-PL", "Male", _S, ()),
    ("Maja", "pl-PL", "Female", _S, ()),
    ("Jan", "pl-PL", "Male", _S, ()),
    ("Ola", "pl-PL", "Female", _N, ()),
    ("Carmen", "ro-RO", "Female", _S, ()),
    ("Tatyana", "ru-RU", "Female", _S, ()),
    ("Maxim", "ru-RU", "Male", _S, ()),
    ("Astrid", "sv-SE", "Female", _S, ()),
    ("Elin", "sv-SE", "Female", _N, ()),
    ("Filiz", "tr-TR", "Female", _S, ()),
    ("Burcu", "tr-TR", "Female", _N, ()),
)


@dataclass(frozen=True)
class Voice:
    """One Polly voice: its id, languages, gender, Polly engines and espeak-ng stand-in."""

    name: str
    language: str  # Polly's default language code for the voice
    gender: Gender
    engines: frozenset[str]
    variant: str  # espeak-ng variant, e.g. "f3"
    additional_languages: tuple[str, ...] = field(default=())

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language code the voice speaks, its default first."""
        return (self.language, *self.additional_languages)

    def supports(self, engine: str) -> bool:
        """Whether Polly offers this voice on ``engine`` (``standard`` or ``neural``)."""
        return engine in self.engines


class UnknownVoice(ValueError):
    """A voice name that is not a Polly voice id; the message lists the known ones."""

    def __init__(self, name: str) -> None:
        hint = next((known for known in KNOWN_VOICES if known.lower() == str(name).lower()), None)
        did_you_mean = f" (did you mean {hint!r}? names are case-sensitive)" if hint else ""
        super().__init__(
            f"unknown voice {name!r}{did_you_mean}; known voices: {', '.join(sorted(KNOWN_VOICES))}"
        )
        self.name = name


def _build(table: tuple[tuple[str, str, Gender, frozenset[str], tuple[str, ...]], ...]) -> dict[str, Voice]:
    """Assign each voice its espeak-ng variant: per language and gender, in table order."""
    used: dict[tuple[str, str], int] = {}
    voices: dict[str, Voice] = {}
    for name, language, gender, engines, extra in table:
        pool = FEMALE_VARIANTS if gender == "Female" else MALE_VARIANTS
        index = used.get((language, gender), 0)
        used[(language, gender)] = index + 1
        voices[name] = Voice(name, language, gender, engines, pool[index % len(pool)], extra)
    return voices


#: Polly voice id → :class:`Voice`, for every voice the ``standard``/``neural`` engines offer.
KNOWN_VOICES: dict[str, Voice] = _build(_TABLE)

#: Language codes a request may name (Polly's, each with an espeak-ng stand-in).
LANGUAGE_CODES: frozenset[str] = frozenset(ESPEAK_LANGUAGES)


def lookup(name: str) -> Voice:
    """The :class:`Voice` called ``name`` (case-sensitive, as Polly's ``VoiceId``).

    Raises :class:`UnknownVoice`, whose message lists the known names.
    """
    try:
        return KNOWN_VOICES[name]
    except (KeyError, TypeError):
        raise UnknownVoice(name) from None


def speaking_language(voice: Voice, language_code: str) -> str:
    """The language ``voice`` actually speaks when asked for ``language_code``.

    Like Polly, the language code only chooses between a bilingual voice's languages
    (Aditi/Kajal: en-IN or hi-IN); any other code leaves the voice in its own language,
    so the API's default ``en-US`` with ``Raveena`` speaks Indian English.
    """
    return language_code if language_code in voice.languages else voice.language


def espeak_voice(voice: Voice, language_code: str) -> str:
    """The espeak-ng ``-v`` argument standing in for ``voice`` speaking ``language_code``.

    For example ``en-us+f3`` for Joanna, ``en-gb+f3`` for Raveena and ``hi+f2`` for
    Aditi asked for ``hi-IN``.
    """
    return f"{ESPEAK_LANGUAGES[speaking_language(voice, language_code)]}+{voice.variant}"
