"""Calls over an account's cap wait in the account's own line, in order, and are never
refused; another account's calls do not wait behind them.

A platform of the module's own with ``CPAAS_ACCOUNT_MAX_CALLS=2`` and one RQ worker (two
jobs running at the same instant in two workers may each pass the cap by one: see
cpaas/calls/line.py). Every time is read from the carrier's INVITE log.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from sandbox_carrier.carrier import invite_times
from tests import launcher, servers
from tests.api.conftest import body
from tests.e2e.conftest import Platform
from tests.e2e.numbers import CALLER_ID, number

HOLD, CAP = 3, 2


@pytest.fixture(scope="module")
def capped(tmp_path_factory) -> Iterator[Platform]:
    with servers.redis_server() as redis_url, servers.postgres_server() as pg_url:
        with launcher.platform(tmp_path_factory.mktemp("line"), redis_url, pg_url, hold=HOLD,
                               engine_workers=3, rq_workers=1,
                               extra_env={"CPAAS_ACCOUNT_MAX_CALLS": str(CAP)}) as running:
            yield Platform(running)


def _click2call(api, agent: str) -> str:
    r = api.post("/api/click2call", {"agent_number": agent, "caller_id": CALLER_ID,
                                     "destination_number": number("112")})
    assert r.status_code == 200, r.data
    return body(r)["request_id"]


def test_calls_over_the_cap_wait_their_turn_in_order(capped):
    api, other = capped.client("account_1"), capped.client("account_2")
    # Both sides answer and the carrier hangs up after HOLD s: each call lasts about HOLD.
    agents = [number("111") for _ in range(5)]
    placed = []
    for agent in agents:
        placed.append(_click2call(api, agent))
    theirs = number("111")
    _click2call(other, theirs)
    for request_id in placed:
        cdr = capped.cdr(api, request_id, timeout=90)
        assert cdr["dial_status"] == "ANSWER", cdr   # none was refused
    log = capped.running.carrier_log
    starts = [invite_times(log, a)[0] for a in agents]
    # in order: calls let through in one pass reach the engine together, and the engine's
    # workers may send their INVITEs a few milliseconds either way
    assert all(a <= b + 0.2 for i, a in enumerate(starts) for b in starts[i + 1:]), \
        "the line keeps the account's calls in order"
    assert all(len(invite_times(log, a)) == 1 for a in agents)
    # never more than CAP at once: the third starts only when the first ended
    ends = [s + HOLD for s in starts]
    for i, start in enumerate(starts):
        overlapping = sum(1 for j in range(i) if ends[j] > start + 0.5)
        assert overlapping < CAP, f"call {i} started with {overlapping} of the account's calls up"
    assert starts[2] - starts[0] >= HOLD - 0.5
    # account_2's call, placed after account_1's waiting ones, did not wait behind them
    assert invite_times(log, theirs)[0] - starts[1] < 1.0 < starts[2] - starts[1]
