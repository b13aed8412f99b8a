"""The sweeper: settles call requests that nothing will ever finish.

A request waits on something that lives in Redis: its RQ job (``queued``), the engine
(``dialing``: its plan held by the engine, as its client's ``held_plans`` says; ``live``:
its legs in the live registry), or an event still to be applied. A lost job, a dead RQ
worker, a flushed Redis can leave a request with none of these: the sweeper finds it and puts
a ``plan.ended`` event on the event stream with cause ``swept: <why>``, so the events
consumer writes its one CDR (``CHANUNAVAIL``) as it writes every other. A swept request
is ``done``, so a job that turns up later never dials it (:mod:`cpaas.calls.claim`).

A request ``dialing`` that no engine holds is either one whose job died before handing
its plan over (``never handed``: nothing was dialed) or one an engine lost (``not
dialed``: its INVITE may have left); the handoff's marker tells which
(:mod:`cpaas.telephony.handoff`).

A request is swept only after it looked abandoned for ``sweep_grace`` seconds on
consecutive passes and the consumer has read every event written meanwhile, so the
instants between two steps of a healthy call (a job between its dequeue and its claim,
a plan between the engine's pop and its snapshot) are never mistaken for a loss.

Exactly one process sweeps at a time (a :class:`cpaas.lease.Lease`); it runs as a
thread of each ``events`` process, and another takes over within the lease's TTL when
the holder dies.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import peewee
import redis
from rq import Queue

from cpaas import config
from cpaas.calls import line
from cpaas.calls.state import OPEN, CallState
from cpaas.cdr import deadletter
from cpaas.cdr.consumer import GROUP
from cpaas.db import database
from cpaas.lease import Lease
from cpaas.models import CallRequest
from cpaas.platform import CALLS_QUEUE, CAMPAIGN_QUEUE
from cpaas.telephony import causes, events, handoff, live
from cpaas.telephony.engine_client import EngineClient, EngineError, engine_client
from cpaas.validation import utcnow

log = logging.getLogger(__name__)

LEASE = "sweeper"
#: How many open requests one pass looks at (oldest first).
BATCH = 2000


@dataclass
class Evidence:
    """What Redis holds, at one instant, that a request may be waiting on."""

    queued_jobs: set[str] = field(default_factory=set)
    engine_plans: set[str] = field(default_factory=set)
    live_requests: set[str] = field(default_factory=set)
    pending_events: set[str] = field(default_factory=set)
    delivered_ms: int = 0     # the consumer has read every event older than this
    lag: int | None = None    # events not read yet (None: Redis cannot tell)


def gather(r: redis.Redis, engine: EngineClient | None) -> Evidence:
    """Read everything a pass needs from Redis and the engine (None: no engine can run)."""
    ev = Evidence()
    # Started (or restarted after a loss of data) here, at once, rather than at the
    # first revoke: a request created before it can never be judged by its marker.
    handoff.epoch(r)
    ev.queued_jobs = (set(Queue(CALLS_QUEUE, connection=r).get_job_ids())
                      | set(Queue(CAMPAIGN_QUEUE, connection=r).get_job_ids())
                      | line.waiting_ids(r))
    ev.engine_plans = engine.held_plans() if engine is not None else set()
    ev.live_requests = {json.loads(raw)["request_id"] for raw in r.hvals(live.LEGS_KEY)}
    ev.pending_events = {json.loads(raw)["plan_id"] for raw in r.hvals(deadletter.RETRYING_KEY)}
    ev.pending_events |= deadletter.plan_ids(r)
    for group in r.xinfo_groups(events.EVENT_STREAM) if r.exists(events.EVENT_STREAM) else []:
        if group["name"] == GROUP.encode():
            ev.delivered_ms = int(group["last-delivered-id"].split(b"-")[0])
            ev.lag = group.get("lag")
    return ev


def abandoned(request: CallRequest, ev: Evidence) -> str | None:
    """Why the request looks abandoned right now, or None while something holds it."""
    if request.id in ev.pending_events:
        return None
    if request.status == CallState.QUEUED:
        # A campaign attempt's lost job is queued again by the dialer, never swept: its
        # contact would otherwise count a try that never left (cpaas.campaigns.dialer).
        if request.id in ev.queued_jobs or request.kind == "campaign":
            return None
        return causes.JOB_LOST
    if request.id in ev.engine_plans or request.id in ev.live_requests:
        return None
    return causes.NO_LIVE_LEG if request.status == CallState.LIVE else causes.NOT_DIALED


class Sweeper:
    """One process's sweeper; :meth:`run` sweeps while it holds the lease."""

    def __init__(self, r: redis.Redis, settings: config.Settings) -> None:
        self.r = r
        self.interval = settings.sweep_interval
        self.grace = settings.sweep_grace
        self.lease = Lease(r, LEASE, ttl=max(3 * self.interval, 10.0))
        self.engine = _engine(settings, r)
        #: request id → wall time it was first seen abandoned (on consecutive passes).
        self.suspects: dict[str, float] = {}

    def run(self, stop: threading.Event) -> None:
        """Sweep every ``interval`` seconds until ``stop`` is set."""
        log.info("sweeper started", extra={"lease": self.lease.token})
        while not stop.is_set():
            try:
                if self.lease.acquire_or_renew():
                    with database.connection_context():
                        self.sweep()
                else:
                    self.suspects.clear()   # another process sweeps; its view counts
            except (redis.RedisError, peewee.OperationalError, peewee.InterfaceError) as err:
                log.warning("sweep skipped: %s", type(err).__name__)   # away: next pass
            except Exception:  # noqa: BLE001 - a sweeper that stops settles nothing
                log.exception("sweep failed")
            stop.wait(self.interval)
        try:
            self.lease.release()
        except redis.RedisError:
            pass

    def sweep(self) -> int:
        """One pass; returns how many requests it settled."""
        now = time.time()
        rows = list(CallRequest.select()
                    .where(CallRequest.status.in_([s.value for s in OPEN])
                           & (CallRequest.created_at < utcnow() - timedelta(seconds=self.grace)))
                    .order_by(CallRequest.created_at).limit(BATCH))
        ev = gather(self.r, self.engine)
        seen: dict[str, float] = {}
        swept = 0
        for request in rows:
            why = abandoned(request, ev)
            if why is None:
                continue
            since = seen[request.id] = self.suspects.get(request.id, now)
            # Every event written since it looked abandoned has been read, so none of
            # them is about to settle it.
            caught_up = ev.lag == 0 or ev.delivered_ms >= since * 1000
            if now - since >= self.grace and caught_up:
                self._settle(request, why)
                seen.pop(request.id)
                swept += 1
        self.suspects = seen
        return swept

    def _settle(self, request: CallRequest, why: str) -> None:
        if why == causes.NOT_DIALED and \
                handoff.revoke(self.r, request.id, request.created_at) == "revoked":
            # Its job died between the claim and the handoff: nothing was dialed (a
            # campaign dials the contact again), and now nothing will be.
            why = causes.NEVER_HANDED
        ended = events.PlanEnded(plan_id=request.id, account_id=request.account_id,
                                 cause=causes.swept(why))
        events.publish(self.r, ended)
        log.warning("request swept", extra={"request_id": request.id,
                                            "account_id": request.account_id,
                                            "status": request.status, "why": why})


def _engine(settings: config.Settings, r: redis.Redis) -> EngineClient | None:
    """The engine's client, to ask which plans it holds; None when none is configured
    (then no plan can be held either)."""
    try:
        return engine_client(settings, r)
    except EngineError as err:
        log.warning("sweeper without an engine: %s", err)
        return None


def start(settings: config.Settings, stop: threading.Event) -> threading.Thread:
    """Run a sweeper in a daemon thread of this process."""
    r = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=10)
    thread = threading.Thread(target=Sweeper(r, settings).run, args=(stop,), name="sweeper",
                              daemon=True)
    thread.start()
    return thread
