"""The callback task of the due-work scanner, the scanner's lease and the notifier, in
process over the real database (SQLite and PostgreSQL) and Redis, on an injected clock:
a callback an hour ahead is due when the clock says so. (tests/reliability/
test_callbacks.py runs the same through the whole platform, with real calls.)"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis as redis_lib
from rq import Queue

from cpaas import ids, scanner
from cpaas.callbacks.scheduler import CallbackTask
from cpaas.cdr import consumer
from cpaas.db import database
from cpaas.models import Account, Callback, CallRequest
from cpaas.notifier import Notifier, platform_notifier
from cpaas.platform import CALLS_QUEUE
from cpaas.telephony.events import EVENT_STREAM, EngineEvent
from cpaas.telephony.plans import Dial, Plan, Record
from cpaas.validation import utcnow
from tests import servers
from tests.api.conftest import body
from tests.api.helpers import ok_body

ZONE = "Asia/Kolkata"


class Clock:
    """The scanner's idea of now, set by the test."""

    def __init__(self) -> None:
        self.at = utcnow()

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def r(settings) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(settings.redis_url)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def task(app, settings, r, clock) -> CallbackTask:
    return CallbackTask(settings, r, clock)


def create(api, in_hours: float = 1, **fields) -> tuple[str, datetime]:
    """A callback ``in_hours`` from now in ``ZONE``; (request_id, its time in UTC)."""
    utc = (utcnow() + timedelta(hours=in_hours)).replace(microsecond=0)
    local = utc.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(ZONE))
    data = {"agent_number": "919979270001", "caller_id": "15168148111",
            "destination_number": "918000680486", "time_zone": ZONE,
            "scheduled_at": local.strftime("%Y-%m-%d %H:%M:%S"), **fields}
    return ok_body(api.post("/api/callback", data))["request_id"], utc


def run(task: CallbackTask) -> bool:
    with database.connection_context():
        return task()


def row(request_id: str) -> Callback:
    with database.connection_context():
        return Callback.get_by_id(request_id)


def request_of(request_id: str) -> CallRequest | None:
    with database.connection_context():
        return CallRequest.get_or_none(CallRequest.id == request_id)


def queued(r: redis_lib.Redis) -> list[str]:
    """The ids of the call jobs in the queue, duplicates included."""
    return [raw.decode() for raw in r.lrange(f"rq:queue:{CALLS_QUEUE}", 0, -1)]


def plan_of(r: redis_lib.Redis, request_id: str) -> Plan:
    return Plan.from_json(Queue(CALLS_QUEUE, connection=r).fetch_job(request_id).args[0])


def test_a_due_callback_is_claimed_with_its_request_then_queued(api, task, clock, r):
    request_id, at = create(api, recording_option="on")
    clock.at = at - timedelta(seconds=1)
    run(task)
    assert row(request_id).status == "scheduled" and queued(r) == []
    clock.at = at + timedelta(seconds=5)
    run(task)
    fired = row(request_id)
    assert (fired.status, fired.fired_at) == ("fired", clock.at)
    request = request_of(request_id)
    assert (request.kind, request.destination_context, request.status, request.agent_number,
            request.customer_number, request.recording_option) == \
        ("callback", "callback", "queued", "919979270001", "918000680486", "both")
    assert queued(r) == [request_id]
    plan = plan_of(r, request_id)
    assert plan.kind == "callback" and plan.plan_id == request_id
    assert [(v.leg, v.number) for v in plan.verbs if isinstance(v, Dial)] == \
        [("agent", "919979270001"), ("customer", "918000680486")]
    assert any(isinstance(v, Record) for v in plan.verbs)
    run(task)                           # a second pass fires nothing again
    assert queued(r) == [request_id]
    got = body(api.get(f"/api/callback?request_id={request_id}"))["result"]
    assert got["status"] == "fired"
    for method in (api.patch, api.delete):
        r_ = method("/api/callback", {"request_id": request_id})
        assert r_.status_code == 409, r_.data


def test_late_after_a_minute_and_failed_undialed_past_the_limit(api, task, clock, r, settings):
    assert settings.callback_max_late == 3600      # CPAAS_CALLBACK_MAX_LATE's default
    late, late_at = create(api, in_hours=3)
    hopeless, _ = create(api, in_hours=1)           # 2 h overdue when the other is 61 s
    clock.at = late_at + timedelta(seconds=61)
    run(task)
    assert row(late).status == "late" and row(late).fired_at == clock.at
    failed = row(hopeless)
    assert (failed.status, failed.fired_at) == ("failed", None)
    assert request_of(hopeless) is None and hopeless not in queued(r)
    fresh, fresh_at = create(api, in_hours=5)
    clock.at = fresh_at + timedelta(seconds=60)
    run(task)
    assert row(fresh).status == "fired"


def test_a_patch_landing_after_the_scanner_read_the_row_wins(api, task, clock, r):
    request_id, at = create(api)
    clock.at = at + timedelta(seconds=1)
    stale = row(request_id)
    later = (at + timedelta(hours=1)).replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(ZONE))
    ok_body(api.patch("/api/callback", {"request_id": request_id,
                                        "scheduled_at": later.strftime("%Y-%m-%d %H:%M:%S")}))
    with database.connection_context():
        assert task.fire(stale, clock.at) is False
    assert row(request_id).status == "scheduled" and queued(r) == []
    # A change of numbers only: the claim reads the row it claims, so the new agent is dialed.
    stale = row(request_id)
    ok_body(api.patch("/api/callback", {"request_id": request_id, "agent_number": "919979270009"}))
    clock.at = at + timedelta(hours=1, seconds=1)
    with database.connection_context():
        assert task.fire(stale, clock.at) is True
    assert plan_of(r, request_id).verbs[0].number == "919979270009"


def _insert_due(account: str, count: int, at: datetime) -> list[str]:
    made = [ids.request_id() for _ in range(count)]
    with database.connection_context(), database.atomic():
        for request_id in made:
            Callback.create(id=request_id, account_id=account, agent_number="919979270001",
                            caller_id="15168148111", destination_number="918000680486",
                            recording_option="off", time_zone="UTC", scheduled_at=at,
                            status="scheduled", fired_at=None, created_at=at)
    return made


def test_two_scanners_racing_fire_each_callback_once(app, settings, r, clock):
    with database.connection_context():
        account = Account.get(Account.name == "account_1").id
    made = _insert_due(account, 250, clock.at - timedelta(seconds=2))
    tasks = [CallbackTask(settings, r, clock) for _ in range(2)]
    start = threading.Barrier(2)

    def drain(task: CallbackTask) -> None:
        start.wait()
        while run(task):
            pass

    threads = [threading.Thread(target=drain, args=(t,)) for t in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(queued(r)) == sorted(made)    # each once, none twice
    with database.connection_context():
        assert CallRequest.select().where(CallRequest.id.in_(made)).count() == 250
        assert Callback.select().where(Callback.status == "fired").count() == 250


def test_a_plan_redis_refuses_is_unclaimed_then_fired_by_a_later_pass(api, settings, r, clock):
    request_id, at = create(api)
    clock.at = at + timedelta(seconds=1)
    away = redis_lib.Redis(host="127.0.0.1", port=servers.free_port(), socket_connect_timeout=1)
    with pytest.raises(redis_lib.RedisError):
        run(CallbackTask(settings, away, clock))
    back = row(request_id)
    assert (back.status, back.fired_at) == ("scheduled", None)
    assert request_of(request_id) is None
    run(CallbackTask(settings, r, clock))
    assert row(request_id).status == "fired" and queued(r) == [request_id]


def test_a_fired_callback_whose_call_never_left_ends_failed(api, task, clock, r):
    """Through the events consumer's post-commit seam, as the ``events`` process runs it."""
    lost, at = create(api)
    busy, _ = create(api, agent_number="919979270002")
    clock.at = at + timedelta(seconds=1)
    run(task)
    account = row(lost).account_id
    agent = {"role": "agent", "number": "919979270002", "channel": "PJSIP/a", "started_at": 1.0,
             "answered_at": None, "ended_at": 2.0, "sip_code": 486, "dial_status": "BUSY"}
    for request_id, legs, cause in ((lost, {}, "swept: job lost"),
                                    (busy, {"agent": agent}, "normal")):
        r.xadd(EVENT_STREAM, EngineEvent("plan.ended", request_id, account, data={
            "legs": legs, "dtmf": "", "recordings": [], "cause": cause}).to_fields())
    r.xgroup_create(EVENT_STREAM, consumer.GROUP, id="0", mkstream=True)
    reader = consumer.Consumer(r, 600, on_settled=platform_notifier().on_settled)
    reader.round()
    assert [cdr["dial_status"] for rid in (lost, busy)
            for cdr in body(api.post("/api/get_cdr_by_request_id", {"request_id": rid}))["result"]] \
        == ["CHANUNAVAIL", "BUSY"]
    assert row(lost).status == "failed"
    assert row(busy).status == "fired"      # it fired; its CDR says BUSY


def test_a_failing_subscriber_is_logged_and_the_next_still_hears(caplog):
    heard = []
    notifier = Notifier()
    notifier.subscribe_call_settled(lambda request, cdr: 1 / 0)
    notifier.subscribe_call_settled(lambda request, cdr: heard.append((request.id, cdr)))
    request = CallRequest(id="0123456789", account_id="AC1")
    notifier.call_settled(request, "the cdr")
    assert heard == [("0123456789", "the cdr")]
    assert any(rec.getMessage() == "subscriber failed" and rec.exc_info for rec in caplog.records)


def test_one_scanner_runs_its_tasks_and_healthz_names_it(app, r):
    r.delete(f"cpaas:lease:{scanner.LEASE}")
    client = app.test_client()
    assert body(client.get("/healthz"))["scanner"] == "down"
    ran: list[str] = []
    first = scanner.Scanner(r, [lambda: ran.append("first") or False], interval=0.2)
    second = scanner.Scanner(r, [lambda: ran.append("second") or False], interval=0.2)
    assert first.turn() == 0.2 and second.turn() == scanner.STANDBY_WAIT
    assert ran == ["first"]
    assert body(client.get("/healthz"))["scanner"] == first.lease.token
    first.lease.release()
    assert body(client.get("/healthz"))["scanner"] == "down"
