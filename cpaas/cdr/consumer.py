"""The ``events`` process: reads engine events from Redis and writes CDRs.

Engines append normalised events (``cpaas.telephony.events``) to one stream; this
consumer group reads them at least once (entries are acknowledged after the CDR is
committed, and the writer ignores a CDR it already has), so a crash loses nothing.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timezone
from typing import Any

import redis

from cpaas import config, db
from cpaas.cdr import writer
from cpaas.models import CallRequest
from cpaas.telephony.events import EVENT_STREAM, EngineEvent

log = logging.getLogger(__name__)

GROUP = "cdr-writer"
#: An entry a dead consumer read but never acknowledged is taken over after this.
CLAIM_IDLE_MS = 30_000
STREAM_MAXLEN = 200_000


def _utc(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, timezone.utc).replace(tzinfo=None) if ts else None


def compose(request: CallRequest, event: EngineEvent) -> writer.CdrRecord:
    """The CDR of a finished plan.

    click2call: the agent leg's outcome when the agent did not answer, else the
    customer leg's; times span the whole call; billing starts when the customer answers.
    """
    legs: dict[str, dict[str, Any]] = event.data.get("legs", {})
    if request.kind in ("c2c", "callback"):
        agent, customer = legs.get("agent"), legs.get("customer")
        if agent is None:
            status, billed = "CHANUNAVAIL", None
        elif agent["dial_status"] != "ANSWER":
            status, billed = agent["dial_status"], None
        elif customer is None:
            status, billed = "CANCEL", None
        else:
            status, billed = customer["dial_status"], customer
    else:
        leg = legs.get("customer") or legs.get("contact")
        status, billed = (leg["dial_status"], leg) if leg else ("CHANUNAVAIL", None)
    starts = [leg["started_at"] for leg in legs.values() if leg.get("started_at")]
    ends = [leg["ended_at"] for leg in legs.values() if leg.get("ended_at")]
    start = min(starts) if starts else event.at
    end = max(ends) if ends else event.at
    answered = billed.get("answered_at") if billed and status == "ANSWER" else None
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
        dtmf_inputs=str(event.data.get("dtmf", ""))[:64],
        recording_name=",".join(event.data.get("recordings", []))[:300],
        hangup_cause=str(event.data.get("cause", ""))[:64])


def handle(event: EngineEvent) -> None:
    """Apply one engine event to the database."""
    if event.type == "leg.answered":
        CallRequest.update(status="live").where(CallRequest.id == event.plan_id).execute()
        return
    if event.type != "plan.ended":
        return
    request = CallRequest.get_or_none((CallRequest.id == event.plan_id)
                                      & (CallRequest.account_id == event.account_id))
    if request is None:
        log.warning("event for an unknown request", extra={"plan_id": event.plan_id})
        return
    record = compose(request, event)
    writer.write(record)
    CallRequest.update(status="done").where(CallRequest.id == request.id).execute()
    log.info("cdr written", extra={"plan_id": request.id, "dial_status": record.dial_status,
                                   "cause": event.data.get("cause", "")})


def _ensure_group(r: redis.Redis) -> None:
    try:
        r.xgroup_create(EVENT_STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as err:
        if "BUSYGROUP" not in str(err):
            raise


def _process(r: redis.Redis, entries: list) -> None:
    for entry_id, fields in entries:
        try:
            event = EngineEvent.from_fields(fields)
            with db.database.connection_context():
                handle(event)
        except Exception:  # noqa: BLE001 - a poison entry must not stop the writer
            log.exception("event could not be applied", extra={"entry": str(entry_id)})
        r.xack(EVENT_STREAM, GROUP, entry_id)


def run(settings: config.Settings, stop: threading.Event | None = None) -> None:
    """Consume events until ``stop`` is set (forever in the ``events`` process)."""
    db.init(settings.effective_database_url)
    r = redis.Redis.from_url(settings.effective_redis_url)
    _ensure_group(r)
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    stop = stop or threading.Event()
    log.info("events consumer started", extra={"consumer": consumer})
    rounds = 0
    while not stop.is_set():
        try:
            # Entries a crashed consumer read but never acknowledged.
            _, claimed, _ = r.xautoclaim(EVENT_STREAM, GROUP, consumer, CLAIM_IDLE_MS, "0-0", count=100)
            _process(r, claimed)
            for _, entries in r.xreadgroup(GROUP, consumer, {EVENT_STREAM: ">"}, count=200, block=500) or []:
                _process(r, entries)
            rounds += 1
            if rounds % 1000 == 0:
                r.xtrim(EVENT_STREAM, maxlen=STREAM_MAXLEN, approximate=True)
        except redis.ConnectionError:
            log.warning("redis unavailable; retrying")
            stop.wait(1.0)
