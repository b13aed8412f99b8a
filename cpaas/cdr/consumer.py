"""The ``events`` process: reads engine events from Redis and writes CDRs.

Engines append normalised events (``cpaas.telephony.events``) to one stream; this
consumer group reads them at least once. An entry is acknowledged only after what it
wrote is committed; a request gets its CDR exactly once however often its event is
delivered (:mod:`cpaas.cdr.settle`). An entry that fails for a reason that passes (the
database restarting, a pool timeout, a request whose row is not visible yet) stays
pending and is tried again with backoff for ``CPAAS_EVENT_RETRY_LIMIT`` seconds, then
moved to the dead-letter stream (:mod:`cpaas.cdr.deadletter`); one that can never be
applied (unreadable, or failing for any other reason) goes there at once.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

import peewee
import redis
from playhouse.pool import MaxConnectionsExceeded

from cpaas import config, db
from cpaas.calls.state import CallState, advance
from cpaas.cdr import deadletter, writer
from cpaas.cdr.settle import Settled, settle
from cpaas.models import CallRequest
from cpaas.telephony import causes
from cpaas.telephony.events import EVENT_STREAM, Event, LegAnswered, PlanEnded, decode
from cpaas.telephony.outcomes import declined

log = logging.getLogger(__name__)

GROUP = "cdr-writer"
#: An entry a dead consumer read but never acknowledged is taken over after this.
CLAIM_IDLE_MS = 30_000
#: Backoff between tries of a failing entry: doubles from FIRST_DELAY up to MAX_DELAY
#: (below CLAIM_IDLE_MS, so another consumer never mistakes a retrying entry for an
#: abandoned one).
FIRST_DELAY, MAX_DELAY = 0.5, 20.0


class RequestNotVisible(Exception):
    """The event's request row is not committed (or not visible) yet: try again later."""


#: Failures that pass: the entry stays pending and is tried again.
TRANSIENT = (peewee.OperationalError, peewee.InterfaceError, peewee.InternalError,
             MaxConnectionsExceeded, RequestNotVisible)


def _utc(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, timezone.utc).replace(tzinfo=None) if ts else None


def compose(request: CallRequest, event: PlanEnded) -> writer.CdrRecord:
    """The CDR of a finished plan.

    click2call: the agent leg's outcome when the agent did not answer, else the
    customer leg's; times span the whole call; billing starts when the customer answers.
    """
    legs = event.legs
    if request.kind in ("c2c", "callback"):
        agent, customer = legs.get("agent"), legs.get("customer")
        if agent is None:
            status, billed = "CHANUNAVAIL", None
        elif agent.dial_status != "ANSWER":
            status, billed = agent.dial_status, None
        elif customer is None:
            status, billed = "CANCEL", None
        else:
            status, billed = customer.dial_status, customer
    elif event.cause == causes.DND:
        status, billed = "DND", None
    else:
        leg = legs.get("customer") or legs.get("contact")
        status, billed = (leg.dial_status, leg) if leg else ("CHANUNAVAIL", None)
    cause = event.cause
    if billed is not None and status != "ANSWER" and declined(billed):
        cause = causes.DECLINED
    elif event.ivr_result and event.ivr_result != "transferred":
        cause = causes.ivr(event.ivr_result)   # no_input, invalid, transfer_failed
    starts = [leg.started_at for leg in legs.values() if leg.started_at]
    ends = [leg.ended_at for leg in legs.values() if leg.ended_at]
    start = min(starts) if starts else event.at
    end = max(ends) if ends else event.at
    answered = billed.answered_at if billed and status == "ANSWER" else None
    return writer.CdrRecord(
        account_id=request.account_id, request_id=request.id,
        uniqueid=f"{int(start)}.{request.id}", dial_status=status, call_date=_utc(end),
        destination_context=request.destination_context, call_direction=request.call_direction,
        caller_id=request.caller_id, dialed_number=request.customer_number,
        agent_number=request.agent_number, customer_number=request.customer_number,
        campaign_id=request.campaign_id, list_id=request.list_id or "",
        answer_at=_utc(answered), end_at=_utc(end),
        billsec=round(end - answered, 3) if answered else 0.0,
        call_duration=round(end - start, 3),
        dtmf_inputs=event.dtmf[:64],
        recording_name=",".join(event.recordings)[:300],
        is_dnd=int(status == "DND"), hangup_cause=cause[:64], transfer_to=event.transfer_to[:24])


def handle(event: Event) -> Settled | None:
    """Apply one engine event to the database; the settled request, if it ended one.

    The CDR is committed before this returns; whatever must follow a call's end (the
    campaign dialer, status webhooks) belongs after it, in the caller's ``on_settled``.
    """
    if isinstance(event, LegAnswered):
        if not advance(event.plan_id, CallState.LIVE) and not _visible(event):
            raise RequestNotVisible(event.plan_id)
        return None
    if not isinstance(event, PlanEnded):
        return None
    request = CallRequest.get_or_none((CallRequest.id == event.plan_id)
                                      & (CallRequest.account_id == event.account_id))
    if request is None:
        raise RequestNotVisible(event.plan_id)
    if request.status == CallState.DONE:
        return None
    record = compose(request, event)
    settled = settle(request, record)
    if settled:
        log.info("cdr written", extra={"request_id": request.id, "account_id": request.account_id,
                                       "dial_status": record.dial_status,
                                       "cause": event.cause})
    return settled


def _visible(event: Event) -> bool:
    return CallRequest.select().where((CallRequest.id == event.plan_id)
                                      & (CallRequest.account_id == event.account_id)).exists()


def _ensure_group(r: redis.Redis) -> None:
    try:
        r.xgroup_create(EVENT_STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as err:
        if "BUSYGROUP" not in str(err):
            raise


def _settled_log(settled: Settled) -> None:
    """The default post-commit hook: nothing to tell yet but the log."""
    log.debug("request settled", extra={"request_id": settled.request.id})


class Consumer:
    """One consumer of the group: reads, applies, retries and buries entries."""

    def __init__(self, r: redis.Redis, retry_limit: float,
                 on_settled: Callable[[Settled], None] = _settled_log) -> None:
        self.r = r
        self.retry_limit = retry_limit
        self.on_settled = on_settled
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        #: entry id → monotonic time of its next try (entries this consumer holds).
        self.due: dict[bytes, float] = {}

    def apply(self, entry_id: bytes, fields: dict) -> None:
        """Apply one entry; acknowledge it, schedule a retry, or bury it."""
        try:
            event = decode(fields)
        except Exception as err:  # noqa: BLE001 - unreadable: no retry can fix it
            log.error("unreadable event buried", extra={"entry": entry_id.decode()})
            deadletter.bury(self.r, GROUP, entry_id, fields, f"unreadable: {type(err).__name__}", 1)
            return
        if event is None:   # a type this release has nothing to apply to
            self._ack(entry_id)
            return
        try:
            with db.database.connection_context():
                settled = handle(event)
        except TRANSIENT as err:
            self._failed(entry_id, fields, event, err)
            return
        except Exception as err:  # noqa: BLE001 - a poison entry must not stop the writer
            log.exception("event cannot be applied; buried",
                          extra={"entry": entry_id.decode(), "request_id": event.plan_id})
            deadletter.bury(self.r, GROUP, entry_id, fields, f"failed: {type(err).__name__}: {err}",
                            1, event.plan_id)
            return
        self._ack(entry_id)
        if settled is None:
            return
        try:
            self.on_settled(settled)
        except Exception:  # noqa: BLE001 - the CDR is committed; a hook's failure is its own
            log.exception("post-commit hook failed", extra={"request_id": settled.request.id})

    def _ack(self, entry_id: bytes) -> None:
        """The entry is applied (or has nothing to apply): done with it."""
        pipe = self.r.pipeline(transaction=False)
        pipe.xack(EVENT_STREAM, GROUP, entry_id)
        pipe.hdel(deadletter.RETRYING_KEY, entry_id)
        pipe.execute()
        self.due.pop(entry_id, None)

    def _failed(self, entry_id: bytes, fields: dict, event: Event, err: Exception) -> None:
        """Leave the entry pending for a later try, or bury it once the window has passed."""
        now = time.time()
        raw = self.r.hget(deadletter.RETRYING_KEY, entry_id)
        state = json.loads(raw) if raw else {"first": now, "attempts": 0, "plan_id": event.plan_id}
        state["attempts"] += 1
        state["error"] = f"{type(err).__name__}: {err}"[:300]
        extra = {"entry": entry_id.decode(), "request_id": event.plan_id,
                 "attempts": state["attempts"], "error": state["error"]}
        if now - state["first"] >= self.retry_limit:
            log.error("event failed for the whole retry window; buried", extra=extra)
            self.due.pop(entry_id, None)
            deadletter.bury(self.r, GROUP, entry_id, fields, f"retries exhausted: {state['error']}",
                            state["attempts"], event.plan_id)
            return
        self.r.hset(deadletter.RETRYING_KEY, entry_id, json.dumps(state))
        delay = min(MAX_DELAY, FIRST_DELAY * 2 ** (state["attempts"] - 1))
        self.due[entry_id] = time.monotonic() + delay
        log.warning("event not applied; will retry", extra={**extra, "retry_in": delay})

    def retry_due(self) -> None:
        """Try again the entries whose backoff has passed."""
        now = time.monotonic()
        ready = [entry_id for entry_id, at in self.due.items() if at <= now]
        if not ready:
            return
        # Claiming resets their idle time: no other consumer takes them over meanwhile.
        claimed = self.r.xclaim(EVENT_STREAM, GROUP, self.name, 0, ready)
        found = {entry_id for entry_id, _ in claimed}
        for entry_id in ready:
            if entry_id not in found:   # gone from the stream (Redis flushed): nothing to do
                self.due.pop(entry_id, None)
                self.r.hdel(deadletter.RETRYING_KEY, entry_id)
        for entry_id, fields in claimed:
            self.apply(entry_id, fields)

    def round(self) -> None:
        """One turn: entries abandoned by a dead consumer, due retries, then new entries."""
        _, claimed, _ = self.r.xautoclaim(EVENT_STREAM, GROUP, self.name, CLAIM_IDLE_MS, "0-0",
                                          count=100)
        for entry_id, fields in claimed:
            if entry_id not in self.due:
                self.apply(entry_id, fields)
        self.retry_due()
        block = 500 if not self.due else 100
        for _, entries in self.r.xreadgroup(GROUP, self.name, {EVENT_STREAM: ">"}, count=200,
                                            block=block) or []:
            for entry_id, fields in entries:
                self.apply(entry_id, fields)

    def trim(self) -> None:
        """Drop entries every consumer is done with; never one still pending or unread."""
        pending = self.r.xpending(EVENT_STREAM, GROUP)
        groups = {g["name"]: g for g in self.r.xinfo_groups(EVENT_STREAM)}
        keep = groups[GROUP.encode()]["last-delivered-id"] if GROUP.encode() in groups else None
        if pending["pending"]:
            keep = pending["min"]
        if keep and keep != b"0-0":
            self.r.xtrim(EVENT_STREAM, minid=keep, approximate=True)


def run(settings: config.Settings, stop: threading.Event | None = None,
        on_settled: Callable[[Settled], None] = _settled_log) -> None:
    """Consume events until ``stop`` is set (forever in the ``events`` process).

    ``on_settled`` runs after each CDR commit (the seam the campaign dialer and status
    webhooks will subscribe to); a failure there never un-writes the CDR. The caller has
    bound the database (``cpaas.procs``): binding it again here, with the sweeper and the
    node drivers already running in threads beside it, swapped the database under a
    connection one of them had open.
    """
    r = redis.Redis.from_url(settings.effective_redis_url)
    consumer = Consumer(r, settings.event_retry_limit, on_settled)
    stop = stop or threading.Event()
    log.info("events consumer started", extra={"consumer": consumer.name})
    rounds, ready = 0, False
    while not stop.is_set():
        try:
            if not ready:
                _ensure_group(r)
                ready = True
            consumer.round()
            rounds += 1
            if rounds % 1000 == 0:
                consumer.trim()
        except redis.ResponseError as err:
            # NOGROUP, or "UNBLOCKED the stream key no longer exists": Redis lost its data
            # (a flush, a restart without its file). Start again with a new group.
            log.warning("event stream or group missing (%s); creating it again", err)
            consumer.due.clear()
            ready = False
            stop.wait(0.1)
        except redis.RedisError:
            log.warning("redis unavailable; retrying")
            stop.wait(1.0)
