"""One call plan executing inside a worker: its legs and verbs.

Verbs (and transfers, see :mod:`pjsua_engine.actions`) are generators ("tasks") that
yield :class:`~pjsua_engine.model.Wait` conditions; the worker's main loop polls every
runner after each round of SIP events, so a plan never blocks the thread that also
serves the other plans of the process. Audio connections live in
:class:`~pjsua_engine.links.AudioLinks`.
"""
from __future__ import annotations

import inspect
import itertools
import logging
import os
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

from cpaas.telephony.ending import EndedPlan
from cpaas.telephony.events import LegAnswered, LegDtmf, LegHangup, LegRinging
from cpaas.telephony.outcomes import LegEnd, dial_status
from cpaas.telephony.plans import (Branch, Bridge, Dial, Gather, Hangup, Play, Plan, Record,
                                   media_path)
from cpaas.telephony.recordings import RecordingFiles, engine_folder
from pjsua_engine.actions import LegActions
from pjsua_engine.links import RECORDER, AudioLinks
from pjsua_engine.model import Leg, Running, Task, Wait
from pjsua_engine.sip import Player

if TYPE_CHECKING:
    from pjsua_engine.worker import WorkerContext

log = logging.getLogger(__name__)

#: Past this many seconds of waiting for legs to disconnect, a plan is closed anyway
#: (pjsip's INVITE transaction gives up after 32 s, so this only catches the unexpected).
FORCE_FINISH_AFTER = 40.0


class PlanRunner(LegActions):
    """Executes one :class:`Plan` in the worker's SIP stack."""

    def __init__(self, plan: Plan, slots: int, ctx: "WorkerContext") -> None:
        self.plan = plan
        self.slots = slots
        self.ctx = ctx
        self.legs: dict[str, Leg] = {}
        self.all_legs: list[Leg] = []
        self.audio = AudioLinks()
        self.recordings: list[RecordingFiles] = []
        self.dtmf: list[str] = []
        self.gathered: dict[str, str] = {}   # role -> digits its last Gather collected
        self.ivr_result = ""                 # what a Branch did (PlanEnded.ivr_result)
        self.transfer_to = ""                # the route it dialed
        self.tasks: list[Running] = []
        self.ending = False
        self.ending_since = 0.0
        self.cause = "normal"
        self.done = False
        self._seq = itertools.count()
        self._tmpdir: str | None = None

    # ----------------------------------------------------------------- driving
    def start(self) -> None:
        """Begin the plan's verbs."""
        log.info("plan started", extra={"plan_id": self.plan.plan_id, "kind": self.plan.kind,
                                          "verbs": len(self.plan.verbs)})
        self._spawn(self._script())

    def poll(self, now: float) -> None:
        """Advance every task whose wait is over; finish once all legs are gone."""
        if not self.ending:
            self._run_tasks(now)
        if self.ending and self.tasks:
            for task in self.tasks:
                task.gen.close()
            self.tasks.clear()
        if self.ending and not self.done:
            if not any(leg.live for leg in self.all_legs):
                self._finish()
            elif now - self.ending_since > FORCE_FINISH_AFTER:
                log.error("legs did not disconnect, closing plan",
                          extra={"plan_id": self.plan.plan_id})
                for leg in self.all_legs:
                    if leg.live:
                        self._leg_ended(leg, None)
                self._finish()

    def _spawn(self, gen: Task) -> None:
        try:
            first = next(gen)
        except StopIteration:
            return
        except Exception:
            log.exception("plan task failed", extra={"plan_id": self.plan.plan_id})
            self.end("error")
            return
        self.tasks.append(Running(gen, first))

    def _run_tasks(self, now: float) -> None:
        for task in list(self.tasks):
            while not self.ending:
                ready = task.wait.until()
                if not ready and (task.wait.deadline is None or now < task.wait.deadline):
                    break
                try:
                    task.wait = task.gen.send(ready)
                except StopIteration:
                    self.tasks.remove(task)
                    break
                except Exception:
                    log.exception("plan task failed", extra={"plan_id": self.plan.plan_id})
                    self.tasks.remove(task)
                    self.end("error")
                    break

    def end(self, cause: str) -> None:
        """Stop the plan: hang up every leg; it finishes when they are all gone."""
        if self.ending:
            return
        self.ending = True
        self.ending_since = time.monotonic()
        self.cause = cause
        log.info("plan ending", extra={"plan_id": self.plan.plan_id, "cause": cause})
        for leg in self.all_legs:
            self._hangup(leg)

    def _finish(self) -> None:
        """Release every pjsua object of the plan and hand the rest to the finisher."""
        self.done = True
        for leg in self.all_legs:
            leg.call = None
            leg.peer = None
        # Dropping the recorders closes their WAV files (see recordings.wav_complete).
        self.audio.close()
        self.ctx.finish(EndedPlan(
            plan=self.plan, legs={role: leg.outcome for role, leg in self.legs.items()},
            dtmf="".join(self.dtmf), recordings=list(self.recordings), cause=self.cause,
            tmpdir=self._tmpdir, ivr_result=self.ivr_result, transfer_to=self.transfer_to))
        log.info("plan finished", extra={"plan_id": self.plan.plan_id, "cause": self.cause})

    # ------------------------------------------------------------ SIP notices
    def on_notice(self, kind: str, leg: Leg, *args: Any) -> None:
        """Apply one callback notice from the SIP stack to the leg."""
        if leg.ended:
            return
        if kind == "state":
            self._on_state(leg, *args)
        elif kind == "media":
            self.audio.set_port(leg.key, args[0])
        elif kind == "dtmf":
            self._on_dtmf(leg, *args)

    def _on_state(self, leg: Leg, state: int, sip_code: int, heard: bool) -> None:
        leg.heard = heard
        if state == pj.PJSIP_INV_STATE_EARLY and not leg.ringing:
            leg.ringing = True
            self.ctx.reporter.publish(LegRinging(**self._ids(leg), sip_code=sip_code))
        elif state == pj.PJSIP_INV_STATE_CONFIRMED and not leg.answered:
            leg.answered = True
            leg.outcome.answered_at = time.time()
            leg.outcome.sip_code = sip_code
            self.ctx.reporter.publish(LegAnswered(**self._ids(leg), sip_code=sip_code))
            self.ctx.reporter.leg_state(leg.channel, "answered")
            self._snapshot()
            if leg.hangup_requested:
                # Our CANCEL crossed its 200 OK: now it takes a BYE.
                self._hangup(leg, again=True)
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._leg_ended(leg, sip_code)

    def _on_dtmf(self, leg: Leg, digit: str, method: str) -> None:
        leg.digits.append(digit)
        self.dtmf.append(digit)
        self.ctx.reporter.publish(LegDtmf(**self._ids(leg), digit=digit, method=method))
        self._snapshot()

    def _leg_ended(self, leg: Leg, sip_code: int | None) -> None:
        leg.ended = True
        outcome = leg.outcome
        outcome.ended_at = time.time()
        if not leg.answered:
            outcome.sip_code = sip_code or None
        outcome.dial_status = dial_status(LegEnd(
            answered=leg.answered, cancelled=leg.cancelled, ring_timeout=leg.ring_timed_out,
            heard=leg.heard, sip_code=sip_code or None))
        leg.call = None
        # Recorder links stay: a transfer may move them to the leg that takes over.
        self.audio.forget(leg.key, keep=lambda link: link[1].startswith(RECORDER))
        self.ctx.reporter.publish(LegHangup(plan_id=self.plan.plan_id,
                                            account_id=self.plan.account_id, outcome=outcome))
        self.ctx.reporter.leg_ended(self.plan, leg.channel)
        self._snapshot()
        peer, leg.peer = leg.peer, None
        if peer is not None and peer.peer is leg:
            peer.peer = None
            if peer.live:
                self.ctx.reporter.leg_state(peer.channel, "answered")
        if not self.ending and self.plan.end_on_hangup and leg.answered and leg.ends_plan:
            self.end("normal")

    # ------------------------------------------------------------------ verbs
    def _script(self) -> Task:
        for verb in self.plan.verbs:
            result = self._VERBS[type(verb)](self, verb)
            ok = (yield from result) if inspect.isgenerator(result) else result
            if not ok or self.ending:
                return
        if not self.plan.verbs or isinstance(self.plan.verbs[-1], Hangup):
            self.end("normal")
            return
        # After the last verb the call stays up while anyone is on it.
        yield Wait(lambda: not any(leg.live for leg in self.all_legs))
        self.end("normal")

    def _dial(self, verb: Dial) -> Task:
        if sum(1 for leg in self.all_legs if leg.live) >= self.slots:
            # More legs than the plan reserved would take another plan's call slot.
            log.error("plan dials past max_legs", extra={"plan_id": self.plan.plan_id})
            self.end("error")
            return False
        leg = self._place(verb.leg, verb.number, verb.caller_id, verb.target)
        timeout = verb.ring_timeout or self.ctx.settings.ring_timeout
        yield Wait(lambda: leg.answered or leg.ended, time.monotonic() + timeout)
        if leg.answered and leg.live:
            return True
        if leg.live:
            leg.ring_timed_out = True
            self._hangup(leg)
        self.end("dial_failed")
        return False

    def _bridge_verb(self, verb: Bridge) -> bool:
        a, b = self._answered(verb.leg_a), self._answered(verb.leg_b)
        if a is None or b is None:
            log.warning("bridge skipped, leg not up", extra={"plan_id": self.plan.plan_id})
            return True
        self._bridge(a, b)
        return True

    def _play(self, verb: Play) -> Task:
        leg = self._answered(verb.leg)
        if leg is None:
            log.warning("play skipped, leg not up",
                        extra={"plan_id": self.plan.plan_id, "leg": verb.leg})
            return True
        path = str(media_path(self.ctx.settings.media_dir, verb.audio))
        if verb.wait and not os.path.exists(path):
            # A per-call prompt still being rendered by the call job (see workers.jobs).
            yield Wait(lambda: os.path.exists(path) or leg.ended, time.monotonic() + verb.wait)
            if leg.ended:
                return True
            if not os.path.exists(path):
                log.error("prompt not ready in time", extra={"plan_id": self.plan.plan_id,
                                                             "wait": verb.wait})
                self.end("error")
                return False
        player = Player()
        try:
            # Played once per round and rewound by us: a looping player would start the
            # prompt again for a moment before the poll loop noticed the last round.
            player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
        except pj.Error as exc:
            log.error("cannot play audio", extra={"plan_id": self.plan.plan_id,
                                                 "audio": verb.audio, "error": exc.info()})
            self.end("error")
            return False
        key = f"player:{next(self._seq)}"
        self.audio.set_port(key, player)
        self.audio.connect((key, leg.key))
        rounds = 0
        while True:
            yield Wait(lambda: player.loops > rounds or leg.ended)
            rounds = player.loops
            if leg.ended or rounds >= verb.times:
                break
            player.setPos(0)
        self.audio.forget(key)   # the generator ends here, dropping the player with it
        return True

    def _gather(self, verb: Gather) -> Task:
        leg = self._answered(verb.leg)
        if leg is None:
            return True
        # Digits typed during a preceding prompt count (type-ahead).
        yield Wait(lambda: len(leg.digits) >= verb.max_digits or leg.ended,
                   time.monotonic() + verb.timeout)
        got = leg.digits[:verb.max_digits]
        del leg.digits[:verb.max_digits]
        self.gathered[leg.role] = "".join(got)   # for a Branch that follows
        log.info("gathered", extra={"plan_id": self.plan.plan_id, "leg": leg.role,
                                     "digits": len(got)})
        return True

    def _record_verb(self, verb: Record) -> bool:
        left = self.legs.get(verb.left) if verb.left else None
        right = self.legs.get(verb.right) if verb.right else None
        if left is None and right is None:
            log.warning("record skipped, no leg", extra={"plan_id": self.plan.plan_id})
            return True
        self._start_recording(verb.key, left, right)
        return True

    def _hangup_verb(self, verb: Hangup) -> Task:
        if verb.leg is None:
            self.end("normal")
            return False
        leg = self.legs.get(verb.leg)
        if leg is not None and leg.live:
            leg.ends_plan = False     # asked for by the plan, not a caller's hangup
            self._hangup(leg)
            yield Wait(lambda: leg.ended)
        return True

    def _branch(self, verb: Branch) -> Task:
        leg = self._answered(verb.leg)
        if leg is None:
            return True     # it hung up: that is ending the plan
        digits = self.gathered.pop(leg.role, "")
        miss = verb.miss(digits)
        if miss is not None:
            self._ivr_end(miss, "normal")
            return False
        kind, number = verb.target(digits)
        self.transfer_to = verb.routes[digits]
        # Until the target is bridged the transfer has failed: a contact who hangs up
        # while it rings ends the plan (and this task) with that result standing.
        self.ivr_result = "transfer_failed"
        if sum(1 for other in self.all_legs if other.live) >= self.slots:
            log.error("branch transfer past max_legs", extra={"plan_id": self.plan.plan_id})
            self.end("error")
            return False
        target = self._place("transfer_target", number, verb.caller_id, kind)
        yield self._ring(target, leg, timeout=verb.ring_timeout)
        if not (target.answered and target.live and leg.live):
            self._give_up_ringing(target)
            self._ivr_end("transfer_failed", "transfer_failed")
            return False
        self._bridge(leg, target)
        self.ivr_result = "transferred"
        self._snapshot()
        log.info("ivr transferred", extra={"plan_id": self.plan.plan_id, "target_kind": kind})
        return True

    def _ivr_end(self, result: str, cause: str) -> None:
        self.ivr_result = result
        log.info("ivr ended", extra={"plan_id": self.plan.plan_id, "ivr_result": result})
        self.end(cause)

    _VERBS: dict[type, Callable[..., Any]] = {
        Dial: _dial, Bridge: _bridge_verb, Play: _play, Gather: _gather,
        Record: _record_verb, Hangup: _hangup_verb, Branch: _branch,
    }

    # ---------------------------------------------------------------- helpers
    def _place(self, role: str, number: str, caller_id: str, target: str) -> Leg:
        """Dial a new leg; a leg that cannot even be sent ends at once."""
        if target == "agent":
            uri = self.ctx.settings.agent_uri.format(ext=number)
        else:
            uri = self.ctx.settings.sip_trunk.format(number=number)
        leg = Leg(self, role, number, caller_id)
        self.legs[role] = leg
        self.all_legs.append(leg)
        self.ctx.reporter.leg_started(self.plan, leg.outcome)
        self._snapshot()
        log.info("dialing", extra={"plan_id": self.plan.plan_id, "leg": role,
                                    "channel": leg.channel})
        try:
            leg.call = self.ctx.stack.make_call(uri, caller_id, leg, self.ctx.sink)
        except pj.Error as exc:
            log.warning("dial failed", extra={"plan_id": self.plan.plan_id, "leg": role,
                                             "error": exc.info()})
            self._leg_ended(leg, None)
        return leg

    def _answered(self, role: str) -> Leg | None:
        leg = self.legs.get(role)
        return leg if leg is not None and leg.answered and leg.live else None

    def _hangup(self, leg: Leg, again: bool = False) -> None:
        """BYE an answered leg, CANCEL a ringing one."""
        if leg.ended or leg.call is None or (leg.hangup_requested and not again):
            return
        leg.hangup_requested = True
        if not leg.answered:
            leg.cancelled = True
        try:
            leg.call.hangup(pj.CallOpParam(True))
        except pj.Error as exc:
            log.debug("hangup refused", extra={"channel": leg.channel, "error": exc.info()})

    def _bridge(self, a: Leg, b: Leg) -> None:
        a.peer, b.peer = b, a
        self.audio.connect((a.key, b.key), (b.key, a.key))
        for leg in (a, b):
            self.ctx.reporter.leg_state(leg.channel, "bridged")

    def _unbridge(self, a: Leg, b: Leg) -> None:
        if a.peer is b:
            a.peer = None
        if b.peer is a:
            b.peer = None
        self.audio.disconnect((a.key, b.key), (b.key, a.key))

    def _start_recording(self, key: str, left: Leg | None, right: Leg | None) -> None:
        """One recorder per side, each fed with that leg's received audio."""
        if self._tmpdir is None:
            base = engine_folder(self.ctx.settings.data_dir)
            base.mkdir(parents=True, exist_ok=True)
            self._tmpdir = tempfile.mkdtemp(prefix=f"{self.plan.plan_id}-", dir=base)
        index = len(self.recordings)
        rec = RecordingFiles(key)
        for side, leg in (("left", left), ("right", right)):
            if leg is None:
                continue
            path = os.path.join(self._tmpdir, f"{index}-{side}.wav")
            recorder = pj.AudioMediaRecorder()
            recorder.createRecorder(path)
            port_key = f"{RECORDER}{index}:{side}"
            self.audio.set_port(port_key, recorder)
            self.audio.connect((leg.key, port_key))
            rec.paths.append(path)
        self.recordings.append(rec)
        log.info("recording", extra={"plan_id": self.plan.plan_id, "sides": len(rec.paths)})

    def _ids(self, leg: Leg) -> dict[str, str]:
        """What every event about ``leg`` names: its plan, account, role and channel."""
        return {"plan_id": self.plan.plan_id, "account_id": self.plan.account_id,
                "leg": leg.role, "channel": leg.channel}

    def _snapshot(self) -> None:
        self.ctx.reporter.snapshot(self.plan, {r: leg.outcome for r, leg in self.legs.items()},
                                   "".join(self.dtmf), self.ivr_result, self.transfer_to)
