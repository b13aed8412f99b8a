"""One FreeSWITCH node's driver: its ESL connection, its plans, its events.

Runs in a thread of the ``events`` process (:mod:`freeswitch.listener`), one per node,
with gevent's hub of that thread (greenswitch: one connection per OS thread). It takes
plans and actions from the node's Redis lists, executes plans with
:class:`~freeswitch.runner.FsPlanRunner`, and turns the node's events into the engine
contract's events through the same publisher, finisher and outcome table as the
embedded engine, so the same CDRs come out.

Restarts: a lost connection is replaced by a new :class:`~freeswitch.esl.Connection`
with backoff. After every connect the driver reconciles each leg it believes live with
``uuid_exists``; one that is gone is closed (no CDR left open); and a channel of ours
in ``show channels`` that no plan holds is hung up (nothing runs on unseen). A driver
that starts (the process was restarted) adopts the plans its predecessor left in the
snapshot hash: an established call (every leg answered, nothing left to do but talk) is
followed to its hangup; anything else is hung up, so no plan is left half-run.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid as uuidlib
from collections.abc import Callable

import gevent
import gevent.event
import redis
from greenswitch.esl import NotConnectedError

from cpaas.config import Settings
from cpaas.telephony.ending import EndedPlan
from cpaas.telephony.engine_client import LegAction
from cpaas.telephony.plans import Branch, Hangup, Plan
from cpaas.telephony.recordings import engine_folder
from freeswitch import commands, media
from freeswitch.esl import Connection, Event
from freeswitch.inbox import BLOCK_SECONDS, Inbox
from freeswitch.legs import FsLeg, uuid_of
from freeswitch.nodes import BEAT_EVERY, BEAT_TTL, Node
from freeswitch.runner import FsPlanRunner
from pjsua_engine import keys
from pjsua_engine.finisher import Finisher
from pjsua_engine.model import ActionError
from pjsua_engine.report import Reporter

log = logging.getLogger(__name__)

TICK = 0.01              # seconds between rounds of the driver loop while it runs plans
IDLE_WAIT = 0.5          # longest sleep with no plan (new work wakes it at once)
BACKOFF = (0.2, 5.0)     # first and longest wait between connection attempts
#: A node unreachable this long: its plans are closed (their calls are lost to us).
NODE_LOST_AFTER = 30.0
DTMF_DIGITS = frozenset("0123456789*#ABCD")
#: Shortest time between two heartbeats sent because the node's plan count changed.
LOAD_BEAT_EVERY = 0.25
#: Longest an action's reply, or a shutdown, waits for the reporter's queued writes.
DRAIN_SECONDS = 5.0
RESTART_CAUSE = "engine_listener_restarted"
NODE_LOST_CAUSE = "engine_node_down"


class NodeDriver:
    """Everything one node's thread holds."""

    def __init__(self, settings: Settings, node: Node, r: redis.Redis,
                 stop: threading.Event) -> None:
        self.settings = settings
        self.node = node
        self.r = r
        self.stop = stop
        # Written behind: this thread runs every plan of the node and must not wait for
        # Redis (see Publisher); an action's reply and a shutdown drain it first.
        self.reporter = Reporter(r, node.owner, background=True)
        self.finisher = Finisher(self.reporter, settings.media_dir)
        self.runners: list[FsPlanRunner] = []
        self.by_uuid: dict[str, tuple[FsPlanRunner, FsLeg]] = {}
        self.by_job: dict[str, FsLeg] = {}
        self.conn: Connection | None = None
        self.media_root = str(settings.freeswitch_media_dir or settings.media_dir)
        self.recording_dir = engine_folder(settings.data_dir)
        _check_folders(self.media_root, str(self.recording_dir))
        self._adopted: list[FsPlanRunner] = []   # taken over, started once connected
        self._down_since: float | None = None
        self._beat_at = 0.0
        self._beat_plans = 0
        self._acting = False   # a live-call action is running: post() waits (see there)

    # --------------------------------------------------------------- runner API
    def variables(self, plan: Plan, role: str) -> dict[str, str]:
        """The ``cpaas_*`` channel variables every leg carries (events are attributed
        by them, never by caller ids)."""
        return {"cpaas_plan": plan.plan_id, "cpaas_account": plan.account_id,
                "cpaas_role": role, "cpaas_kind": plan.kind, "cpaas_node": self.node.name}

    def post(self, line: str, job_uuid: str | None = None,
             refused: Callable[[], None] | None = None) -> gevent.Greenlet:
        """Send one command without waiting for its reply; ``refused`` runs (in this
        thread) if the node does not take it.

        The loop must not wait on the node: its reply time grows with its load, and a
        round of plans that waited for each command in turn fell seconds behind at 30
        calls/s (prompts then started after the carrier had hung up). Order is kept:
        each command gets a greenlet, gevent starts them in the order spawned, and each
        writes its command before it first yields (greenswitch pairs replies by order).
        While a live-call action runs it waits, so that its caller's success means the
        node took every command (and a refused transfer target is known at once).
        """
        def deliver() -> bool:
            ok = self._deliver(line, job_uuid)
            if not ok and refused is not None:
                refused()
            return ok
        sent = gevent.spawn(deliver)
        if self._acting:
            sent.join()
        return sent

    def send(self, line: str, job_uuid: str | None = None) -> bool:
        """Send one command and wait for its reply, after every command posted before
        it; False when the node did not take it."""
        return bool(self.post(line, job_uuid).get())

    def _deliver(self, line: str, job_uuid: str | None) -> bool:
        # Every bgapi carries a Job-UUID of our own.
        if job_uuid is None and line.startswith("bgapi "):
            job_uuid = str(uuidlib.uuid4())
        conn = self.conn
        if conn is None or not conn.connected:
            return False
        try:
            reply = conn.command(line, job_uuid=job_uuid)
        except (TimeoutError, NotConnectedError, OSError):
            log.warning("esl command not sent", extra={"node": self.node.name})
            return False
        if not reply.ok:
            log.warning("esl command refused", extra={"node": self.node.name,
                                                      "reply": reply.data[:120]})
        return reply.ok

    def adopt_leg(self, runner: FsPlanRunner, leg: FsLeg) -> None:
        """Route this leg's events (by uuid) and its job's result to ``runner``."""
        self.by_uuid[leg.uuid] = (runner, leg)
        self.by_job[leg.job] = leg

    def forget_leg(self, leg: FsLeg) -> None:
        """The leg has ended: no more events for it."""
        self.by_uuid.pop(leg.uuid, None)
        self.by_job.pop(leg.job, None)

    def recording_path(self, plan_id: str, index: int) -> tuple[str, str]:
        """Where a plan's recording lands here, and where the node writes it: the same
        path in a shared folder, or, with ``FREESWITCH_MEDIA_URL``, a single-use URL of
        ours the node uploads it to when it closes (freeswitch.media)."""
        self.recording_dir.mkdir(parents=True, exist_ok=True)
        name = f"{plan_id}-{index}.wav"
        local = f"{self.recording_dir}/{name}"
        if self.settings.freeswitch_media_url:
            return local, media.recording_url(self.settings, plan_id, name)
        return local, local

    def finish(self, ended: EndedPlan) -> None:
        """A plan's calls are all gone: store, announce, forget (off this thread)."""
        self.finisher.submit(ended)

    # ---------------------------------------------------------------- events
    def on_event(self, event: Event) -> None:
        """Apply one node event to the leg it names (greenswitch's handler greenlet)."""
        name = event.name
        if name == "BACKGROUND_JOB":
            self._job_done(event)
            return
        if name == "CHANNEL_BRIDGE":   # one event, on the bridge's A leg, names both
            for leg_uuid in (event.get("Unique-ID"), event.get("Other-Leg-Unique-ID")):
                bridged = self.by_uuid.get(leg_uuid or "")
                if bridged is not None:
                    bridged[0].leg_bridged(bridged[1])
            return
        found = self.by_uuid.get(event.get("Unique-ID") or "")
        if found is None:
            return
        runner, leg = found
        if name in ("CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA"):
            runner.leg_ringing(leg)
        elif name == "CHANNEL_ANSWER":
            runner.leg_answered(leg)
        elif name == "DTMF":
            digit = event.get("DTMF-Digit") or ""
            if digit in DTMF_DIGITS and len(digit) == 1:
                runner.leg_dtmf(leg, digit)
        elif name == "PLAYBACK_START":
            leg.playbacks_started += 1
        elif name == "PLAYBACK_STOP":
            leg.playbacks += 1
        elif name == "CHANNEL_HANGUP_COMPLETE":
            runner.leg_hangup(leg, event)

    def _job_done(self, event: Event) -> None:
        leg = self.by_job.pop(event.get("Job-UUID") or "", None)
        if leg is None or leg.ended:
            return
        body = event.body.strip()
        if body.startswith("-ERR"):
            # Its channel's hangup event (with the SIP code) normally follows at once.
            leg.job_error = body[4:].strip().split()[0] if body[4:].strip() else "UNKNOWN"
            leg.job_error_at = time.monotonic()

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        """Thread body: connect, serve, reconnect with backoff, until stopped."""
        self.finisher.start()
        # Created in this thread: the watcher belongs to this thread's gevent hub.
        self._woken = gevent.event.Event()
        wake = gevent.get_hub().loop.async_()
        wake.start(self._woken.set)
        self.inbox = Inbox(self.r, self.node, self.stop, wake)
        self.inbox.start()
        self._adopt_snapshots()
        wait = BACKOFF[0]
        while not self.stop.is_set():
            conn = Connection(self.node.host, self.node.port,
                              self.settings.freeswitch_esl_password, timeout=3)
            try:
                conn.connect()
                conn.register_handle("*", self.on_event)
                if not conn.command(commands.subscribe()).ok:
                    raise PermissionError("subscription refused")
            except (OSError, TimeoutError, PermissionError, NotConnectedError) as err:
                conn.close()
                self._node_down(str(err))
                gevent.sleep(wait)
                wait = min(wait * 2, BACKOFF[1])
                continue
            wait = BACKOFF[0]
            self.conn = conn
            log.info("esl connected", extra={"node": self.node.name})
            self._down_since = None
            self._reconcile()
            self._start_adopted()
            self._serve(conn)
            self.conn = None
            conn.close()
            self._node_down("connection lost")
        self._shutdown()

    def _serve(self, conn: Connection) -> None:
        """Until the connection drops: take work, advance the plans (every TICK while
        there are any, else asleep until work arrives or the next heartbeat is due)."""
        self.inbox.active.set()
        beater = gevent.spawn(self._keep_beating, conn)
        try:
            while conn.connected and not self.stop.is_set():
                now = time.monotonic()
                self._take_work()
                for runner in list(self.runners):
                    try:
                        runner.poll(now)
                    except Exception:
                        log.exception("plan failed", extra={"plan_id": runner.plan.plan_id})
                        runner.end("error")
                    if runner.done:
                        self.runners.remove(runner)
                # Beat when due, and soon when the load changes: clients pick the node
                # holding the fewest plans by it. Not on every change: at 30 calls/s the
                # count changes nearly every round, and a beat a round was a third of
                # this thread's time spent waiting for Redis (py-spy).
                if now - self._beat_at >= BEAT_EVERY or (
                        len(self.runners) != self._beat_plans
                        and now - self._beat_at >= LOAD_BEAT_EVERY):
                    self._beat()
                self._woken.clear()
                if self.inbox.items.empty():   # new work ends the wait at once
                    self._woken.wait(TICK if self.runners else IDLE_WAIT)
                else:
                    gevent.sleep(0)
        finally:
            beater.kill()
            self.inbox.active.clear()

    def _keep_beating(self, conn: Connection) -> None:
        """Beat on time even when a round of the loop is long: a round that sends many
        commands waits for each reply, and under load the node answers slowly (its
        heartbeat lapsing then would refuse new calls as if it were down)."""
        while conn.connected and not self.stop.is_set():
            if time.monotonic() - self._beat_at >= BEAT_EVERY:
                self._beat()
            gevent.sleep(BEAT_EVERY / 4)

    def _beat(self) -> None:
        self._beat_at, self._beat_plans = time.monotonic(), len(self.runners)
        try:
            self.r.set(self.node.beat_key, json.dumps({"plans": len(self.runners),
                                                       "at": time.time()}), ex=BEAT_TTL)
        except redis.RedisError:
            log.warning("heartbeat not written", extra={"node": self.node.name})

    def _node_down(self, why: str) -> None:
        try:
            self.r.delete(self.node.beat_key)
        except redis.RedisError:
            pass
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("esl node down", extra={"node": self.node.name, "why": why})
        elif self.runners and time.monotonic() - self._down_since > NODE_LOST_AFTER:
            for runner in self.runners:
                self._close_lost(runner, NODE_LOST_CAUSE)
            self.runners = [r for r in self.runners if not r.done]

    def _take_work(self) -> None:
        """What the inbox thread took from Redis since the last round."""
        while True:
            try:
                kind, raw = self.inbox.items.get_nowait()
            except queue.Empty:
                return
            if kind == "plan":
                self._start(Plan.from_json(raw))
            else:
                self._command(raw)

    def _start(self, plan: Plan) -> None:
        runner = FsPlanRunner(plan, self)
        self.runners.append(runner)
        try:
            runner.start()
        except Exception:
            log.exception("plan failed to start", extra={"plan_id": plan.plan_id})
            runner.end("error")

    # ------------------------------------------------------------ actions
    def _command(self, raw: bytes) -> None:
        try:
            msg = json.loads(raw)
            request_id, channel = msg["request_id"], msg["channel"]
            action = LegAction(**msg["action"])
        except (ValueError, KeyError, TypeError):
            log.warning("malformed command dropped")
            return
        if msg.get("expires") and time.time() > msg["expires"]:
            return
        found = self.by_uuid.get(uuid_of(channel) or "")
        if found is None:
            self._reply(request_id, ok=False, error="not_found")
            return
        runner, leg = found
        self._acting = True
        try:
            runner.act(leg, action)
        except ActionError as exc:
            self._reply(request_id, ok=False, error=str(exc))
            return
        finally:
            self._acting = False
        log.info("action done", extra={"channel": channel, "action": action.kind})
        # What the action changed (a leg held, a recording) is in Redis before its caller
        # hears it is done.
        if not self.reporter.drain(DRAIN_SECONDS):
            log.warning("action's writes still queued", extra={"channel": channel})
        self._reply(request_id, ok=True)

    def _reply(self, request_id: str, **body: object) -> None:
        key = keys.reply_key(request_id)
        try:
            pipe = self.r.pipeline()
            pipe.rpush(key, json.dumps(body))
            pipe.expire(key, keys.REPLY_TTL)
            pipe.execute()
        except redis.RedisError:
            log.exception("cannot reply", extra={"request_id": request_id})

    # ------------------------------------------------------------ restarts
    def _reconcile(self) -> None:
        """Close every leg we believed live that the node no longer has, then hang up
        the node's channels of ours that no plan holds."""
        for runner in list(self.runners):
            for leg in runner.all_legs:
                if not leg.live:
                    continue
                reply = self._api(commands.exists(leg.uuid))
                if reply is None:
                    return
                if reply.strip() == "false":
                    log.warning("leg gone while we were away", extra={
                        "plan_id": runner.plan.plan_id, "channel": leg.channel})
                    runner.leg_lost(leg)
        self._hang_up_strays()

    def _hang_up_strays(self) -> None:
        """A channel that carries this node's ``cpaas_node`` but belongs to no plan we
        hold (its plan's snapshot was lost with Redis, or we closed a leg the node still
        had) would run on with nobody to end it or write its CDR: hang it up. Channels
        of other nodes' drivers or of anything else on the node are left alone."""
        listing = self._api(commands.show_channels())
        if listing is None:
            return
        try:
            rows = json.loads(listing).get("rows") or []
        except (ValueError, AttributeError):
            log.warning("channel list unreadable", extra={"node": self.node.name})
            return
        for row in rows:
            uuid = row.get("uuid") if isinstance(row, dict) else None
            if not isinstance(uuid, str) or not commands.UUID_RE.fullmatch(uuid) \
                    or uuid in self.by_uuid:
                continue
            if (self._api(commands.getvar(uuid, "cpaas_node")) or "").strip() != self.node.name:
                continue
            plan_id = (self._api(commands.getvar(uuid, "cpaas_plan")) or "").strip()
            log.warning("stray channel hung up", extra={"node": self.node.name,
                                                        "plan_id": plan_id, "channel": uuid})
            self.send(commands.kill(uuid, "NORMAL_CLEARING"))

    def _api(self, line: str) -> str | None:
        """One ``api`` command's answer, after every command posted before it; None when
        the connection failed under it."""
        def ask() -> str | None:
            conn = self.conn
            if conn is None:
                return None
            try:
                return conn.command(line).data
            except (TimeoutError, NotConnectedError, OSError):
                return None
        return gevent.spawn(ask).get()

    def _adopt_snapshots(self) -> None:
        """Take over the plans a previous driver of this node left."""
        try:
            states = self.r.hgetall(keys.worker_plans(self.node.owner))
        except redis.RedisError:
            log.exception("snapshots unreadable", extra={"node": self.node.name})
            return
        for raw in states.values():
            state = json.loads(raw)
            runner = FsPlanRunner(Plan.from_json(json.dumps(state["plan"])), self)
            runner.dtmf = list(state.get("dtmf", ""))
            runner.ivr_result = state.get("ivr_result", "")
            runner.transfer_to = state.get("transfer_to", "")
            for role, data in state.get("legs", {}).items():
                leg = _restored_leg(role, data)
                runner.legs[role] = leg
                runner.all_legs.append(leg)
                if leg.live:
                    self.by_uuid[leg.uuid] = (runner, leg)
            self.runners.append(runner)
            self._adopted.append(runner)

    def _start_adopted(self) -> None:
        """Once the node answers (and reconcile closed what it no longer has): follow an
        established adopted call to its end, hang up any other."""
        for runner in self._adopted:
            established = _established(runner)
            log.warning("plan adopted", extra={"plan_id": runner.plan.plan_id,
                                               "established": established})
            if established:
                runner.start_tail()
            else:
                runner.cause = RESTART_CAUSE
                runner.end(RESTART_CAUSE)
        self._adopted.clear()

    def _close_lost(self, runner: FsPlanRunner, cause: str) -> None:
        runner.ending, runner.cause = True, cause
        for leg in runner.all_legs:
            if leg.live:
                runner.leg_lost(leg)
        if not runner.done:
            runner.poll(time.monotonic())

    def _shutdown(self) -> None:
        """Stopping: calls on the node go on without us; their plans stay in the
        snapshot hash for the next driver to adopt."""
        self.inbox.join(BLOCK_SECONDS * 4)
        try:
            self.r.delete(self.node.beat_key)
            while True:   # plans taken but not started go back, first in line
                kind, raw = self.inbox.items.get_nowait()
                if kind == "plan":
                    self.r.lpush(self.node.plans_key, raw)
        except queue.Empty:
            pass
        except redis.RedisError:
            log.error("plans taken but not started are lost", extra={"node": self.node.name})
        self.finisher.stop()
        if not self.reporter.drain(DRAIN_SECONDS):
            log.error("redis writes still queued at shutdown", extra={"node": self.node.name})


def _check_folders(media_root: str, recording_dir: str) -> None:
    """Both folders go into commands, so they must be safe tokens (no spaces, quotes…):
    refuse to start rather than fail every call."""
    for name, path in (("FREESWITCH_MEDIA_DIR (default: the data dir's media/)", media_root),
                       ("CPAAS_DATA_DIR (recordings)", recording_dir)):
        if not commands.DIR_RE.fullmatch(path) or ".." in path:
            raise ValueError(f"{name} {path!r}: FreeSWITCH commands take only absolute paths "
                             "of letters, digits and _ . / -")


def _restored_leg(role: str, data: dict) -> FsLeg:
    from cpaas.telephony.events import LegOutcome

    outcome = LegOutcome.from_dict(role, data)
    leg = FsLeg(role, outcome.number, "")
    leg.uuid = uuid_of(outcome.channel) or leg.uuid
    leg.channel, leg.outcome = outcome.channel, outcome
    leg.answered = outcome.answered_at is not None
    leg.ringing = leg.answered
    leg.ended = outcome.ended_at is not None
    return leg


def _established(runner: FsPlanRunner) -> bool:
    """Whether an adopted plan had nothing left to do but let its legs talk."""
    plan = runner.plan
    if not plan.verbs or isinstance(plan.verbs[-1], Hangup):
        return False
    if any(isinstance(v, Branch) for v in plan.verbs) and runner.ivr_result != "transferred":
        return False
    dialed = [runner.legs.get(role) for role in plan.legs()]
    return all(leg is not None and leg.answered for leg in dialed)
