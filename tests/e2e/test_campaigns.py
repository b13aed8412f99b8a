"""Campaigns dial by themselves, end to end: the whole platform (sandbox carrier on sipp,
the PJSUA2 engine pool, RQ workers whose scanner runs the dialer, the events process)
over its own PostgreSQL and Redis. What left is read from the carrier's INVITE log, never
from our own rows: who was dialed, how often and when.

Numbers pick their outcome by their last digits (sandbox_carrier): ``486`` busy, ``480``
rings until the ring timeout, ``603`` declines, ``55d`` sends digit ``d``, others answer.
"""
from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest

from sandbox_carrier.carrier import invite_times, invited_numbers
from tests import launcher, servers
from tests.api.conftest import body
from tests.api.helpers import campaign_body, make_dnd_list, make_list, ok_body
from tests.e2e.conftest import Platform
from tests.e2e.numbers import CALLER_ID, number
from tests.launcher import wait_for

HOLD, RING_TIMEOUT = 2, 4


@pytest.fixture(scope="module")
def dialer(tmp_path_factory) -> Iterator[Platform]:
    """A platform of the module's own: short calls, a fast scanner, its own servers."""
    with servers.redis_server() as redis_url, servers.postgres_server() as pg_url:
        with launcher.platform(tmp_path_factory.mktemp("campaigns"), redis_url, pg_url,
                               hold=HOLD, ring_timeout=RING_TIMEOUT, engine_workers=6,
                               rq_workers=2, extra_env={"CPAAS_SCAN_INTERVAL": "0.1",
                                                          "CPAAS_SANDBOX_DTMF_DELAY": "0.5"}) as running:
            yield Platform(running)


def _utc(delta: timedelta = timedelta()) -> str:
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%d %H:%M:%S")


def _campaign(client, name: str, numbers: list[str], dnd: list[str] = (), **overrides) -> str:
    """A campaign over ``numbers`` running from now, in UTC; returns its id."""
    list_id = make_list(client, f"list_{name}")
    contacts = [{"contact_name": f"c{i}", "contact_number": n,
                 "contact_fields": {"field1": f"name {i}"}} for i, n in enumerate(numbers)]
    ok_body(client.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": contacts}))
    dnd_id = ""
    if dnd:
        dnd_id = make_dnd_list(client, f"dnd_{name}")
        ok_body(client.post("/api/add_dnd_contact_to_list", {"dnd_list_id": dnd_id, "dnd_contacts": [
            {"dnd_contact_number": n} for n in dnd]}))
    settings = {"campaign_name": name, "time_zone": "UTC",
                "campaign_start_date": _utc(-timedelta(minutes=1)),
                "campaign_end_date": _utc(timedelta(hours=1)), "repeat": "1",
                "announcement_text": "Hello {field1}, this is a test {field9}.",
                "max_retries": "0", "retry_time": "1", "calls_per_minute": "1200",
                "voice": "Joanna", **overrides}
    data = campaign_body(list_id, dnd_id, **settings)
    return ok_body(client.post("/api/create_campaign", data))["campaign_id"]


def _details(client, campaign_id: str) -> dict:
    for row in ok_body(client.get("/api/get_campaign_details"))["result"]:
        if row["campaign_id"] == campaign_id:
            return row
    raise AssertionError(f"{campaign_id} not in get_campaign_details")


def _finished(client, campaign_id: str, timeout: float) -> dict:
    return wait_for(lambda: (lambda d: d if d["campaign_status"] == "3" else None)(
        _details(client, campaign_id)), timeout, f"campaign {campaign_id} completed", 0.5)


def _cdrs(client, campaign_id: str) -> list[dict]:
    return ok_body(client.post("/api/get_cdr_by_campaign_id", {"campaign_id": campaign_id}))["result"]


def _invites(platform: Platform) -> Counter:
    return Counter(invited_numbers(platform.running.carrier_log))


def test_a_campaign_dials_its_list_with_retries_by_cause_dnd_and_declines(dialer):
    api = dialer.client("account_1")
    answer = [number("111") for _ in range(150)]
    busy = [number("486") for _ in range(15)]
    noanswer = [number("480") for _ in range(10)]
    declined = [number("603") for _ in range(10)]
    dnd = [number("222") for _ in range(15)]
    everyone = answer + busy + noanswer + declined + dnd
    campaign_id = _campaign(api, "mixed", everyone, dnd=dnd, max_retries="1",
                            retry_on_statuses="NOANSWER,BUSY,CHANUNAVAIL")

    def live_campaign_calls() -> int:
        stats = ok_body(api.get("/api/get_live_call_statistics"))
        value = (stats.get("result") or stats)["live_calls_campaign"]
        return int(value[0] if isinstance(value, list) else value)

    assert wait_for(live_campaign_calls, 60, "campaign calls in the live statistics", 0.2) > 0
    details = _finished(api, campaign_id, 180)
    assert live_campaign_calls() == 0

    sent = _invites(dialer)
    assert all(sent[n] == 1 for n in answer), "an answered contact is dialed once"
    assert all(sent[n] == 2 for n in busy + noanswer), "busy and no-answer get their one retry"
    assert all(sent[n] == 1 for n in declined), "a declined call is never retried"
    assert all(sent[n] == 0 for n in dnd), "a DND number is never dialed"
    progress = details["progress"]
    assert progress == {"total": "200", "pending": "0", "dialing": "0", "answered": "150",
                        "failed": "35", "retry_waiting": "0", "dnd": "15", "skipped": "0"}
    assert details["placeholders_missing"] == {"field9": "200"}   # no contact has a field9

    rows = _cdrs(api, campaign_id)
    assert len(rows) == 150 + 2 * 25 + 10 + 15
    assert len({r["request_id"] for r in rows}) == len(rows), "each attempt has its own request_id"
    assert len({r["uniqueid"] for r in rows}) == len(rows) and all(r["uniqueid"] for r in rows)
    for row in rows:
        assert row["call_direction"] == "outbound-campaign"
        assert row["destination_context"] == "local_call_campaign_type_0"
    by_number = {}
    for row in rows:
        by_number.setdefault(row["customer_number"], []).append(row)
    for n in dnd:
        [row] = by_number[n]
        assert (row["dial_status"], row["is_dnd"], row["call_status"]) == ("DND", "1", None)
    assert {r["dial_status"] for n in busy for r in by_number[n]} == {"BUSY"}
    assert {r["dial_status"] for n in noanswer for r in by_number[n]} == {"NOANSWER"}
    assert {r["hangup_cause"] for n in declined for r in by_number[n]} == {"declined"}
    assert {r["dial_status"] for n in answer for r in by_number[n]} == {"ANSWER"}

    stats = ok_body(api.post("/api/get_campaign_cdr_statistics", {"campaign_id": campaign_id}))
    recount = Counter(r["dial_status"] for r in rows)
    counters = stats["result"][0] if isinstance(stats["result"], list) else stats["result"]

    def kept(name: str) -> int:   # the spec sends each counter as a one-item list
        value = counters[name]
        return int(value[0] if isinstance(value, list) else value)

    assert kept("total_calls") == len(rows)
    for name, status in (("answer_calls", "ANSWER"), ("busy_calls", "BUSY"),
                         ("noanswer_calls", "NOANSWER"), ("dnd_calls", "DND"),
                         ("chanunavail_calls", "CHANUNAVAIL")):
        assert kept(name) == recount[status], name

    # paced: 1,200 a minute is 20 a second, so the first dials span at least ~9 s
    first = sorted(invite_times(dialer.running.carrier_log, n)[0] for n in answer + busy)
    assert first[-1] - first[0] >= (len(first) - 1) / 20 * 0.9


def test_ivr_digits_transfer_by_digit_map_and_say_why_not(dialer):
    api = dialer.client("account_1")
    target = number("333")
    presses, wrong, silent = number("551"), number("552"), number("444")
    # The carrier sends a 55d digit 0.5 s after answering and holds others HOLD (2) s: a
    # short prompt and a gather of 1 s end a silent call on the IVR's timeout first.
    campaign_id = _campaign(api, "ivr", [presses, wrong, silent], campaign_type="1",
                            announcement_text="Hi.", ivr_timeout="1",
                            ivr_digit_map={"1": f"number:{target}"})
    _finished(api, campaign_id, 90)
    rows = {r["customer_number"]: r for r in _cdrs(api, campaign_id)}
    assert rows[presses]["dtmf_inputs"] == "1"
    assert rows[presses]["transfer_to"] == f"number:{target}"
    assert dialer.invites(target) == 1
    assert rows[wrong]["dtmf_inputs"] == "2" and rows[wrong]["transfer_to"] == ""
    assert rows[wrong]["hangup_cause"] == "ivr invalid"
    assert rows[silent]["dtmf_inputs"] == "" and rows[silent]["hangup_cause"] == "ivr no_input"
    assert {r["destination_context"] for r in rows.values()} == {"local_call_campaign_type_1"}


def test_pause_resume_stop_and_a_dnd_entry_added_mid_run(dialer):
    api, other = dialer.client("account_1"), dialer.client("account_2")
    numbers = [number("111") for _ in range(60)]
    campaign_id = _campaign(api, "controlled", numbers, dnd=[number("999")],
                            calls_per_minute="120")
    dnd_id = _details(api, campaign_id)["dnd_list_id"]
    wait_for(lambda: sum(_invites(dialer)[n] for n in numbers) >= 5, 30, "the first dials")

    # another account sees none of it
    for path in ("/api/pause_campaign", "/api/resume_campaign", "/api/stop_campaign",
                 "/api/get_campaign_contacts"):
        assert other.post(path, {"campaign_id": campaign_id}).status_code == 404

    ok_body(api.post("/api/pause_campaign", {"campaign_id": campaign_id}))
    paused_at = time.time()
    assert _details(api, campaign_id)["campaign_status"] == "4"
    time.sleep(3)
    late = [t for n in numbers for t in invite_times(dialer.running.carrier_log, n) if t > paused_at + 1]
    assert not late, f"{len(late)} INVITEs left more than 1 s after pause_campaign returned"
    details = _details(api, campaign_id)
    assert details["state_reason_code"] == "paused"
    dialed = {n for n in numbers if _invites(dialer)[n]}

    # an entry added now takes effect for the next dial of that number
    blocked = next(n for n in numbers if n not in dialed)
    ok_body(api.post("/api/add_dnd_contact_to_list", {"dnd_list_id": dnd_id, "dnd_contacts": [
        {"dnd_contact_number": blocked}]}))
    ok_body(api.post("/api/resume_campaign", {"campaign_id": campaign_id}))
    wait_for(lambda: sum(_invites(dialer)[n] for n in numbers) >= len(dialed) + 5, 30, "dialing again")
    assert api.post("/api/resume_campaign", {"campaign_id": campaign_id}).status_code == 409

    ok_body(api.post("/api/stop_campaign", {"campaign_id": campaign_id}))
    stopped_at = time.time()
    time.sleep(3)
    late = [t for n in numbers for t in invite_times(dialer.running.carrier_log, n) if t > stopped_at + 1]
    assert not late, f"{len(late)} INVITEs left more than 1 s after stop_campaign returned"
    assert api.post("/api/resume_campaign", {"campaign_id": campaign_id}).status_code == 409
    sent = _invites(dialer)
    assert max(sent[n] for n in numbers) == 1, "pause and resume never dial a contact twice"
    assert 5 <= sum(sent[n] for n in numbers) < len(numbers)

    def settled_page():
        # The blocked number was the first due after the resume: its attempt was refused
        # by the check (a DND event), and its contact settles once that event's CDR is in.
        page = ok_body(api.post("/api/get_campaign_contacts", {"campaign_id": campaign_id,
                                                               "record_count": 100}))["result"]
        states = {c["contact_number"]: c["state"] for c in page}
        return page if states.get(blocked) not in (None, "dialing") else None

    page = wait_for(settled_page, 30, "the blocked contact settled", 0.5)
    assert len(page) == len(numbers)
    by_number = {c["contact_number"]: c for c in page}
    assert (by_number[blocked]["state"], by_number[blocked]["reason_code"]) == ("dnd", "dnd")
    assert sent[blocked] == 0
    [dnd_row] = [r for r in _cdrs(api, campaign_id) if r["customer_number"] == blocked]
    assert (dnd_row["dial_status"], dnd_row["is_dnd"]) == ("DND", "1")
    for n in dialed:
        assert len(by_number[n]["tries"]) == 1 and by_number[n]["tries"][0]["dial_status"] == "ANSWER"
    after = ok_body(api.post("/api/get_campaign_contacts", {
        "campaign_id": campaign_id, "record_count": 10,
        "after_id": page[9]["contact_id"]}))["result"]
    assert [c["contact_id"] for c in after] == [c["contact_id"] for c in page[10:20]]


def test_two_accounts_campaigns_side_by_side(dialer):
    api, other = dialer.client("account_1"), dialer.client("account_2")
    mine = [number("111") for _ in range(20)]
    theirs = [number("111") for _ in range(20)]
    a = _campaign(api, "side_a", mine, calls_per_minute="600")
    b = _campaign(other, "side_b", theirs, calls_per_minute="600")
    _finished(api, a, 90)
    _finished(other, b, 90)
    sent = _invites(dialer)
    assert all(sent[n] == 1 for n in mine + theirs)
    assert {r["customer_number"] for r in _cdrs(api, a)} == set(mine)
    assert {r["customer_number"] for r in _cdrs(other, b)} == set(theirs)
    assert other.post("/api/get_cdr_by_campaign_id", {"campaign_id": a}).status_code == 404
    assert all(r["campaign_id"] != a for r in ok_body(other.get("/api/get_campaign_details"))["result"])
