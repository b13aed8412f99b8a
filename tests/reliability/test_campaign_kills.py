"""A campaign dials each contact exactly once, whatever process or server is killed.

The whole platform runs for real (sandbox carrier on sipp, the PJSUA2 engine pool, two
RQ workers each running a scanner thread, the events process with its sweeper) over
PostgreSQL and Redis that persist as ``make run`` runs them. Each test runs a campaign
with ``max_retries`` 0 against answering numbers (and a few DND ones), SIGKILLs one part
in the middle of it, and then checks, from the carrier's own INVITE log (counted by
Call-ID, never from our rows): every contact reached a final state, exactly one INVITE
per contact reached the far end, and no DND number was dialed.
"""
from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from rq import Worker

from cpaas import db
from cpaas.calls.state import CallState
from cpaas.lease import holder
from cpaas.models import CallRequest
from cpaas.telephony import handoff
from sandbox_carrier.carrier import invited_numbers
from tests import launcher
from tests.api.helpers import campaign_body, make_dnd_list, make_list, ok_body
from tests.e2e.conftest import Platform
from tests.e2e.numbers import number
from tests.launcher import wait_for
from tests.reliability.test_calls import a_running_rq_worker, alive

HOLD = 3
CONTACTS, DND = 40, 3
#: How long a campaign may take to finish after the kill (a lost job is queued again
#: after 10 s, a lost call is swept after its grace, a scanner taken over within ~6 s).
FINISH_WITHIN = 120


@pytest.fixture(scope="module")
def platform(tmp_path_factory, durable_pg, durable_redis):
    env = {"CPAAS_SWEEP_INTERVAL": "2", "CPAAS_SWEEP_GRACE": "6", "CPAAS_SCAN_INTERVAL": "0.1"}
    with launcher.platform(tmp_path_factory.mktemp("campaign-kills"), durable_redis.url,
                           durable_pg.url, hold=HOLD, engine_workers=4, rq_workers=2,
                           extra_env=env) as running:
        started = Platform(running)
        wait_for(lambda: holder(started.redis, "scanner"), 60, "a scanner")
        yield started


def _utc(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%d %H:%M:%S")


def _start_campaign(api, name: str) -> tuple[str, list[str], list[str]]:
    """A running campaign of answering contacts and a few DND ones."""
    answering = [number("111") for _ in range(CONTACTS)]
    blocked = [number("222") for _ in range(DND)]
    list_id = make_list(api, f"list_{name}")
    ok_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": [
        {"contact_number": n} for n in answering + blocked]}))
    dnd_id = make_dnd_list(api, f"dnd_{name}")
    ok_body(api.post("/api/add_dnd_contact_to_list", {"dnd_list_id": dnd_id, "dnd_contacts": [
        {"dnd_contact_number": n} for n in blocked]}))
    data = campaign_body(list_id, dnd_id, campaign_name=name, time_zone="UTC",
                         campaign_start_date=_utc(-timedelta(minutes=1)),
                         campaign_end_date=_utc(timedelta(hours=1)), repeat="1",
                         announcement_text="Hello, this is a test.", max_retries="0",
                         calls_per_minute="300", voice="Joanna")
    campaign_id = ok_body(api.post("/api/create_campaign", data))["campaign_id"]
    return campaign_id, answering, blocked


def _sent(platform: Platform) -> Counter:
    return Counter(invited_numbers(platform.running.carrier_log))


def _midway(platform: Platform, numbers: list[str]) -> None:
    """Wait until about a quarter of the contacts were dialed."""
    wait_for(lambda: sum(1 for n in numbers if _sent(platform)[n]) >= len(numbers) // 4, 60,
             "a quarter of the campaign dialed")


def _assert_exactly_once(platform: Platform, api, campaign_id: str, answering: list[str],
                         blocked: list[str]) -> dict:
    def done():
        for row in ok_body(api.get("/api/get_campaign_details"))["result"]:
            if row["campaign_id"] == campaign_id and row["campaign_status"] == "3":
                return row
        return None

    details = wait_for(done, FINISH_WITHIN, f"campaign {campaign_id} completed", 0.5)
    progress = details["progress"]
    assert progress["pending"] == progress["dialing"] == progress["retry_waiting"] == "0", progress
    assert int(progress["total"]) == len(answering) + len(blocked)
    time.sleep(HOLD + 1)   # nothing more may leave after it says it is done
    sent = _sent(platform)
    twice = [n for n in answering if sent[n] > 1]
    never = [n for n in answering if sent[n] == 0]
    assert not twice, f"{len(twice)} contacts dialed more than once"
    assert not never, f"{len(never)} contacts never dialed"
    assert all(sent[n] == 0 for n in blocked), "a DND number was dialed"
    assert progress["dnd"] == str(len(blocked))
    return progress


def test_rq_worker_placing_the_calls_killed(platform):
    api = platform.client("account_1")
    campaign_id, answering, blocked = _start_campaign(api, "kill_rq_worker")
    _midway(platform, answering)
    os.kill(a_running_rq_worker(platform.redis), signal.SIGKILL)
    _assert_exactly_once(platform, api, campaign_id, answering, blocked)


def test_engine_process_killed(platform):
    api = platform.client("account_1")
    campaign_id, answering, blocked = _start_campaign(api, "kill_engine")
    _midway(platform, answering)
    workers = [json.loads(v)["pid"] for v in platform.redis.hgetall("cpaas:engine:workers").values()]
    victim = next(pid for pid in workers if alive(pid))
    os.kill(victim, signal.SIGKILL)
    _assert_exactly_once(platform, api, campaign_id, answering, blocked)


def test_lease_holding_scanner_killed_and_another_takes_over(platform):
    api = platform.client("account_1")
    campaign_id, answering, blocked = _start_campaign(api, "kill_scanner")
    _midway(platform, answering)
    token, _ = holder(platform.redis, "scanner")
    pid = int(token.split(":")[1])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (lambda h: h and int(h[0].split(":")[1]) != pid)(
        holder(platform.redis, "scanner")), 30, "a second scanner to take the lease")
    _assert_exactly_once(platform, api, campaign_id, answering, blocked)


def test_redis_killed_and_restarted(platform, durable_redis):
    api = platform.client("account_1")
    campaign_id, answering, blocked = _start_campaign(api, "kill_redis")
    _midway(platform, answering)
    durable_redis.kill()
    time.sleep(2)
    durable_redis.start()
    _assert_exactly_once(platform, api, campaign_id, answering, blocked)


def _caught_between_claim_and_handoff(r, tries: int = 20) -> str:
    """SIGKILL an RQ worker while its call job holds a claimed request whose plan it has
    not handed over yet (stopped first, so the state seen is the state killed); returns
    the request id. A job caught after its handoff is let go and the next one tried."""
    for _ in range(tries):
        def busy():
            for worker in Worker.all(connection=r):
                running = worker.get_current_executions()
                if running and worker.pid and alive(worker.pid):
                    return running[0].job_id, worker.pid
            return None

        request_id, pid = wait_for(busy, 30, "a worker running a call job", 0.01)
        os.kill(pid, signal.SIGSTOP)
        with db.database.connection_context():
            row = CallRequest.get_or_none(CallRequest.id == request_id)
        if row is not None and row.status == CallState.DIALING.value \
                and not r.exists(handoff.marker_key(request_id)):
            os.kill(pid, signal.SIGKILL)
            return request_id
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.2)
    raise AssertionError(f"no job caught between its claim and its handoff in {tries} tries")


def test_worker_killed_between_a_claim_and_its_handoff(platform):
    """The job renders each contact's own long announcement after claiming it and before
    handing its plan over; killed there, nothing was dialed: the sweeper says so (``never
    handed``) and the contact is dialed again, once, without counting a try."""
    api = platform.client("account_1")
    answering = [number("111") for _ in range(8)]
    list_id = make_list(api, "list_handoff")
    ok_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": [
        {"contact_number": n, "contact_fields": {"field1": f"customer {i}"}}
        for i, n in enumerate(answering)]}))
    long_text = "Hello {field1}. " + "This is a long announcement about your account. " * 30
    data = campaign_body(list_id, "", campaign_name="handoff", time_zone="UTC",
                         campaign_start_date=_utc(-timedelta(minutes=1)),
                         campaign_end_date=_utc(timedelta(hours=1)), repeat="1",
                         announcement_text=long_text, max_retries="0",
                         calls_per_minute="60", voice="Joanna")
    # Markers are judged once the sweeper has begun their epoch (at its first pass).
    wait_for(lambda: platform.redis.exists(handoff.EPOCH_KEY), 30, "the handoff epoch")
    time.sleep(handoff.CLOCK_MARGIN)
    campaign_id = ok_body(api.post("/api/create_campaign", data))["campaign_id"]
    killed = _caught_between_claim_and_handoff(platform.redis)
    _assert_exactly_once(platform, api, campaign_id, answering, [])
    cdrs = ok_body(api.post("/api/get_cdr_by_request_id", {"request_id": killed}))["result"]
    assert [c["hangup_cause"] for c in cdrs] == ["swept: never handed"], cdrs

