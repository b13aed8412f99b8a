"""Firing due callbacks (a task of :mod:`cpaas.scanner`), and what their CDRs settle.

The database is the source of truth. A due callback is claimed with a conditional
UPDATE (``scheduled`` → ``fired`` or ``late``) in one transaction with the insert of its
call request (id = the callback's request_id, kind ``callback``, destination_context
``callback``), and only then, after the commit, is its click2call plan queued. So:

- a scanner restarted or replaced mid-pass fires each callback once: a second claim
  of the same row matches nothing;
- a PATCH or DELETE racing with the claim either lands first (the claim, conditional on
  the ``scheduled_at`` it read, then matches nothing and the next pass reads the new
  row) or finds the callback fired and answers 409;
- a job lost after the commit (Redis flushed) is settled by the sweeper like any
  request's, with a CDR; the callback then ends ``failed`` (:func:`on_call_settled`);
- a plan that cannot be queued at all undoes its claim, and a later pass fires it.

A callback more than ``CPAAS_CALLBACK_MAX_LATE`` seconds overdue (everything was down
past its time) is marked ``failed`` and never dialed.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import peewee
import redis
from rq import Queue

from cpaas import config
from cpaas.callbacks.state import CallbackState, advance, fired_state
from cpaas.calls import service
from cpaas.calls.state import CallState
from cpaas.cdr.writer import CdrRecord
from cpaas.db import database
from cpaas.models import Account, Callback, CallRequest
from cpaas.platform import CALLS_QUEUE
from cpaas.telephony import causes
from cpaas.telephony.plans import Plan
from cpaas.validation import utcnow

log = logging.getLogger(__name__)

#: Callbacks one pass claims at most (the scanner runs again at once when it is full).
BATCH = 100
#: A callback's recording option → click2call's.
RECORDING = {"on": "both", "off": "off"}
_SCHEDULED = Callback.status == CallbackState.SCHEDULED.value


class CallbackTask:
    """The scanner's callback task: each call is one pass over the due callbacks."""

    def __init__(self, settings: config.Settings, r: redis.Redis,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.queue = Queue(CALLS_QUEUE, connection=r)
        self.clock = clock
        self.max_late = timedelta(seconds=settings.callback_max_late)
        self._account_names: dict[str, str] = {}

    def __call__(self) -> bool:
        """Fail the hopelessly late, fire the due; True when a batch limit was reached."""
        now = self.clock()
        more = self.expire(now)
        due = list(Callback.select().where(_SCHEDULED & (Callback.scheduled_at <= now))
                   .order_by(Callback.scheduled_at).limit(BATCH))
        for row in due:
            self.fire(row, now)
        return more or len(due) == BATCH

    def expire(self, now: datetime) -> bool:
        """Mark ``failed`` the callbacks too far past their time to be dialed."""
        cutoff = now - self.max_late
        rows = list(Callback.select(Callback.id, Callback.account_id, Callback.scheduled_at)
                    .where(_SCHEDULED & (Callback.scheduled_at < cutoff)).limit(BATCH))
        for row in rows:
            if advance(row.id, CallbackState.FAILED, _SCHEDULED, Callback.scheduled_at < cutoff):
                log.warning("callback too late to dial; failed",
                            extra={"request_id": row.id, "account_id": row.account_id,
                                   "overdue_s": round((now - row.scheduled_at).total_seconds())})
        return len(rows) == BATCH

    def fire(self, row: Callback, now: datetime) -> bool:
        """Claim ``row`` and queue its call; False when someone else changed it first."""
        state = fired_state(row.scheduled_at, now)
        try:
            plan = self._claim(row, state, now)
        except peewee.IntegrityError:
            # Its request_id is already another call's: no CDR could ever carry it.
            advance(row.id, CallbackState.FAILED, _SCHEDULED)
            log.error("callback failed: its request_id is taken by another call",
                      extra={"request_id": row.id, "account_id": row.account_id})
            return False
        if plan is None:
            return False
        try:
            service.queue_plan(self.queue, plan)
        except redis.RedisError:
            self._unclaim(row.id, state)
            raise
        log.info("callback fired", extra={
            "request_id": row.id, "account_id": row.account_id, "status": state.value,
            "delay_s": round((now - row.scheduled_at).total_seconds(), 3)})
        return True

    def _claim(self, row: Callback, state: CallbackState, now: datetime) -> Plan | None:
        """The claim and the call request, one transaction; the plan to queue, or None."""
        with database.atomic():
            if not advance(row.id, state, Callback.scheduled_at == row.scheduled_at,
                           fired_at=now):
                return None
            cb = Callback.get_by_id(row.id)   # the numbers as of the claim
            option = RECORDING.get(cb.recording_option, "off")
            service.record_request(cb.account_id, cb.id, "callback", agent_number=cb.agent_number,
                                   customer_number=cb.destination_number, caller_id=cb.caller_id,
                                   recording_option=option, transcript=cb.transcript,
                                   destination_context="callback", call_direction="outbound-api")
            return service.click2call_plan(cb.id, cb.account_id, self._account_name(cb.account_id),
                                           cb.agent_number, cb.destination_number, cb.caller_id,
                                           option, self.settings.ring_timeout, kind="callback",
                                           transcript=cb.transcript)

    def _unclaim(self, callback_id: str, state: CallbackState) -> None:
        """Undo a claim whose plan never reached Redis: the callback was not fired.

        Only while its request is still ``queued``: a job that reached Redis after all
        and claimed it goes on, and the callback stays fired.
        """
        with database.atomic():
            undone = CallRequest.delete().where(
                (CallRequest.id == callback_id)
                & (CallRequest.status == CallState.QUEUED.value)).execute()
            if undone:
                Callback.update(status=CallbackState.SCHEDULED.value, fired_at=None).where(
                    (Callback.id == callback_id) & (Callback.status == state.value)).execute()
        if undone:
            log.warning("callback not queued; it fires again on a later pass",
                        extra={"request_id": callback_id})

    def _account_name(self, account_id: str) -> str:
        if account_id not in self._account_names:
            self._account_names[account_id] = Account.get_by_id(account_id).name
        return self._account_names[account_id]


def on_call_settled(request: CallRequest, cdr: CdrRecord) -> None:
    """A callback whose call never left the platform ends ``failed`` (notifier hook)."""
    if request.kind != "callback" or cdr.dial_status != "CHANUNAVAIL" \
            or not causes.never_left(cdr.hangup_cause):
        return
    with database.connection_context():
        if advance(request.id, CallbackState.FAILED):
            log.warning("callback failed: its call was never placed",
                        extra={"request_id": request.id, "account_id": request.account_id,
                               "cause": cdr.hangup_cause})
