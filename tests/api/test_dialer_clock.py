"""The campaign dialer on an injected clock, in process over the real database (SQLite and
PostgreSQL) and a real Redis: each :class:`DialerTask` call is one scanner turn at the
instant the test sets (wall clock and monotonic clock apart), so hours of a campaign's
window and calling hours pass in milliseconds. Call jobs are queued and nobody runs
them: the test reads them back with rq's ``Queue``, plays the job's claim and its check
at the moment of dialing (``dial_check.admit``), and plays a call's end by writing its
CDR through the events consumer and settling the attempt (``attempts.settle``).
(tests/e2e/test_campaigns.py runs campaigns through the whole platform, with real calls.)
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis as redis_lib
from rq import Queue

from cpaas import ids, scanner
from cpaas.calls import service as calls
from cpaas.calls.state import CallState, advance
from cpaas.campaigns import attempts, dial_check
from cpaas.campaigns.dialer import DialerTask
from cpaas.cdr import consumer
from cpaas.db import database
from cpaas.lease import Lease
from cpaas.models import CampaignAttempt, CampaignContact, CallRequest, Cdr
from cpaas.notifier import platform_notifier
from cpaas.platform import CAMPAIGN_QUEUE
from cpaas.telephony import events
from cpaas.telephony.events import EVENT_STREAM, EngineEvent, LegOutcome, PlanEnded
from cpaas.telephony.plans import Dial, Plan
from tests.api.helpers import campaign_body, make_dnd_list, make_list, ok_body

INDIA, US = "919876543210", "14155552671"     # Asia/Kolkata; America/Los_Angeles
#: A window of one day (UTC), 10 June 2030: the clock the tests set lies inside it.
JUNE_10 = {"campaign_start_date": "2030-06-10 00:00:00", "campaign_end_date": "2030-06-11 00:00:00"}
#: A SIP code and a dial status per outcome, as the sandbox carrier's numbers give them.
OUTCOMES = {"ANSWER": (200, "ANSWER"), "BUSY": (486, "BUSY"), "NOANSWER": (480, "NOANSWER"),
            "DECLINE": (603, "CHANUNAVAIL")}


def utc(text: str) -> datetime:
    """A naive UTC instant, as the database stores them."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M")


class Dialer:
    """A :class:`DialerTask` on clocks the test moves: ``at`` (UTC) and ``mono`` (s)."""

    def __init__(self, settings, r: redis_lib.Redis, at: datetime, **overrides: Any) -> None:
        self.at, self.mono = at, 1000.0
        self.settings = dataclasses.replace(settings, **overrides)
        self.task = DialerTask(self.settings, r, clock=lambda: self.at,
                               monotonic=lambda: self.mono)
        self.queue = Queue(CAMPAIGN_QUEUE, connection=r)

    def turn(self, step: float = 1.0) -> bool:
        """Advance the monotonic clock by ``step`` s, then run one turn."""
        self.mono += step
        with database.connection_context():
            return self.task()

    def queued_after_turns(self, n: int) -> list[str]:
        """Turn (1 s apart) until ``n`` jobs are queued (a new campaign's bucket starts
        with one token), at most 5 turns; the queued job ids."""
        for _ in range(5):
            if len(self.jobs()) >= n:
                break
            self.turn()
        return self.jobs()

    def reconcile(self) -> None:
        with database.connection_context():
            self.task.reconcile(self.at)

    def jobs(self) -> list[str]:
        """The queued call jobs' ids (a campaign attempt's job id is its request id)."""
        return self.queue.get_job_ids()

    def number_of(self, job_id: str) -> str:
        plan = Plan.from_json(self.queue.fetch_job(job_id).args[0])
        assert plan.kind == "campaign" and plan.plan_id == job_id
        return next(v.number for v in plan.verbs if isinstance(v, Dial))

    def admit(self, attempt_id: str, cap: int | None = None) -> bool:
        """What the call job does before its INVITE: claim the request, then the check."""
        with database.connection_context():
            assert advance(attempt_id, CallState.DIALING)
            return dial_check.admit(self.task.r, attempt_id,
                                    (self.settings.max_attempts_per_number_24h
                                     if cap is None else cap), self.at)

    def end(self, attempt_id: str, outcome: str) -> None:
        """The call ended with ``outcome``: its CDR through the consumer, then the settle."""
        code, status = OUTCOMES[outcome]
        start = self.at.timestamp()
        leg = LegOutcome(role="contact", number="", channel="sip", started_at=start,
                         answered_at=start + 1 if status == "ANSWER" else None,
                         ended_at=start + 3, sip_code=code, dial_status=status)
        with database.connection_context():
            settled = consumer.handle(PlanEnded(plan_id=attempt_id,
                                                account_id=account_of(attempt_id),
                                                cause="normal", legs={"contact": leg}))
            assert settled is not None
            assert attempts.settle(attempt_id, settled.record.dial_status,
                                   settled.record.hangup_cause, self.at)


def account_of(attempt_id: str) -> str:
    return CallRequest.get_by_id(attempt_id).account_id


@pytest.fixture
def r(settings) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(settings.redis_url)


@pytest.fixture
def lease(app, r) -> Lease:
    """This test holds the scanner's lease, as the worker running the dialer would."""
    held = Lease(r, scanner.LEASE, ttl=600)
    assert held.acquire_or_renew()
    yield held
    held.release()


def campaign(client, name: str, numbers: list[str], dnd: tuple[str, ...] = (),
             **fields: Any) -> str:
    """A campaign over ``numbers`` (fields as create_campaign takes them); its id."""
    list_id = make_list(client, f"list_{name}")
    ok_body(client.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": [
        {"contact_name": f"c{i}", "contact_number": n, "contact_fields": {"field1": str(i)}}
        for i, n in enumerate(numbers)]}))
    dnd_id = make_dnd_list(client, f"dnd_{name}")
    ok_body(client.post("/api/add_dnd_contact_to_list", {"dnd_list_id": dnd_id, "dnd_contacts": [
        {"dnd_contact_number": n} for n in dnd or ("919000000999",)]}))
    data = {"campaign_name": name, "time_zone": "UTC", "repeat": "1", "max_retries": "0",
            "retry_time": "60", "calls_per_minute": "6000", "announcement_text": "Hello {field1}",
            **fields}
    return ok_body(client.post("/api/create_campaign", campaign_body(list_id, dnd_id, **data)))[
        "campaign_id"]


def details(client, campaign_id: str) -> dict:
    rows = ok_body(client.get("/api/get_campaign_details"))["result"]
    return next(row for row in rows if row["campaign_id"] == campaign_id)


def contacts(client, campaign_id: str) -> dict[str, dict]:
    """number → the contact's entry in get_campaign_contacts."""
    rows = ok_body(client.post("/api/get_campaign_contacts",
                               {"campaign_id": campaign_id, "record_count": 500}))["result"]
    return {row["contact_number"]: row for row in rows}


def rows(campaign_id: str) -> dict[str, CampaignContact]:
    with database.connection_context():
        return {c.number: c for c in CampaignContact.select().where(
            CampaignContact.campaign_id == campaign_id)}


def attempt_of(campaign_id: str, number: str) -> CampaignAttempt | None:
    """The contact's latest attempt."""
    with database.connection_context():
        return (CampaignAttempt.select().where((CampaignAttempt.campaign_id == campaign_id)
                                               & (CampaignAttempt.number == number))
                .order_by(CampaignAttempt.attempt.desc()).first())


def open_calls(account_id: str) -> int:
    with database.connection_context():
        return CallRequest.select().where(
            (CallRequest.account_id == account_id)
            & CallRequest.status.in_(["queued", "dialing", "live"])).count()


def cdrs(campaign_id: str) -> list[Cdr]:
    with database.connection_context():
        return list(Cdr.select().where(Cdr.campaign_id == campaign_id))


def numbers(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


# ------------------------------------------------------------------------ the window

def test_window_before_start_at_start_and_after_its_end(api, settings, r, lease):
    # 10:00-18:00 in Kolkata is 04:30-12:30 UTC; one dial per turn (60 a minute, 1 s turns).
    cid = campaign(api, "window", numbers("9198000", 3), time_zone="Asia/Kolkata",
                   campaign_start_date="2030-06-10 10:00:00",
                   campaign_end_date="2030-06-10 18:00:00", calls_per_minute="60")
    dialer = Dialer(settings, r, utc("2030-06-10 04:29"))
    dialer.turn()
    assert dialer.jobs() == []
    got = details(api, cid)
    assert (got["campaign_status"], got["state_reason_code"]) == ("0", "outside_window")
    assert "10:00" in got["state_reason"] and "Asia/Kolkata" in got["state_reason"], got
    assert got["progress"]["pending"] == "3"

    dialer.at = utc("2030-06-10 04:30")
    dialer.turn()
    jobs = dialer.jobs()
    assert len(jobs) == 1 and dialer.number_of(jobs[0]) == "91980000000"
    got = details(api, cid)
    assert (got["campaign_status"], got["state_reason_code"]) == ("1", "")
    assert (got["progress"]["dialing"], got["progress"]["pending"]) == ("1", "2")

    dialer.at = utc("2030-06-10 12:30")
    dialer.turn()
    assert len(dialer.jobs()) == 1           # nothing more was queued
    got = details(api, cid)
    assert got["campaign_status"] == "3"
    assert (got["progress"]["skipped"], got["progress"]["dialing"]) == ("2", "1")
    listed = contacts(api, cid)
    assert [listed[n]["reason_code"] for n in ("91980000001", "91980000002")] == \
        ["window_ended", "window_ended"]
    assert listed["91980000000"]["state"] == "dialing"   # its call is still on: not cut


# ---------------------------------------------------------------------- calling hours

def kolkata(client, name: str, numbers_: list[str]) -> str:
    """A campaign in Asia/Kolkata, calling_hours 09:00-21:00, over 10-11 June 2030."""
    return campaign(client, name, numbers_, time_zone="Asia/Kolkata",
                    campaign_start_date="2030-06-10 00:00:00",
                    campaign_end_date="2030-06-12 00:00:00", calling_hours="09:00-21:00")


def queued_at_closing(client, settings, r, name: str) -> tuple[str, Dialer, str]:
    """A one-contact :func:`kolkata` campaign whose attempt was queued at 20:59, the
    clock now at 21:00: (campaign id, dialer, the attempt's job id)."""
    cid = kolkata(client, name, ["919800000001"])
    dialer = Dialer(settings, r, utc("2030-06-10 15:29"))
    dialer.turn()
    [job] = dialer.jobs()
    dialer.at = utc("2030-06-10 15:30")
    return cid, dialer, job


def test_calling_hours_in_the_campaign_zone(api, settings, r, lease):
    cid = kolkata(api, "hours", numbers("9198000", 2))
    dialer = Dialer(settings, r, utc("2030-06-10 03:29"))     # 08:59 in Kolkata
    dialer.turn()
    assert dialer.jobs() == []
    got = details(api, cid)
    assert (got["campaign_status"], got["state_reason_code"], got["state_reason"]) == \
        ("1", "outside_calling_hours", "outside calling_hours until 09:00 Asia/Kolkata")

    dialer.at = utc("2030-06-10 03:30")                        # 09:00
    dialer.turn()
    dialer.turn()                        # its token bucket starts with one token
    assert sorted(dialer.number_of(j) for j in dialer.jobs()) == ["91980000000", "91980000001"]
    assert details(api, cid)["state_reason_code"] == ""


def test_the_reason_is_said_again_after_a_pause_and_resume_between_turns(api, settings, r, lease):
    cid = kolkata(api, "said", ["919800000001"])
    dialer = Dialer(settings, r, utc("2030-06-10 02:00"))      # 07:30 in Kolkata
    dialer.turn()
    assert details(api, cid)["state_reason_code"] == "outside_calling_hours"
    ok_body(api.post("/api/pause_campaign", {"campaign_id": cid}))
    ok_body(api.post("/api/resume_campaign", {"campaign_id": cid}))
    assert details(api, cid)["state_reason_code"] == ""
    dialer.turn()
    got = details(api, cid)
    assert (got["state_reason_code"], got["state_reason"]) == \
        ("outside_calling_hours", "outside calling_hours until 09:00 Asia/Kolkata")


def test_an_attempt_queued_in_hours_and_dialed_after_they_closed_waits_for_the_next_day(
        api, settings, r, lease):
    cid, dialer, job = queued_at_closing(api, settings, r, "closing")
    assert dialer.admit(job) is False   # closed when dialed
    row = rows(cid)["919800000001"]
    assert (row.state, row.reason_code, row.attempts) == ("pending", "outside_calling_hours", 0)
    assert row.next_at == utc("2030-06-11 03:30")               # 09:00 the next day
    assert attempt_of(cid, "919800000001") is None and cdrs(cid) == []


def test_a_finished_campaign_completes_outside_its_calling_hours(api, settings, r, lease):
    cid, dialer, job = queued_at_closing(api, settings, r, "done_late")
    dialer.end(job, "ANSWER")           # the call ends as the hours close
    dialer.turn()
    got = details(api, cid)
    assert (got["campaign_status"], got["state_reason_code"]) == ("3", "")


def test_contact_local_time_dials_only_the_contact_inside_its_own_hours(api, settings, r, lease):
    cid = campaign(api, "local", [INDIA, US], campaign_start_date="2030-06-09 00:00:00",
                   campaign_end_date="2030-06-12 00:00:00", calling_hours="09:00-21:00",
                   contact_local_time="1")
    # 04:30 UTC: 10:00 in Kolkata, 21:30 the day before in San Francisco (PDT).
    dialer = Dialer(settings, r, utc("2030-06-10 04:30"))
    dialer.turn()
    dialer.turn()
    assert [dialer.number_of(j) for j in dialer.jobs()] == [INDIA]
    waiting = rows(cid)[US]
    assert (waiting.state, waiting.reason_code) == ("pending", "outside_calling_hours")
    assert waiting.next_at == utc("2030-06-10 16:00")           # 09:00 PDT
    assert contacts(api, cid)[US]["next_at"] == "Mon, 10 Jun 2030 16:00:00 GMT"

    dialer.at = utc("2030-06-10 15:59")
    dialer.turn()
    assert len(dialer.jobs()) == 1
    dialer.at = utc("2030-06-10 16:00")
    dialer.turn()
    assert sorted(dialer.number_of(j) for j in dialer.jobs()) == sorted([INDIA, US])


# --------------------------------------------------------------------------- pacing

def test_pacing_spreads_calls_per_minute_evenly_and_never_bursts(api, settings, r, lease):
    cid = campaign(api, "pacing", numbers("9198000", 80), calls_per_minute="600",
                   **JUNE_10)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"), account_max_calls=0)
    capacity = 600 / 60 * dialer.settings.scan_interval * 2     # the bucket holds two turns
    per_second: Counter[int] = Counter()
    started = 0
    for i in range(40):                  # 4 simulated seconds at 0.1 s a turn
        dialer.turn(0.1)
        now = len(dialer.jobs())
        assert now - started <= capacity
        per_second[i // 10] += now - started
        started = now
    assert all(9 <= per_second[s] <= 11 for s in range(4)), per_second
    assert 39 <= started <= 41
    dialer.turn(30.0)                    # idle for half a minute: no saved-up burst
    assert len(dialer.jobs()) - started == capacity
    assert details(api, cid)["progress"]["dialing"] == str(len(dialer.jobs()))


# --------------------------------------------------------------------------- limits

def test_the_account_limit_holds_open_calls_and_a_settled_call_frees_a_slot(
        api, settings, r, lease):
    cid = campaign(api, "limit", numbers("9198000", 5), **JUNE_10)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"), account_max_calls=2)
    first = dialer.queued_after_turns(2)
    dialer.turn()                        # full: the turn says so
    assert len(dialer.jobs()) == 2
    account = account_of(first[0])
    assert open_calls(account) == 2
    got = details(api, cid)
    assert (got["state_reason_code"], got["state_reason"]) == \
        ("account_limit", "account limit of 2 concurrent calls reached")
    dialer.end(first[0], "ANSWER")
    dialer.turn()
    assert len(dialer.jobs()) == 3 and open_calls(account) == 2
    dialer.turn()
    assert len(dialer.jobs()) == 3 and details(api, cid)["state_reason_code"] == "account_limit"
    assert details(api, cid)["progress"]["answered"] == "1"


def test_the_account_limit_holds_across_the_accounts_campaigns(api, settings, r, lease):
    cids = [campaign(api, f"limit_{i}", numbers(f"919800{i}", 5), **JUNE_10) for i in (1, 2)]
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"), account_max_calls=3)
    for _ in range(4):                   # each campaign alone has room for more
        dialer.turn()
        assert open_calls(account_of(dialer.jobs()[0])) <= 3, len(dialer.jobs())
    assert len(dialer.jobs()) == 3
    assert "account_limit" in [details(api, c)["state_reason_code"] for c in cids]


def test_a_finished_campaign_completes_while_its_account_is_at_its_cap(api, settings, r, lease):
    cid = campaign(api, "done_at_cap", ["919800000001"], **JUNE_10)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"), account_max_calls=2)
    dialer.turn()
    [job] = dialer.jobs()
    account = account_of(job)
    dialer.end(job, "ANSWER")
    for _ in range(2):                   # two click2calls of the account are on the wire
        calls.record_request(account, ids.request_id(), "c2c", agent_number="919979270001",
                             customer_number="918000680486", caller_id="15168148111",
                             recording_option="off", transcript="off",
                             destination_context="click2call", call_direction="outbound")
    assert open_calls(account) == 2
    dialer.turn()
    assert details(api, cid)["campaign_status"] == "3"


def _two_accounts(api, other, n: int) -> tuple[str, str]:
    return (campaign(api, "share_1", numbers("9198001", n), **JUNE_10),
            campaign(other, "share_2", numbers("9198002", n), **JUNE_10))


def _shares(cids: tuple[str, str], jobs: list[str]) -> list[int]:
    """How many of the first 100 dials in ``jobs`` (in the order they were queued) each
    campaign had (the first 100, or all of them when fewer)."""
    with database.connection_context():
        owner = dict(CampaignAttempt.select(CampaignAttempt.id, CampaignAttempt.campaign_id)
                     .where(CampaignAttempt.id.in_(jobs[:100])).tuples())
    counts = Counter(owner[j] for j in jobs[:100])
    return [counts[c] for c in cids]


def test_the_trunk_cps_is_shared_equally_between_two_accounts(api, other, settings, r, lease):
    cids = _two_accounts(api, other, 60)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"), trunk_cps=10.0)
    while len(dialer.jobs()) < 100:      # 0.1 s a turn: one trunk token a turn
        dialer.turn(0.1)
    one, two = _shares(cids, dialer.jobs())
    assert one + two == 100 and abs(one - two) <= 1, (one, two)
    waiting = [details(api, cids[0])["state_reason_code"],
               details(other, cids[1])["state_reason_code"]]
    assert "trunk_limit" in waiting, waiting


def test_the_trunk_cps_is_shared_when_a_token_comes_every_other_turn(api, other, settings, r,
                                                                   lease):
    cids = _two_accounts(api, other, 60)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"), trunk_cps=5.0)
    for _ in range(80):                  # 0.1 s a turn: half a trunk token a turn
        dialer.turn(0.1)
    one, two = _shares(cids, dialer.jobs())
    assert 39 <= one + two <= 41 and abs(one - two) <= 1, (one, two)


def test_a_turn_held_back_by_the_trunk_cps_lets_the_scanner_wait(api, other, settings, r):
    """The trunk's tokens arrive at its rate: running again at once would only spin."""
    _two_accounts(api, other, 10)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"), trunk_cps=1.0)

    def task() -> bool:                  # 10 ms between turns: no trunk token comes
        dialer.mono += 0.01
        return dialer.task()

    loop = scanner.Scanner(r, [task], interval=0.2)
    try:
        waits = [loop.turn() for _ in range(5)]
    finally:
        loop.lease.release()
    assert len(dialer.jobs()) == 1       # one token; the others come one a second
    assert waits == [0.2] * 5


def test_the_trunk_call_cap_is_shared_equally_between_two_accounts(api, other, settings, r, lease):
    cids = _two_accounts(api, other, 60)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"), trunk_max_calls=3)
    started: list[str] = []
    while len(started) < 100:
        dialer.turn()
        live = [j for j in dialer.jobs() if j not in started]
        assert len(live) <= 3
        for job in live:                 # every call ends before the next turn
            dialer.end(job, "ANSWER")
        started += live
    one, two = _shares(cids, started)
    assert one + two == 100 and abs(one - two) <= 1, (one, two)


# ---------------------------------------------------------- the check at dialing time

def test_a_paused_or_stopped_campaign_hands_its_queued_attempts_back(api, settings, r, lease):
    cid = campaign(api, "pause", ["919800000001", "919800000002", "919800000003"],
                   **JUNE_10)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"))
    by_number = {dialer.number_of(j): j for j in dialer.queued_after_turns(3)}
    assert dialer.admit(by_number["919800000003"]) is True
    assert attempt_of(cid, "919800000003").status == "placed"

    ok_body(api.post("/api/pause_campaign", {"campaign_id": cid}))
    assert dialer.admit(by_number["919800000001"]) is False
    ok_body(api.post("/api/resume_campaign", {"campaign_id": cid}))
    ok_body(api.post("/api/stop_campaign", {"campaign_id": cid}))
    assert dialer.admit(by_number["919800000002"]) is False
    for number in ("919800000001", "919800000002"):
        row = rows(cid)[number]
        assert (row.state, row.attempts) == ("pending", 0)
        assert attempt_of(cid, number) is None
        with database.connection_context():
            assert CallRequest.get_or_none(CallRequest.id == by_number[number]) is None
    assert cdrs(cid) == []
    assert details(api, cid)["campaign_status"] == "2"


def test_a_campaign_paused_before_its_window_resumes_as_scheduled(api, settings, r, lease):
    cid = campaign(api, "early_pause", ["919800000001"], campaign_start_date="2030-06-10 08:00:00",
                   campaign_end_date="2030-06-11 00:00:00")
    ok_body(api.post("/api/pause_campaign", {"campaign_id": cid}))
    assert details(api, cid)["campaign_status"] == "4"
    ok_body(api.post("/api/resume_campaign", {"campaign_id": cid}))
    dialer = Dialer(settings, r, utc("2030-06-10 07:00"))
    dialer.turn()
    got = details(api, cid)
    assert (got["campaign_status"], got["state_reason_code"]) == ("0", "outside_window")
    dialer.at = utc("2030-06-10 08:00")
    dialer.turn()
    assert details(api, cid)["campaign_status"] == "1" and len(dialer.jobs()) == 1


def test_a_paused_campaign_whose_window_ended_is_completed(api, settings, r, lease):
    cid = campaign(api, "paused_out", numbers("9198000", 2), **JUNE_10)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"))
    dialer.turn()                        # one dialed, one left
    ok_body(api.post("/api/pause_campaign", {"campaign_id": cid}))
    dialer.turn()
    assert details(api, cid)["state_reason_code"] == "paused"
    dialer.at = utc("2030-06-11 00:00")
    dialer.turn()
    got = details(api, cid)
    assert (got["campaign_status"], got["state_reason_code"]) == ("3", "window_ended")
    assert contacts(api, cid)["91980000001"]["reason_code"] == "window_ended"
    resumed = api.post("/api/resume_campaign", {"campaign_id": cid})
    assert resumed.status_code == 409


def test_a_dnd_entry_added_after_the_attempt_was_queued_takes_effect(api, settings, r, lease):
    cid = campaign(api, "dnd", ["919800000001", "919800000002"],
                   **JUNE_10)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"))
    by_number = {dialer.number_of(j): j for j in dialer.queued_after_turns(2)}
    assert len(by_number) == 2
    dnd_id = details(api, cid)["dnd_list_id"]
    ok_body(api.post("/api/add_dnd_contact_to_list", {"dnd_list_id": dnd_id, "dnd_contacts": [
        {"dnd_contact_number": "919800000001"}]}))
    refused = by_number["919800000001"]
    r.delete(EVENT_STREAM)
    assert dialer.admit(refused) is False
    [(_, fields)] = r.xrange(EVENT_STREAM)
    event = events.parse(EngineEvent.from_fields(fields))
    assert isinstance(event, PlanEnded)
    assert (event.plan_id, event.cause, dict(event.legs)) == (refused, "dnd", {})
    assert dialer.admit(by_number["919800000002"]) is True

    with database.connection_context():        # the events consumer writes its CDR
        settled = consumer.handle(event)
        assert attempts.settle(refused, settled.record.dial_status, settled.record.hangup_cause,
                               dialer.at)
    [row] = cdrs(cid)
    assert (row.request_id, row.dial_status, row.is_dnd, row.uniqueid != "") == \
        (refused, "DND", 1, True)
    assert rows(cid)["919800000001"].state == "dnd"
    assert details(api, cid)["progress"]["dnd"] == "1"


def test_the_per_number_cap_spans_the_accounts_campaigns(api, settings, r, lease):
    first = campaign(api, "cap_1", ["919800000001"], **JUNE_10)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"), max_attempts_per_number_24h=1)
    dialer.turn()
    [job] = dialer.jobs()
    assert dialer.admit(job) is True
    dialer.end(job, "ANSWER")
    second = campaign(api, "cap_2", ["919800000001"], **JUNE_10)
    dialer.at += timedelta(hours=1)
    dialer.turn()
    [later] = [j for j in dialer.jobs() if j != job]
    assert dialer.admit(later) is False
    row = rows(second)["919800000001"]
    assert (row.state, row.reason_code) == ("skipped", "number_cap")
    assert rows(first)["919800000001"].state == "answered"
    assert cdrs(second) == []


# -------------------------------------------------------------------------- retries

def test_retries_by_cause(api, settings, r, lease):
    busy, answer, declined, noanswer = ("919800000486", "919800000111", "919800000603",
                                        "919800000480")
    cid = campaign(api, "retries", [busy, answer, declined, noanswer], max_retries="1",
                   retry_time="60", retry_on_statuses="NOANSWER,BUSY,CHANUNAVAIL",
                   **JUNE_10)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"))
    first = {dialer.number_of(j): j for j in dialer.queued_after_turns(4)}
    for number, outcome in ((busy, "BUSY"), (answer, "ANSWER"), (declined, "DECLINE"),
                            (noanswer, "NOANSWER")):
        dialer.end(first[number], outcome)
    now = rows(cid)
    assert (now[busy].state, now[busy].next_at) == ("retry_wait", dialer.at + timedelta(seconds=60))
    assert now[noanswer].state == "retry_wait"
    assert now[answer].state == "answered"
    assert (now[declined].state, now[declined].reason_code) == ("failed", "declined")

    dialer.at += timedelta(seconds=30)
    dialer.turn()
    got = details(api, cid)
    assert (got["state_reason_code"], got["state_reason"]) == \
        ("retry_wait", "2 contacts waiting for retries, next at 08:01:00 UTC")
    dialer.at += timedelta(seconds=29)
    dialer.turn()
    assert len(dialer.jobs()) == 4
    dialer.at += timedelta(seconds=1)
    dialer.turn()
    second = {dialer.number_of(j): j for j in dialer.jobs() if j not in first.values()}
    assert sorted(second) == sorted([busy, noanswer])
    dialer.end(second[busy], "ANSWER")
    dialer.end(second[noanswer], "NOANSWER")     # max_retries 1: its second try was its last
    final = rows(cid)
    assert {n: (c.state, c.attempts) for n, c in final.items()} == {
        busy: ("answered", 2), answer: ("answered", 1), declined: ("failed", 1),
        noanswer: ("failed", 2)}
    dialer.turn()
    got = details(api, cid)
    assert got["campaign_status"] == "3"
    assert (got["progress"]["answered"], got["progress"]["failed"]) == ("2", "2")
    assert len(cdrs(cid)) == 6                 # each attempt has its own CDR row
    tries = contacts(api, cid)[noanswer]["tries"]
    assert [(t["attempt"], t["dial_status"]) for t in tries] == \
        [("1", "NOANSWER"), ("2", "NOANSWER")]


def test_an_attempt_dialed_after_the_window_ended_makes_its_contact_final(
        api, settings, r, lease):
    cid = campaign(api, "ended", ["919800000001"], campaign_start_date="2030-06-10 08:00:00",
                   campaign_end_date="2030-06-10 09:00:00")
    dialer = Dialer(settings, r, utc("2030-06-10 08:59"))
    dialer.turn()
    [job] = dialer.jobs()
    dialer.at = utc("2030-06-10 09:00")
    dialer.turn()                        # the window ended: completed before the job ran
    assert details(api, cid)["campaign_status"] == "3"
    assert dialer.admit(job) is False
    row = rows(cid)["919800000001"]
    assert (row.state, row.reason_code) == ("skipped", "window_ended")
    assert details(api, cid)["progress"]["pending"] == "0"


def test_a_window_that_passed_before_the_first_turn_skips_every_contact(api, settings, r, lease):
    cid = campaign(api, "missed", numbers("9198000", 3), campaign_start_date="2030-06-10 08:00:00",
                   campaign_end_date="2030-06-10 09:00:00")
    dialer = Dialer(settings, r, utc("2030-06-10 10:00"))   # the dialer was down all along
    dialer.turn()
    got = details(api, cid)
    assert got["campaign_status"] == "3" and dialer.jobs() == []
    assert (got["progress"]["total"], got["progress"]["skipped"]) == ("3", "3"), got["progress"]
    assert {c["reason_code"] for c in contacts(api, cid).values()} == {"window_ended"}


def test_contacts_added_to_a_running_campaign_are_dialed(api, settings, r, lease):
    cid = campaign(api, "growing", ["919800000001"], **JUNE_10)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"))
    dialer.turn()
    ok_body(api.post("/api/add_contact_to_list", {
        "list_id": details(api, cid)["list_id"], "contacts": [{"contact_number": "919800000002"}]}))
    assert details(api, cid)["progress"]["total"] == "2"
    dialer.turn(3.0)
    assert sorted(dialer.number_of(j) for j in dialer.jobs()) == ["919800000001", "919800000002"]


def test_a_retry_due_after_the_window_makes_the_contact_final(api, settings, r, lease):
    cid = campaign(api, "late_retry", ["919800000486"], max_retries="3", retry_time="3600",
                   campaign_start_date="2030-06-10 08:00:00",
                   campaign_end_date="2030-06-10 08:30:00")
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"))
    dialer.turn()
    [job] = dialer.jobs()
    dialer.end(job, "BUSY")
    row = rows(cid)["919800000486"]
    assert (row.state, row.reason_code) == ("failed", "window_ended")
    dialer.turn()
    assert details(api, cid)["campaign_status"] == "3"
    assert dialer.jobs() == [job]


# ------------------------------------------------------------------------ reconcile

def test_reconcile_requeues_a_lost_job_and_settles_a_lost_notice(api, settings, r, lease):
    cid = campaign(api, "reconcile", ["919800000001", "919800000002"],
                   **JUNE_10)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"))
    by_number = {dialer.number_of(j): j for j in dialer.queued_after_turns(2)}
    lost, unsettled = by_number["919800000001"], by_number["919800000002"]
    dialer.queue.remove(lost)                        # Redis lost that job
    with database.connection_context():              # the CDR is written, its notice lost
        consumer.handle(PlanEnded(plan_id=unsettled, account_id=account_of(unsettled),
                                  cause="normal", legs={"contact": LegOutcome(
                                      role="contact", number="", channel="sip",
                                      started_at=dialer.at.timestamp(), sip_code=486,
                                      dial_status="BUSY")}))
    assert attempt_of(cid, "919800000002").status == "queued"

    dialer.at += timedelta(seconds=5)
    dialer.reconcile()
    assert dialer.jobs() == [unsettled]              # queued 5 s ago: not lost yet
    assert attempt_of(cid, "919800000002").status == "done"
    assert rows(cid)["919800000002"].state == "failed"   # BUSY, max_retries 0

    dialer.at += timedelta(seconds=6)
    dialer.reconcile()
    dialer.reconcile()
    assert sorted(dialer.jobs()) == sorted([unsettled, lost])
    assert dialer.number_of(lost) == "919800000001"
    assert [c.request_id for c in cdrs(cid)] == [unsettled]


def test_the_events_consumer_settles_an_attempt_when_its_cdr_commits(api, settings, r, lease):
    # As the events process runs: the CDR's commit tells the notifier, whose campaign
    # subscriber settles the attempt then, not the dialer's reconcile seconds later.
    cid = campaign(api, "notified", ["919800000001"], max_retries="1", retry_time="60",
                   **JUNE_10)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"))
    [job] = dialer.queued_after_turns(1)
    assert dialer.admit(job)
    events.publish(r, PlanEnded(plan_id=job, account_id=account_of(job), cause="normal",
                                legs={"contact": LegOutcome(
                                    role="contact", number="", channel="sip",
                                    started_at=dialer.at.timestamp(), sip_code=486,
                                    dial_status="BUSY")}))
    r.xgroup_create(EVENT_STREAM, consumer.GROUP, id="0", mkstream=True)
    consumer.Consumer(r, 600, on_settled=platform_notifier().on_settled).round()
    assert [c.request_id for c in cdrs(cid)] == [job]
    assert attempt_of(cid, "919800000001").status == "done"
    assert rows(cid)["919800000001"].state == "retry_wait"   # BUSY, one retry left


# ---------------------------------------------------------------------- dialer_down

def test_a_running_campaign_says_dialer_down_without_a_lease_holder(api, settings, r):
    cid = campaign(api, "down", ["919800000001"], **JUNE_10)
    dialer = Dialer(settings, r, utc("2030-06-10 08:00"))
    dialer.turn()
    got = details(api, cid)
    assert (got["campaign_status"], got["state_reason_code"]) == ("1", "dialer_down")
    assert got["state_reason"]
    held = Lease(r, scanner.LEASE, ttl=600)
    assert held.acquire_or_renew()
    try:
        assert details(api, cid)["state_reason_code"] == ""
    finally:
        held.release()
    assert details(api, cid)["state_reason_code"] == "dialer_down"


# ------------------------------------------------------------------- engine capacity

def test_the_dialer_holds_back_while_the_engine_is_behind(api, settings, r, lease):
    from pjsua_engine import keys

    cid = campaign(api, "engine_behind", numbers("9198100", 3), **JUNE_10)
    dialer = Dialer(settings, r, utc("2030-06-10 12:00"))
    # Plans waiting in the embedded pool's queue for a free call slot, as a pool whose
    # workers are all busy leaves them (more than max(10, 2 s of the campaign's pace)).
    backlog = [Plan(f"x{i:09d}", "AC0000000000", "otp", []).to_json() for i in range(220)]
    r.rpush(keys.plan_queue(1), *backlog)
    try:
        dialer.turn()
        assert dialer.jobs() == []
        got = details(api, cid)
        assert got["state_reason_code"] == "no_engine_capacity"
        assert "220 calls waiting" in got["state_reason"], got
    finally:
        r.delete(keys.plan_queue(1))
    assert dialer.queued_after_turns(1), "dialing starts again once the engine caught up"
    assert details(api, cid)["state_reason_code"] == ""
