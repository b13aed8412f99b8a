"""marshmallow building blocks shared by every feature's schemas.

They implement the spec's reading rules once: numbers as digits with an optional ``+``
(8–15 digits, stored without the ``+``), numbers-as-strings, trimmed ids, the
hyphenated ``x-…`` enumerations, IANA zones and the spec's date formats.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from marshmallow import Schema, ValidationError, fields

PHONE_RE = re.compile(r"^\+?[0-9]{8,15}$")
EXTENSION_RE = re.compile(r"^[0-9]{2,6}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_NOT_NEWLINE_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# The spec's TTS enumerations live with the TTS code; re-exported for the schemas.
from cpaas.telephony.tts import ENGINE_TYPES, PITCHES, RATES, VOLUMES  # noqa: E402,F401
DIAL_STATUSES = ("ANSWER", "BUSY", "NOANSWER", "CANCEL", "CONGESTION", "CHANUNAVAIL")


def json_integer(value: Any) -> Any:
    """A JSON number with no fraction (``5.0``) as the integer it equals; anything else as is.

    JSON has one number type, so ``5.0`` and ``5`` are the same value (as JSON Schema's
    ``integer`` says): fields that take whole numbers read both alike."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class StrictSchema(Schema):
    """Base schema: unknown fields are refused (marshmallow's default, kept explicit)."""

    class Meta:
        unknown = "raise"


class Text(fields.String):
    """A string with a maximum (and optional minimum) length and no control characters
    (newlines allowed if asked)."""

    def __init__(self, max_length: int = 200, multiline: bool = False, strip: bool = False,
                 min_length: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length, self.multiline, self.strip = max_length, multiline, strip
        self.min_length = min_length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(json_integer(value))
        text = super()._deserialize(value, attr, data, **kwargs)
        if self.strip:
            text = text.strip()
        if len(text) > self.max_length:
            raise ValidationError(f"must be at most {self.max_length} characters")
        if len(text) < self.min_length:
            raise ValidationError("must not be empty" if self.min_length == 1
                                  else f"must be at least {self.min_length} characters")
        pattern = _CONTROL_NOT_NEWLINE_RE if self.multiline else _CONTROL_RE
        if pattern.search(text):
            raise ValidationError("must not contain control characters")
        return text


class Phone(fields.String):
    """A phone number: digits with an optional leading ``+``, 8–15 digits; returns digits."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        value = json_integer(value)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        text = super()._deserialize(value, attr, data, **kwargs)
        if not PHONE_RE.fullmatch(text):
            raise ValidationError("must be 8 to 15 digits with an optional leading +")
        return text.lstrip("+")


class TransferTarget(fields.String):
    """An agent extension (2–6 digits) or a phone number (8–15 digits)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        value = json_integer(value)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        text = super()._deserialize(value, attr, data, **kwargs)
        if EXTENSION_RE.fullmatch(text):
            return text
        if PHONE_RE.fullmatch(text):
            return text.lstrip("+")
        raise ValidationError("must be an agent extension (2-6 digits) or a number (8-15 digits)")


class IntLike(fields.Integer):
    """An integer sent as a JSON number or a string of digits (``"10"``)."""

    def __init__(self, minimum: int | None = None, maximum: int | None = None, **kwargs: Any) -> None:
        super().__init__(strict=False, **kwargs)
        self.minimum, self.maximum = minimum, maximum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            raise ValidationError("must be a whole number")
        if isinstance(value, str):
            value = value.strip()
            if not re.fullmatch(r"-?[0-9]{1,12}", value):
                raise ValidationError("must be a whole number")
        number = super()._deserialize(value, attr, data, **kwargs)
        if abs(number) >= 10 ** 12:  # JSON numbers are unbounded; the database's are not
            raise ValidationError("must be a whole number of at most 12 digits")
        if self.minimum is not None and number < self.minimum:
            raise ValidationError(f"must be at least {self.minimum}")
        if self.maximum is not None and number > self.maximum:
            raise ValidationError(f"must be at most {self.maximum}")
        return number


class Choice(fields.String):
    """One of a fixed set of strings (``aliases`` map accepted spellings onto them)."""

    def __init__(self, choices: Iterable[str], aliases: dict[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = tuple(choices)
        self.aliases = aliases or {}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        value = json_integer(value)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        text = super()._deserialize(value, attr, data, **kwargs)
        text = self.aliases.get(text, text)
        if text not in self.choices:
            raise ValidationError(f"must be one of: {', '.join(self.choices)}")
        return text


class IntChoice(Choice):
    """A numeric code from a fixed set, sent as a string or a number; returns an int."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:  # type: ignore[override]
        return int(super()._deserialize(value, attr, data, **kwargs))


class PrefixedId(fields.String):
    """An id such as ``LSdb6a12e1f1``; surrounding spaces are trimmed (the spec's examples)."""

    def __init__(self, prefix: str, length: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pattern = re.compile(rf"^{prefix}[0-9a-f]{{{length}}}$")
        self.prefix = prefix

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not self.pattern.fullmatch(text):
            what = f"{self.prefix} followed by 10 hex digits" if self.prefix else "10 hex digits"
            raise ValidationError(f"must be {what}")
        return text


class TimeZone(fields.String):
    """An IANA time zone name; returns the name."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if text not in _zones():
            raise ValidationError("must be an IANA time zone such as Asia/Kolkata or UTC")
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("must be an IANA time zone such as Asia/Kolkata or UTC") from None
        return text


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
        _ZONES.add("UTC")
    return _ZONES


class LocalDateTime(fields.String):
    """``YYYY-mm-dd HH:MM:SS`` (also without the space, as in one spec example, and ISO 8601
    when ``iso`` is set); returns a naive datetime in the caller's zone, or an aware one
    when ISO 8601 carried an offset."""

    def __init__(self, iso: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.iso = iso

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        parsed = None
        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d%H:%M:%S"):
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                pass
        if parsed is None and self.iso and re.match(r"^\d{4}-\d{2}-\d{2}T", text):
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                pass
        if parsed is None:
            formats = "YYYY-mm-dd HH:MM:SS" + (" or ISO 8601" if self.iso else "")
            raise ValidationError(f"must be a date and time as {formats}")
        return _in_year_range(parsed)


class Date(fields.String):
    """``YYYY-mm-dd``; returns a date."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        try:
            parsed = datetime.strptime(text, "%Y-%m-%d").date()
        except ValueError:
            raise ValidationError("must be a date as YYYY-mm-dd") from None
        return _in_year_range(parsed)


#: Dates outside these years cannot be shifted between zones (or by a day) without
#: leaving Python's datetime range, and no call happens there.
MIN_YEAR, MAX_YEAR = 1900, 9998


def _in_year_range(value):
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValidationError(f"year must be between {MIN_YEAR} and {MAX_YEAR}")
    return value


def to_utc(local: datetime, zone: str) -> datetime:
    """A wall-clock time in ``zone`` (or an aware datetime) as naive UTC."""
    aware = local if local.tzinfo else local.replace(tzinfo=ZoneInfo(zone))
    return aware.astimezone(timezone.utc).replace(tzinfo=None)


def from_utc(utc: datetime, zone: str) -> datetime:
    """Naive UTC as naive wall-clock time in ``zone``."""
    return utc.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def utcnow() -> datetime:
    """Now, as naive UTC (how every timestamp is stored)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def http_date(value: datetime | None) -> str:
    """The spec's date format, ``Tue, 11 Jul 2023 09:00:00 GMT``; epoch for None.

    (CDR lists format their dates in SQL the same way: see :mod:`cpaas.cdr.service`.)
    """
    return (value or datetime(1970, 1, 1)).strftime("%a, %d %b %Y %H:%M:%S GMT")


def retry_statuses(value: Any) -> list[str]:
    """``retry_on_statuses`` as a list or a comma-separated string; ``NOANSER`` is ``NOANSWER``."""
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise ValidationError("must be a list or a comma-separated string of dial statuses")
    out = []
    for item in filter(None, items):
        item = "NOANSWER" if item.upper() == "NOANSER" else item.upper()
        if item not in DIAL_STATUSES:
            raise ValidationError(f"unknown dial status {item!r}; use {', '.join(DIAL_STATUSES)}")
        if item not in out:
            out.append(item)
    if not out:
        raise ValidationError("must name at least one dial status")
    return out


class RetryStatuses(fields.Field):
    """``retry_on_statuses``; returns a list of dial statuses."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        return retry_statuses(value)
