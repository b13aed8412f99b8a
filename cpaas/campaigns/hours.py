"""Calling hours: whether a campaign may dial now, in its own zone or the contact's.

Pure functions (no database, no Flask). The dialer calls :func:`check` right before each
dial, so zone objects, number → zone look-ups and each local day's opening and closing
instants are cached. Every datetime here is naive UTC, as the database stores them.

A day's range opens at the first instant the local clock reads ``start`` and closes at
the first instant it reads ``end`` (exclusive), so DST days work out: a start inside the
spring-forward gap opens when the clocks jump; the hour repeated in autumn stays open.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Sequence
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as number_timezones

#: ``HH:MM-HH:MM`` on a 24-hour clock (the order of the two is checked apart).
HOURS_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])")
_NUMBER_RE = re.compile(r"[0-9]{8,15}")

#: How far past the first possible instant :func:`check` looks for one that fits every
#: zone of a number: a week covers every daily pattern (and a DST change in it); zones
#: whose hours never overlap in that time are treated as never overlapping.
HORIZON_DAYS = 8

#: Old spellings phonenumbers still returns, as today's tz database names them (what a
#: user reads in state_reason). Both load in zoneinfo; only the sentence changes.
_RENAMED = {
    "Africa/Asmera": "Africa/Asmara", "America/Buenos_Aires": "America/Argentina/Buenos_Aires",
    "America/Godthab": "America/Nuuk", "Asia/Calcutta": "Asia/Kolkata",
    "Asia/Katmandu": "Asia/Kathmandu", "Asia/Rangoon": "Asia/Yangon",
    "Atlantic/Faeroe": "Atlantic/Faroe", "Pacific/Enderbury": "Pacific/Kanton",
    "Pacific/Ponape": "Pacific/Pohnpei", "Pacific/Truk": "Pacific/Chuuk",
}

ALLOWED, OUTSIDE_WINDOW, WINDOW_ENDED, OUTSIDE_HOURS = (
    "", "outside_window", "window_ended", "outside_calling_hours")


@dataclass(frozen=True)
class Hours:
    """One daily range, ``start`` before ``end`` (end exclusive), e.g. 09:00-21:00."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError(f"calling_hours start {self.start:%H:%M} must be before its end "
                             f"{self.end:%H:%M}")

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_hours(text: str) -> Hours:
    """``"HH:MM-HH:MM"`` (24-hour clock, spaces around trimmed) as :class:`Hours`;
    ValueError with a message fit for a 400 otherwise."""
    match = HOURS_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError("calling_hours must be HH:MM-HH:MM on a 24-hour clock, e.g. 09:00-21:00")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    return Hours(time(h1, m1), time(h2, m2))


@lru_cache(maxsize=65536)
def contact_zones(number: str) -> tuple[str, ...]:
    """The IANA zones of a stored contact number (8-15 digits, country code first, no
    ``+``), from phonenumbers' data; () when the number maps to none or does not parse."""
    if not isinstance(number, str) or not _NUMBER_RE.fullmatch(number):
        return ()
    try:
        parsed = phonenumbers.parse("+" + number)
    except phonenumbers.NumberParseException:
        return ()
    found = number_timezones.time_zones_for_number(parsed)
    return tuple(_RENAMED.get(z, z) for z in found if z != number_timezones.UNKNOWN_TIMEZONE)


@dataclass(frozen=True)
class Verdict:
    """Whether a dial may leave now and, if not, why and when it may."""

    allowed: bool
    reason_code: str         # "" | outside_window | window_ended | outside_calling_hours
    next_at: datetime | None  # naive UTC, the earliest allowed instant; None: never (in the window)
    zone: str                # the zone the reason is about
    local_time: str          # "HH:MM" in that zone at next_at ("" when None)


def check(now: datetime, start_at: datetime, end_at: datetime, campaign_zone: str,
          hours: Hours | None, zones: Sequence[str] = ()) -> Verdict:
    """May a campaign dial at ``now``? The window is ``start_at <= now < end_at``; calling
    ``hours`` apply in ``campaign_zone`` when ``zones`` is empty, else in every one of
    ``zones`` (a call must fit them all). ``next_at`` is the earliest instant >= now when
    all of that holds; None when there is none before ``end_at`` (reason
    ``window_ended`` once the window is over, else ``outside_calling_hours``)."""
    first = max(now, start_at)
    if first >= end_at:
        return Verdict(False, WINDOW_ENDED, None, campaign_zone, "")
    if hours is None:
        found, zone = first, campaign_zone
    else:
        found, zone = _earliest(first, end_at, hours, tuple(zones) or (campaign_zone,))
    if found is None:
        return Verdict(False, OUTSIDE_HOURS, None, zone, "")
    if found == now:
        return Verdict(True, ALLOWED, now, zone, _clock(now, zone))
    if now < start_at:
        return Verdict(False, OUTSIDE_WINDOW, found, campaign_zone, _clock(found, campaign_zone))
    return Verdict(False, OUTSIDE_HOURS, found, zone, _clock(found, zone))


def describe(verdict: Verdict) -> str:
    """The verdict as one sentence for ``state_reason`` ("" when allowed), e.g.
    "outside calling_hours until 09:00 Asia/Kolkata"."""
    if verdict.allowed:
        return ""
    if verdict.reason_code == WINDOW_ENDED:
        return "campaign window ended"
    if verdict.next_at is None:
        return (f"outside calling_hours: no time left in the campaign window fits "
                f"calling_hours in {verdict.zone}")
    if verdict.reason_code == OUTSIDE_WINDOW:
        local = _local(verdict.next_at, _zone(verdict.zone))
        return f"campaign starts at {local:%Y-%m-%d %H:%M} {verdict.zone}"
    return f"outside calling_hours until {verdict.local_time} {verdict.zone}"


# --- finding the earliest instant ------------------------------------------------------

#: A UTC day's open stretch: its start, its end, and the zone whose range opened last.
_Span = tuple[datetime, datetime, str]


def _earliest(first: datetime, end_at: datetime, hours: Hours,
              zones: tuple[str, ...]) -> tuple[datetime | None, str]:
    """The earliest instant >= ``first`` and < ``end_at`` open in every zone, and the zone
    that opened last (the one a wait is about); None past ``end_at`` or the horizon."""
    t, day = first, first.date()
    for _ in range(HORIZON_DAYS + 1):
        for opens, closes, opener in _spans(zones, hours, day):
            if closes > t:
                found = max(opens, t)
                return (found if found < end_at else None), (opener if opens > t else zones[0])
        day += timedelta(days=1)
        t = datetime.combine(day, time())
        if t >= end_at:
            break
    return None, zones[0]


@lru_cache(maxsize=4096)
def _spans(zones: tuple[str, ...], hours: Hours, day: date) -> tuple[_Span, ...]:
    """The stretches of UTC ``day`` open in every one of ``zones``, in order."""
    midnight = datetime.combine(day, time())
    spans: list[_Span] = [(midnight, midnight + timedelta(days=1), zones[0])]
    for zone in zones:
        ranges = []
        # UTC offsets lie within -12 h .. +14 h: a UTC day's instants read as the local
        # day before, the same day or the day after, and each local day's range lies in it.
        for ahead in (-1, 0, 1):
            opens, closes = _day_range(zone, day + timedelta(days=ahead), hours)
            opens, closes = max(opens, midnight), min(closes, midnight + timedelta(days=1))
            if opens < closes:
                ranges.append((opens, closes, zone))
        spans = _intersect(spans, ranges)
    return tuple(spans)


def _intersect(a: list[_Span], b: list[_Span]) -> list[_Span]:
    """Stretches in both sorted, disjoint lists; each keeps the opener of the later start."""
    out: list[_Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end, a[i][2] if a[i][0] >= b[j][0] else b[j][2]))
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return out


@lru_cache(maxsize=8192)
def _day_range(zone: str, day: date, hours: Hours) -> tuple[datetime, datetime]:
    """The instants ``zone``'s clocks first read ``hours.start`` and ``hours.end`` on ``day``."""
    tz = _zone(zone)
    return (_first_reading(tz, datetime.combine(day, hours.start)),
            _first_reading(tz, datetime.combine(day, hours.end)))


def _first_reading(tz: ZoneInfo, wall: datetime) -> datetime:
    """The first instant at which clocks in ``tz`` read ``wall`` or later."""
    earlier = _utc(wall, tz, fold=0)  # a repeated wall time: its first occurrence
    if _local(earlier, tz) == wall:
        return earlier
    # The clocks jumped over ``wall``: the first reading past it is the jump itself,
    # between the wall time read with the later offset (before it) and the earlier one.
    # Offsets are whole seconds, so a bisection in seconds lands on the jump exactly.
    before = _utc(wall, tz, fold=1)
    lo, hi = 0, int((earlier - before).total_seconds())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _local(before + timedelta(seconds=mid), tz) >= wall:
            hi = mid
        else:
            lo = mid
    return before + timedelta(seconds=hi)


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _utc(wall: datetime, tz: ZoneInfo, fold: int) -> datetime:
    return wall.replace(tzinfo=tz, fold=fold).astimezone(timezone.utc).replace(tzinfo=None)


def _local(utc: datetime, tz: ZoneInfo) -> datetime:
    return utc.replace(tzinfo=timezone.utc).astimezone(tz).replace(tzinfo=None)


def _clock(utc: datetime, zone: str) -> str:
    local = _local(utc, _zone(zone))
    return f"{local.hour:02d}:{local.minute:02d}"  # strftime costs several times more
