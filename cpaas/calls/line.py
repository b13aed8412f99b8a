"""The account's line: calls over ``CPAAS_ACCOUNT_MAX_CALLS`` wait their turn, in order.

An account may hold at most that many calls at once, of every kind. The campaign dialer
never starts an attempt past it (:mod:`cpaas.campaigns.dialer`); a click2call, OTP or
callback job that finds the account at its cap (or others already waiting) is not
refused: its plan joins the end of the account's line (a Redis list), and the scanner's
:class:`LineTask` hands the first waiting plans back to the call queue, at its front, as
the account's calls end. A released job does not look at the line again.

The cap is counted from the database (requests ``dialing`` or ``live``) when each job
runs, so jobs running at the same instant in different workers may pass it by one each;
the line keeps the account's own calls in the order they were placed. A plan in the
line is, like a queued job, held in Redis only: the sweeper counts it as queued, and a
line lost with Redis is swept like a lost job (its CDR says so).
"""
from __future__ import annotations

import logging
import re

import redis
from rq import Queue

from cpaas import config
from cpaas.calls.state import CallState
from cpaas.models import CallRequest
from cpaas.platform import CALLS_QUEUE

log = logging.getLogger(__name__)

#: Accounts whose line is not empty.
LINES_KEY = "cpaas:lines"
_PLAN_ID = re.compile(rb'"plan_id":\s*"([0-9a-zA-Z]+)"')
#: Plans one pass hands back at most per account.
BATCH = 100


def line_key(account_id: str) -> str:
    """The Redis list of the account's waiting plans (JSON), first in line first."""
    return f"cpaas:line:{account_id}"


def busy(account_id: str) -> int:
    """The account's calls being dialed or talking now."""
    return (CallRequest.select(CallRequest.id)
            .where((CallRequest.account_id == account_id)
                   & CallRequest.status.in_([CallState.DIALING.value, CallState.LIVE.value]))
            .count())


def must_wait(r: redis.Redis, account_id: str, cap: int) -> bool:
    """Whether a new call of the account goes to the end of its line (others wait, or
    the account is at its cap)."""
    if not cap:
        return False
    return bool(r.llen(line_key(account_id))) or busy(account_id) >= cap


def join(r: redis.Redis, account_id: str, plan_json: str) -> None:
    """Put a plan at the end of the account's line."""
    pipe = r.pipeline()
    pipe.rpush(line_key(account_id), plan_json)
    pipe.sadd(LINES_KEY, account_id)
    pipe.execute()


def waiting_ids(r: redis.Redis) -> set[str]:
    """The request ids of every plan in every line (the sweeper's evidence)."""
    found: set[str] = set()
    for account in r.smembers(LINES_KEY):
        for raw in r.lrange(line_key(account.decode()), 0, -1):
            match = _PLAN_ID.search(raw)
            if match:
                found.add(match.group(1).decode())
    return found


class LineTask:
    """The scanner's task that lets waiting calls go as their accounts' calls end."""

    def __init__(self, settings: config.Settings, r: redis.Redis) -> None:
        self.cap = settings.account_max_calls
        self.r = r
        self.queue = Queue(CALLS_QUEUE, connection=r)

    def __call__(self) -> bool:
        """One pass over the accounts with a line; True when one had more to release."""
        more = False
        for raw in self.r.smembers(LINES_KEY):
            account_id = raw.decode()
            room = min(BATCH, self.cap - busy(account_id)) if self.cap else BATCH
            batch: list[bytes] = []
            for _ in range(max(room, 0)):
                plan_json = self.r.lpop(line_key(account_id))
                if plan_json is None:
                    self._forget_if_empty(account_id)
                    break
                batch.append(plan_json)
            # Each goes to the queue's front, so the last of the batch goes first.
            for plan_json in reversed(batch):
                self.queue.enqueue("workers.jobs.place_call", plan_json.decode(), True,
                                   job_id=_PLAN_ID.search(plan_json).group(1).decode(),
                                   result_ttl=0, failure_ttl=0, job_timeout=120, at_front=True)
            released = len(batch)
            if released:
                log.info("calls let through the account's line",
                         extra={"account_id": account_id, "released": released})
            more = more or released == BATCH
        return more

    def _forget_if_empty(self, account_id: str) -> None:
        # Only when still empty: a job may have joined since the LPOP.
        with self.r.pipeline() as pipe:
            try:
                pipe.watch(line_key(account_id))
                if pipe.llen(line_key(account_id)) == 0:
                    pipe.multi()
                    pipe.srem(LINES_KEY, account_id)
                    pipe.execute()
            except redis.WatchError:
                pass


