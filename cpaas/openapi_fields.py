"""JSON Schema of the project's marshmallow fields, for apispec's MarshmallowPlugin.

Each custom field reads its input more generously than a bare ``type: string`` says
(numbers for strings, digit strings for numbers, spaces trimmed around ids, the spec's
date formats), and refuses what a bare type would allow (control characters, unknown
names, impossible dates). The fragments below state both sides, so that a value is valid
under the document exactly when the field accepts it.

Patterns use only syntax that ECMA 262, Python's ``re`` and Rust's ``regex`` read alike:
no ``\\s``/``\\d`` (their sets differ between engines), code points spelled ``\\u`` and four hex digits.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Callable

from marshmallow import fields

from cpaas import storage, validation as v

#: JSON Schema fragment builders, looked up along a field's class hierarchy.
_BUILDERS: dict[type, Callable[[Any], dict[str, Any]]] = {}

INT_DIGITS = 12  # IntLike refuses 13 digits and more (the database's integers are bounded)
_CONTROL = r"\u0000-\u001f\u007f"
_CONTROL_NOT_NEWLINE = r"\u0000-\u0009\u000b-\u001f\u007f"


def builds(*classes: type) -> Callable:
    """Register a fragment builder for ``classes`` (and their subclasses)."""

    def wrap(func: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
        for cls in classes:
            _BUILDERS[cls] = func
        return func

    return wrap


def field_schema(field: fields.Field) -> dict[str, Any] | None:
    """The fragment for ``field``'s most specific registered class, or None."""
    for cls in type(field).__mro__:
        if cls in _BUILDERS:
            return _BUILDERS[cls](field)
    return None


def attribute_function(self: Any, field: fields.Field, ret: dict[str, Any], **kwargs: Any) -> dict:
    """apispec attribute function: replace the generic type with the field's own schema."""
    fragment = field_schema(field)
    if fragment is None:
        return {}
    for key in ("type", "format", "pattern", "maxLength", "minLength", "enum", "minimum",
                "maximum", "items", "additionalProperties"):
        ret.pop(key, None)
    return fragment


# --- character classes -----------------------------------------------------------------

def _escape(cp: int) -> str:
    # Astral code points go in literally: \\U.../\\u{...} are not read alike by every engine.
    return f"\\u{cp:04x}" if cp <= 0xFFFF else chr(cp)


def _class(codepoints: list[int], negate: bool = False) -> str:
    ranges: list[tuple[int, int]] = []
    for cp in codepoints:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    body = "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in ranges)
    return f"[{'^' if negate else ''}{body}]"


@lru_cache(maxsize=None)
def _whitespace() -> list[int]:
    return [cp for cp in range(0x3001) if chr(cp).isspace()]  # none lies above U+3000


@lru_cache(maxsize=None)
def ws() -> str:
    """One character that Python's ``str.strip()`` removes."""
    return _class(_whitespace())


@lru_cache(maxsize=None)
def printable() -> str:
    """One character for which ``str.isprintable()`` holds."""
    refused = [cp for cp in range(0x110000) if not chr(cp).isprintable()]
    return _class(refused, negate=True)


def _trimmed(core: str) -> str:
    return f"^{ws()}*{core}{ws()}*$"


# --- numbers ---------------------------------------------------------------------------

def _digits_range(a: int, b: int, width: int) -> str:
    """Regex of the numbers a..b written with exactly ``width`` digits."""
    if width == 1:
        return str(a) if a == b else f"[{a}-{b}]"
    p = 10 ** (width - 1)
    da, db, ra, rb = a // p, b // p, a % p, b % p
    if da == db:
        return f"{da}{_digits_range(ra, rb, width - 1)}"
    parts, start, end, tail = [], da, db, None
    if ra:
        parts.append(f"{da}{_digits_range(ra, p - 1, width - 1)}")
        start = da + 1
    if rb != p - 1:
        tail, end = f"{db}{_digits_range(0, rb, width - 1)}", db - 1
    if start <= end:
        first = str(start) if start == end else f"[{start}-{end}]"
        parts.append(f"{first}[0-9]{{{width - 1}}}")
    if tail:
        parts.append(tail)
    return parts[0] if len(parts) == 1 else f"(?:{'|'.join(parts)})"


def digit_string(lo: int, hi: int, max_digits: int = INT_DIGITS) -> str:
    """Regex of the digit strings (leading zeros allowed, at most ``max_digits`` digits)
    whose value lies in lo..hi, lo >= 0; ``-0…`` too when 0 is in range."""
    alternatives = []
    for width in range(1, len(str(hi)) + 1):
        a, b = max(lo, 0 if width == 1 else 10 ** (width - 1)), min(hi, 10 ** width - 1)
        if a <= b:
            zeros = f"0{{0,{max_digits - width}}}" if max_digits > width else ""
            alternatives.append(zeros + _digits_range(a, b, width))
    if lo == 0:
        alternatives.append(f"-0{{1,{max_digits}}}")
    return f"(?:{'|'.join(alternatives)})"


@builds(v.IntLike)
def _int_like(field: v.IntLike) -> dict[str, Any]:
    top = 10 ** INT_DIGITS - 1
    lo = field.minimum if field.minimum is not None else -top
    hi = field.maximum if field.maximum is not None else top
    if lo < 0:
        # Every IntLike of the API is a count or a code (minimum >= 0); a signed one would
        # need a pattern for signed digit strings, so building the document refuses it.
        raise ValueError(f"IntLike field {field.name!r} has no minimum >= 0; the document "
                         "describes only non-negative whole numbers")
    return {"anyOf": [{"type": "integer", "minimum": lo, "maximum": hi},
                      {"type": "string", "pattern": _trimmed(digit_string(lo, hi))}],
            "description": "a whole number, or the same as a string of digits"}


def int_like_value(value: int) -> dict[str, Any]:
    """Exactly ``value``, as IntLike reads it (for cross-field rules)."""
    return {"anyOf": [{"type": "integer", "minimum": value, "maximum": value},
                      {"type": "string", "pattern": _trimmed(digit_string(value, value))}]}


# --- strings ---------------------------------------------------------------------------

@builds(v.Phone)
def _phone(field: fields.Field) -> dict[str, Any]:
    return {"anyOf": [{"type": "string", "pattern": v.PHONE_RE.pattern},
                      {"type": "integer", "minimum": 10 ** 7, "maximum": 10 ** 15 - 1}]}


@builds(v.TransferTarget)
def _transfer_target(field: fields.Field) -> dict[str, Any]:
    return transfer_target()


def transfer_target() -> dict[str, Any]:
    """An agent extension or a phone number, as TransferTarget reads them."""
    return {"anyOf": [{"type": "string", "pattern": "^(?:[0-9]{2,6}|\\+?[0-9]{8,15})$"},
                      {"type": "integer", "minimum": 10, "maximum": 999999},
                      {"type": "integer", "minimum": 10 ** 7, "maximum": 10 ** 15 - 1}]}


def choice_values(choices: tuple[str, ...], aliases: dict[str, str]) -> dict[str, Any]:
    """A Choice's accepted spellings: strings, and numbers whose digits name a choice."""
    spellings = list(choices) + [a for a in aliases if a not in choices]
    numbers = [int(s) for s in spellings if s.isdigit() and str(int(s)) == s]
    strings = {"type": "string", "enum": spellings}
    return {"anyOf": [strings, {"type": "integer", "enum": numbers}]} if numbers else strings


@builds(v.Choice)
def _choice(field: v.Choice) -> dict[str, Any]:
    return choice_values(field.choices, field.aliases)


@builds(v.PrefixedId)
def _prefixed_id(field: v.PrefixedId) -> dict[str, Any]:
    return {"type": "string", "pattern": _trimmed(field.pattern.pattern[1:-1])}


def text_schema(max_length: int, min_length: int = 0, multiline: bool = False,
                strip: bool = False) -> dict[str, Any]:
    """A :class:`~cpaas.validation.Text` value: a string (or a number, read as its digits)."""
    control = _CONTROL_NOT_NEWLINE if multiline else _CONTROL
    if strip:
        edge = f"[^{control}{''.join(_escape(c) for c in _whitespace())}]"
        middle = f"[^{control}]"
        core = edge if max_length == 1 else f"{edge}(?:{middle}{{0,{max_length - 2}}}{edge})?"
        string = {"type": "string", "pattern": _trimmed(core if min_length else f"(?:{core})?")}
    else:
        string = {"type": "string", "pattern": f"^[^{control}]*$", "maxLength": max_length}
        if min_length:
            string["minLength"] = min_length
    # str() of a float is at most 24 characters; integers are bounded by their digits.
    number = {"type": "number" if max_length >= 24 else "integer",
              "minimum": -(10 ** (max_length - 1) - 1), "maximum": 10 ** max_length - 1}
    return {"anyOf": [string, number]}


@builds(v.Text)
def _text(field: v.Text) -> dict[str, Any]:
    return text_schema(field.max_length, field.min_length, field.multiline, field.strip)


@builds(v.TimeZone)
def _time_zone(field: fields.Field) -> dict[str, Any]:
    names = "|".join(re.escape(z).replace("\\/", "/") for z in sorted(v._zones()))
    return {"type": "string", "pattern": _trimmed(f"(?:{names})"),
            "example": "Asia/Kolkata"}


# Python's strptime: %m and %d take one or two digits (%d also " 7"), years 1900-9998
# (v.MIN_YEAR..v.MAX_YEAR); the day must exist in its month.
_YEAR = "(?:19[0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
_LEAP = ("(?:19(?:0[48]|[2468][048]|[13579][26])|[2-9][0-9](?:0[48]|[2468][048]|[13579][26])"
         "|(?:[2468][048]|[3579][26])00)")
_DAY28 = "(?:1[0-9]|2[0-8]|0?[1-9]| [1-9])"
_MONTH_DAY = (f"(?:(?:0?[13578]|1[02])-(?:3[01]|30|29|{_DAY28})"
              f"|(?:0?[469]|11)-(?:30|29|{_DAY28})|0?2-{_DAY28})")
DATE = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP}-0?2-29)"
_CLOCK = "(?:2[0-3]|[01][0-9]|[0-9]):(?:[0-5][0-9]|[0-9]):(?:[0-5][0-9]|[0-9])"
_ISO = ("T(?:2[0-3]|[01][0-9]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{3}(?:[0-9]{3})?)?)?"
        "(?:Z|[+-](?:2[0-3]|[01][0-9]):[0-5][0-9])?")


@builds(v.LocalDateTime)
def _local_datetime(field: v.LocalDateTime) -> dict[str, Any]:
    plain = f"{ws()}*{_CLOCK}"
    iso = f"|(?:{_YEAR}-(?:{_strict_month_day()})|{_LEAP}-02-29){_ISO}" if field.iso else ""
    return {"type": "string", "pattern": _trimmed(f"(?:{DATE}{plain}{iso})"),
            "example": "2030-08-15 12:55:00"}


def _strict_month_day() -> str:
    # ISO 8601 (fromisoformat) wants two-digit months and days (29 February: leap years).
    return ("(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
            "|02-(?:0[1-9]|1[0-9]|2[0-8])")


@builds(v.Date)
def _date(field: fields.Field) -> dict[str, Any]:
    return {"type": "string", "pattern": _trimmed(DATE), "example": "2030-08-15"}


_STATUS = "(?:" + "|".join(
    "".join(f"[{c}{c.lower()}]" for c in status)
    for status in (*v.DIAL_STATUSES, "NOANSER")) + ")"


@builds(v.RetryStatuses)
def _retry_statuses(field: fields.Field) -> dict[str, Any]:
    item, blank = f"{ws()}*{_STATUS}{ws()}*", f"{ws()}*"
    return {"anyOf": [
        {"type": "array", "items": {"type": "string", "pattern": f"^(?:{item}|{blank})$"},
         "not": {"items": {"pattern": f"^{blank}$"}}},
        {"type": "string", "pattern": f"^(?:{blank},)*{item}(?:,{blank}(?:{_STATUS}{blank})?)*$"},
    ], "example": "NOANSWER,BUSY"}


def file_name_schema(suffix: str | None = None) -> dict[str, Any]:
    """A plain file name as :func:`cpaas.storage.account_key` takes it (spaces around
    trimmed; no ``..``), optionally with a required suffix such as ``.wav``."""
    assert storage.FILE_NAME_RE.pattern == r"^[A-Za-z0-9][A-Za-z0-9 _.()+-]{0,199}$"
    char = "[A-Za-z0-9 _()+-]"
    body = f"[A-Za-z0-9](?:\\.?{char})*\\.?"
    if suffix:
        ext = "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in suffix)
        body = f"[A-Za-z0-9](?:\\.?{char})*{ext}"
    return {"type": "string", "pattern": _trimmed(body)}


def stored_file_name(max_length: int) -> dict[str, Any]:
    """A trimmed :class:`~cpaas.validation.Text` that names a stored file (a number is read
    as its digits, so only a negative one is refused)."""
    text = text_schema(max_length, strip=True)["anyOf"][0]
    return {"anyOf": [{"allOf": [text, file_name_schema()]},
                      {"type": "number", "minimum": 0, "maximum": 10 ** max_length - 1}]}


# --- fields of the feature schemas -----------------------------------------------------

def _register_feature_fields() -> None:
    from cpaas.calls import schemas as calls
    from cpaas.campaigns import hours, schemas as campaigns

    @builds(calls.Otp)
    def _otp(field: v.Text) -> dict[str, Any]:
        # Trimmed after the control-character check: only non-control spaces may surround it.
        space = _class([c for c in _whitespace() if c > 0x1f])
        return {"anyOf": [{"type": "string", "maxLength": field.max_length,
                           "pattern": f"^{space}*[0-9]{{4,10}}{space}*$"},
                          {"type": "integer", "minimum": 1000, "maximum": 10 ** 10 - 1}]}

    @builds(calls.OptionalTransferTarget)
    def _optional_target(field: fields.Field) -> dict[str, Any]:
        return {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 0},
                          *transfer_target()["anyOf"]]}

    @builds(calls.TemplateText)
    def _template(field: v.Text) -> dict[str, Any]:
        other = f"[^{{}}{_CONTROL}]"
        return {"type": "string", "maxLength": field.max_length,
                "pattern": f"^{other}*\\{{otp\\}}{other}*$", "example": "Your code is {otp}"}

    @builds(calls.Channel)
    def _channel(field: v.Text) -> dict[str, Any]:
        space = _class([c for c in _whitespace() if c > 0x1f])
        core = calls.CHANNEL_RE.pattern[1:-1]
        # A number is read as its digits: str() of a float below 1e16 has no "+".
        return {"anyOf": [{"type": "string", "maxLength": field.max_length,
                           "pattern": f"^{space}*{core}{space}*$"},
                          {"type": "integer", "minimum": -(10 ** 63 - 1), "maximum": 10 ** 64 - 1},
                          {"type": "number", "exclusiveMinimum": -1e16, "exclusiveMaximum": 1e16}]}

    @builds(campaigns.VoiceName)
    def _voice(field: fields.Field) -> dict[str, Any]:
        from cpaas.telephony import voices

        return {"type": "string", "enum": sorted(voices.KNOWN_VOICES)}

    @builds(campaigns.OptionalDndListId)
    def _optional_id(field: v.PrefixedId) -> dict[str, Any]:
        return {"type": ["string", "null"], "pattern": _trimmed(f"(?:{field.pattern.pattern[1:-1]})?")}

    @builds(campaigns.CallingHours)
    def _calling_hours(field: fields.Field) -> dict[str, Any]:
        # The order of start and end is a rule in words (openapi_rules).
        return {"type": ["string", "null"], "pattern": _trimmed(f"(?:{hours.HOURS_RE.pattern})?"),
                "example": "09:00-21:00"}

    @builds(campaigns.IvrDigitMap)
    def _ivr_digit_map(field: fields.Field) -> dict[str, Any]:
        return {"type": ["object", "null"], "maxProperties": campaigns.MAX_IVR_MAP_ENTRIES,
                "propertyNames": {"pattern": f"^{campaigns.IVR_KEYS_RE.pattern}$"},
                "additionalProperties": {"type": "string",
                                         "pattern": f"^{campaigns.IVR_TARGET_RE.pattern}$"},
                "example": {"0": "agent:102", "9": "number:919900000001"}}

    @builds(campaigns.ContactFields)
    def _contact_fields(field: fields.Field) -> dict[str, Any]:
        value = {"anyOf": [{"type": "string", "maxLength": 500, "pattern": f"^{printable()}*$"},
                           {"type": "number", "minimum": -(10 ** 499 - 1), "maximum": 10 ** 500 - 1}]}
        return {"type": "object", "maxProperties": campaigns.MAX_CONTACT_FIELDS,
                "propertyNames": {"minLength": 1, "maxLength": 64, "pattern": f"^{printable()}*$"},
                "additionalProperties": value, "example": {"field1": "Mr. Smith"}}


_register_feature_fields()
