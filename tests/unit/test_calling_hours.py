"""Calling hours and a contact's local time (cpaas.campaigns.hours), on an injected clock."""
from __future__ import annotations

import random
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from cpaas.campaigns import hours

INDIA, US_WEST = "919900000001", "14155550100"   # Asia/Kolkata; America/Los_Angeles
AU_MOBILE = "61412345678"                         # every Australian zone, Perth to Lord Howe
DAY = "09:00-21:00"
START, END = datetime(2026, 11, 1), datetime(2027, 1, 1)


def verdict(now: datetime, zone: str = "UTC", text: str | None = DAY, zones=(),
            start: datetime = START, end: datetime = END):
    return hours.check(now, start, end, zone, hours.parse_hours(text) if text else None, zones)


def local(utc: datetime, zone: str) -> datetime:
    return utc.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(zone)).replace(tzinfo=None)


# --- parse_hours -------------------------------------------------------------------------

def test_parse_hours_reads_a_range_and_trims_spaces():
    parsed = hours.parse_hours(" 09:00-21:30 ")
    assert (parsed.start, parsed.end) == (time(9, 0), time(21, 30))
    assert str(parsed) == "09:00-21:30"


@pytest.mark.parametrize("text", ["9:00-21:00", "09:00-24:00", "09:60-10:00", "09:00", "",
                                  "09:00 - 21:00", "09.00-21.00", "09:00-21:00-22:00", "ab:cd-ef:gh"])
def test_parse_hours_refuses_what_is_not_a_range(text):
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        hours.parse_hours(text)


@pytest.mark.parametrize("text", ["21:00-09:00", "09:00-09:00"])
def test_parse_hours_wants_start_before_end(text):
    with pytest.raises(ValueError, match="must be before"):
        hours.parse_hours(text)


def test_hours_refuses_a_start_not_before_its_end():
    with pytest.raises(ValueError):
        hours.Hours(time(10), time(9))


# --- the window --------------------------------------------------------------------------

def test_before_the_window_waits_for_its_start():
    start = datetime(2026, 12, 1, 8, 0)   # 09:00 in Paris
    v = verdict(datetime(2026, 11, 30, 12, 0), zone="Europe/Paris", text=None, start=start)
    assert (v.allowed, v.reason_code, v.next_at, v.zone, v.local_time) == \
        (False, "outside_window", start, "Europe/Paris", "09:00")
    assert hours.describe(v) == "campaign starts at 2026-12-01 09:00 Europe/Paris"


def test_before_the_window_and_its_hours_waits_for_both():
    # The window opens at 00:00 UTC, 05:30 in Kolkata; its hours there open at 09:00.
    v = verdict(datetime(2026, 11, 30, 12, 0), zone="Asia/Kolkata", text="09:00-17:00",
                start=datetime(2026, 12, 1))
    assert (v.reason_code, v.next_at) == ("outside_window", datetime(2026, 12, 1, 3, 30))
    assert hours.describe(v) == "campaign starts at 2026-12-01 09:00 Asia/Kolkata"


@pytest.mark.parametrize("now", [END, END + timedelta(seconds=1), END + timedelta(days=40)])
def test_at_or_after_the_end_the_window_ended(now):
    v = verdict(now)
    assert (v.allowed, v.reason_code, v.next_at, v.local_time) == (False, "window_ended", None, "")
    assert hours.describe(v) == "campaign window ended"


def test_inside_the_window_without_hours_any_time_is_allowed():
    for now in (START, datetime(2026, 12, 1, 3, 0), END - timedelta(seconds=1)):
        v = verdict(now, text=None)
        assert (v.allowed, v.reason_code, v.next_at) == (True, "", now), now
        assert hours.describe(v) == ""


# --- calling hours in the campaign's zone ------------------------------------------------

def test_hours_apply_in_the_campaign_zone():
    kolkata = "Asia/Kolkata"  # UTC+5:30: 09:00-21:00 there is 03:30-15:30 UTC
    early = verdict(datetime(2026, 12, 1, 3, 0), zone=kolkata)
    assert (early.allowed, early.reason_code) == (False, "outside_calling_hours")
    assert (early.next_at, early.zone, early.local_time) == (datetime(2026, 12, 1, 3, 30), kolkata, "09:00")
    assert hours.describe(early) == "outside calling_hours until 09:00 Asia/Kolkata"
    assert verdict(datetime(2026, 12, 1, 3, 30), zone=kolkata).allowed
    assert verdict(datetime(2026, 12, 1, 15, 29, 59), zone=kolkata).allowed
    late = verdict(datetime(2026, 12, 1, 15, 30), zone=kolkata)  # 21:00: the end is exclusive
    assert (late.allowed, late.next_at) == (False, datetime(2026, 12, 2, 3, 30))


def test_no_hours_left_before_the_end_is_never():
    v = verdict(datetime(2026, 12, 1, 22, 0), start=datetime(2026, 12, 1, 21, 0),
                end=datetime(2026, 12, 2, 9, 0))
    assert (v.allowed, v.reason_code, v.next_at, v.local_time) == (False, "outside_calling_hours", None, "")
    assert hours.describe(v) == ("outside calling_hours: no time left in the campaign window fits "
                                 "calling_hours in UTC")


def test_an_opening_at_the_end_of_the_window_is_past_it():
    assert verdict(datetime(2026, 12, 1, 22, 0), end=datetime(2026, 12, 2, 9, 0)).next_at is None
    assert verdict(datetime(2026, 12, 1, 22, 0), end=datetime(2026, 12, 2, 9, 1)).next_at == \
        datetime(2026, 12, 2, 9, 0)


# --- a contact's own time zones ----------------------------------------------------------

def test_contact_zones_from_the_number():
    assert hours.contact_zones(INDIA) == ("Asia/Kolkata",)      # phonenumbers says Asia/Calcutta
    assert hours.contact_zones(US_WEST) == ("America/Los_Angeles",)
    assert hours.contact_zones("12125550100") == ("America/New_York",)
    australia = hours.contact_zones(AU_MOBILE)
    assert {"Australia/Perth", "Australia/Sydney"} <= set(australia) and len(australia) > 2


@pytest.mark.parametrize("number", ["15555550100", "19999999999", "99999999", "12", "",
                                    "+919900000001", "91990000000a", "1" * 16])
def test_contact_zones_of_unknown_or_unreadable_numbers_are_empty(number):
    assert hours.contact_zones(number) == ()


def test_india_and_us_contacts_at_the_same_instant():
    noon = datetime(2026, 12, 1, 12, 0)   # 17:30 in Kolkata, 04:00 in Los Angeles
    india = verdict(noon, zones=hours.contact_zones(INDIA))
    us = verdict(noon, zones=hours.contact_zones(US_WEST))
    assert (india.allowed, india.zone, india.local_time) == (True, "Asia/Kolkata", "17:30")
    assert (us.allowed, us.reason_code, us.next_at) == \
        (False, "outside_calling_hours", datetime(2026, 12, 1, 17, 0))
    assert hours.describe(us) == "outside calling_hours until 09:00 America/Los_Angeles"
    evening = datetime(2026, 12, 1, 20, 0)   # 01:30 next day in Kolkata, 12:00 in Los Angeles
    assert verdict(evening, zones=hours.contact_zones(US_WEST)).allowed
    india = verdict(evening, zones=hours.contact_zones(INDIA))
    assert (india.allowed, india.next_at) == (False, datetime(2026, 12, 2, 3, 30))
    assert hours.describe(india) == "outside calling_hours until 09:00 Asia/Kolkata"


def test_a_number_in_several_zones_must_fit_all_of_them():
    zones = hours.contact_zones(AU_MOBILE)
    morning = datetime(2026, 12, 1, 22, 30)   # 09:30 in Sydney (UTC+11), 06:30 in Perth
    assert verdict(morning, zones=("Australia/Sydney",)).allowed
    v = verdict(morning, zones=zones)
    assert (v.allowed, v.reason_code) == (False, "outside_calling_hours")
    # At next_at every zone reads 09:00-21:00 and the zone named opens just then.
    assert all(time(9) <= local(v.next_at, z).time() < time(21) for z in zones)
    assert local(v.next_at, v.zone).time() == time(9) and v.local_time == "09:00"
    before = v.next_at - timedelta(seconds=1)
    assert not all(time(9) <= local(before, z).time() < time(21) for z in zones)
    assert verdict(v.next_at, zones=zones).allowed


def test_an_unknown_number_uses_the_campaign_zone():
    zones = hours.contact_zones("15555550100")
    now = datetime(2026, 12, 1, 3, 0)
    assert verdict(now, zone="Asia/Kolkata", zones=zones) == verdict(now, zone="Asia/Kolkata")
    assert verdict(now, zone="Asia/Kolkata", zones=zones).zone == "Asia/Kolkata"


def _brute_force_next(now: datetime, zones: tuple[str, ...], end: datetime) -> datetime | None:
    """The first whole minute from ``now`` on at which every zone reads 09:00-21:00."""
    t = now
    while t < end:
        if all(time(9) <= local(t, z).time() < time(21) for z in zones):
            return t
        t = (t + timedelta(minutes=1)).replace(second=0)
    return None


@pytest.mark.parametrize("zones", [
    ("Asia/Kolkata",), ("America/New_York",), ("Pacific/Kiritimati",), ("Pacific/Pago_Pago",),
    ("Asia/Kolkata", "America/Los_Angeles"), ("Australia/Lord_Howe", "Australia/Eucla", "Indian/Cocos"),
], ids="+".join)
def test_next_at_is_the_first_minute_every_zone_allows(zones):
    """Against a minute-by-minute walk, at instants spread over a year (DST changes inside)."""
    rng = random.Random(9)
    start, end = datetime(2026, 1, 1), datetime(2027, 1, 1)
    for _ in range(25):
        now = start + timedelta(minutes=rng.randrange(365 * 24 * 60))
        v = hours.check(now, start, end, "UTC", hours.parse_hours(DAY), zones)
        assert v.next_at == _brute_force_next(now, zones, end), (now, v)
        assert v.allowed == (v.next_at == now)


# --- DST days in New York ----------------------------------------------------------------

def test_hours_follow_the_spring_forward_day():
    ny = "America/New_York"   # 2026-03-08: EST (UTC-5) becomes EDT (UTC-4) at 02:00
    assert verdict(datetime(2026, 3, 7, 14, 0), zone=ny, start=datetime(2026, 3, 1)).allowed
    assert not verdict(datetime(2026, 3, 7, 13, 30), zone=ny, start=datetime(2026, 3, 1)).allowed
    night = verdict(datetime(2026, 3, 8, 2, 0), zone=ny, start=datetime(2026, 3, 1))  # 21:00 EST
    assert (night.allowed, night.next_at, night.local_time) == (False, datetime(2026, 3, 8, 13, 0), "09:00")
    assert verdict(datetime(2026, 3, 8, 13, 30), zone=ny, start=datetime(2026, 3, 1)).allowed  # 09:30 EDT
    assert not verdict(datetime(2026, 3, 9, 1, 0), zone=ny, start=datetime(2026, 3, 1)).allowed  # 21:00 EDT


def test_a_start_in_the_skipped_hour_opens_when_the_clocks_jump():
    ny, start = "America/New_York", datetime(2026, 3, 1)
    v = verdict(datetime(2026, 3, 8, 6, 59, 59), zone=ny, text="02:30-05:00", start=start)  # 01:59:59 EST
    assert (v.allowed, v.next_at, v.local_time) == (False, datetime(2026, 3, 8, 7, 0), "03:00")
    assert verdict(datetime(2026, 3, 8, 7, 0), zone=ny, text="02:30-05:00", start=start).allowed


def test_the_repeated_hour_of_fall_back_stays_open():
    ny, start = "America/New_York", datetime(2026, 10, 1)
    text = "01:30-03:00"   # 2026-11-01: 01:00-02:00 happens twice (EDT, then EST)
    first = verdict(datetime(2026, 11, 1, 5, 0), zone=ny, text=text, start=start)   # 01:00 EDT
    assert (first.allowed, first.next_at) == (False, datetime(2026, 11, 1, 5, 30))  # 01:30 EDT
    assert verdict(datetime(2026, 11, 1, 6, 15), zone=ny, text=text, start=start).allowed  # 01:15 EST
    assert not verdict(datetime(2026, 11, 1, 8, 0), zone=ny, text=text, start=start).allowed  # 03:00 EST
    assert verdict(datetime(2026, 11, 1, 14, 0), zone=ny, start=start).allowed   # 09:00 EST


def test_a_contact_across_the_dst_change_of_its_own_zone():
    """Campaign in UTC, contact in New York: the contact's offset moves, the campaign's does not."""
    zones = hours.contact_zones("12125550100")
    start = datetime(2026, 10, 1)
    assert not verdict(datetime(2026, 11, 1, 13, 30), zones=zones, start=start).allowed  # 08:30 EST
    assert verdict(datetime(2026, 10, 31, 13, 30), zones=zones, start=start).allowed     # 09:30 EDT
