"""One call plan executing on a FreeSWITCH node, driven by that node's events.

The shape is the embedded engine's (:mod:`pjsua_engine.runner`): verbs are generators
that yield :class:`~pjsua_engine.model.Wait` conditions, advanced by the node driver's
loop after each round of events, so the execution semantics of :mod:`cpaas.telephony.plans`
(a failed Dial ends the plan, end_on_hangup, the last verb…) are the same word for word.
What differs is how a verb acts: an ESL command (:mod:`freeswitch.commands`), and the
leg's state is what the node's events said (:mod:`freeswitch.driver`).
"""
from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cpaas.telephony.ending import EndedPlan
from cpaas.telephony.events import LegAnswered, LegDtmf, LegHangup, LegRinging
from cpaas.telephony.plans import (Branch, Bridge, Dial, Gather, Hangup, Play, Plan, Record,
                                   media_path)
from cpaas.telephony.recordings import RecordingFiles
from freeswitch import commands
from freeswitch.legs import FsLeg
from freeswitch.transfers import FsTransfers
from pjsua_engine.model import Running, Task, Wait

if TYPE_CHECKING:
    from freeswitch.driver import NodeDriver

log = logging.getLogger(__name__)

#: Seconds a failed originate job waits for its channel's own hangup event (which
#: carries the SIP code) before the job's -ERR alone closes the leg.
JOB_ERROR_GRACE = 1.0
#: Margin past a leg's ring timeout before we stop trusting FreeSWITCH's own timer.
RING_MARGIN = 5.0
#: Past this many seconds of waiting for legs' hangup events, a plan is closed anyway.
FORCE_FINISH_AFTER = 40.0


class FsPlanRunner(FsTransfers):
    """Executes one :class:`Plan` on one node."""

    def __init__(self, plan: Plan, driver: "NodeDriver") -> None:
        self.plan = plan
        self.driver = driver
        self.legs: dict[str, FsLeg] = {}
        self.all_legs: list[FsLeg] = []
        self.recordings: list[RecordingFiles] = []
        self.dtmf: list[str] = []
        self.gathered: dict[str, str] = {}
        self.ivr_result = ""
        self.transfer_to = ""
        self.tasks: list[Running] = []
        self.ending = False
        self.ending_since = 0.0
        self.cause = "normal"
        self.done = False

    # ----------------------------------------------------------------- driving
    def start(self, script: Task | None = None) -> None:
        """Begin the plan's verbs (or ``script``: an adopted plan's tail)."""
        log.info("plan started", extra={"plan_id": self.plan.plan_id, "kind": self.plan.kind,
                                          "node": self.driver.node.name})
        self._spawn(script if script is not None else self._script())

    def poll(self, now: float) -> None:
        """Advance every task whose wait is over; finish once all legs are gone."""
        self._expire_jobs(now)
        if not self.ending:
            self._run_tasks(now)
        if self.ending and self.tasks:
            for task in self.tasks:
                task.gen.close()
            self.tasks.clear()
        if self.ending and not self.done:
            if not any(leg.live for leg in self.all_legs):
                self._finish()
            elif time.monotonic() - self.ending_since > FORCE_FINISH_AFTER:
                log.error("legs did not hang up, closing plan", extra={"plan_id": self.plan.plan_id})
                for leg in self.all_legs:
                    if leg.live:
                        self.leg_ended(leg, None, None)
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

    def _expire_jobs(self, now: float) -> None:
        """A leg whose originate job failed and whose channel never reported its hangup."""
        for leg in self.all_legs:
            if leg.live and leg.job_error and time.monotonic() - leg.job_error_at > JOB_ERROR_GRACE:
                self.leg_ended(leg, leg.job_error, None, heard=leg.ringing)

    def end(self, cause: str) -> None:
        """Stop the plan: hang up every leg; it finishes when their hangups arrive."""
        if self.ending:
            return
        self.ending = True
        self.ending_since = time.monotonic()
        self.cause = cause
        log.info("plan ending", extra={"plan_id": self.plan.plan_id, "cause": cause})
        for leg in self.all_legs:
            self._hangup(leg)

    def _finish(self) -> None:
        self.done = True
        self.driver.finish(EndedPlan(
            plan=self.plan, legs={role: leg.outcome for role, leg in self.legs.items()},
            dtmf="".join(self.dtmf), recordings=list(self.recordings), cause=self.cause,
            tmpdir=None, ivr_result=self.ivr_result, transfer_to=self.transfer_to))
        log.info("plan finished", extra={"plan_id": self.plan.plan_id, "cause": self.cause})

    # ---------------------------------------------------------- node events
    def leg_ringing(self, leg: FsLeg) -> None:
        """``CHANNEL_PROGRESS`` (180) or ``CHANNEL_PROGRESS_MEDIA`` (183)."""
        if leg.ringing or leg.ended:
            return
        leg.ringing = True
        self.driver.reporter.publish(LegRinging(**self._ids(leg)))

    def leg_answered(self, leg: FsLeg) -> None:
        """``CHANNEL_ANSWER``."""
        if leg.answered or leg.ended:
            return
        leg.answered = True
        leg.outcome.answered_at = time.time()
        leg.outcome.sip_code = 200
        self.driver.reporter.publish(LegAnswered(**self._ids(leg), sip_code=200))
        self.driver.reporter.leg_state(leg.channel, "answered")
        self._snapshot()
        if leg.hangup_requested:
            self._hangup(leg, again=True)   # our cancel crossed its answer

    def leg_dtmf(self, leg: FsLeg, digit: str) -> None:
        """``DTMF`` (FreeSWITCH reports it while the leg is parked or prompting)."""
        leg.digits.append(digit)
        self.dtmf.append(digit)
        self.driver.reporter.publish(LegDtmf(**self._ids(leg), digit=digit, method="rfc2833"))
        self._snapshot()

    def leg_ended(self, leg: FsLeg, cause: str | None, sip_code: int | None,
                  heard: bool = True, event: Any = None) -> None:
        """``CHANNEL_HANGUP_COMPLETE`` (or a failed job, or a lost channel)."""
        if leg.ended:
            return
        if event is not None:
            leg.end_from_event(event)
        else:
            leg.end(cause, sip_code, heard=heard)
        self.driver.forget_leg(leg)
        self.driver.reporter.publish(LegHangup(plan_id=self.plan.plan_id,
                                               account_id=self.plan.account_id,
                                               outcome=leg.outcome))
        self.driver.reporter.leg_ended(self.plan, leg.channel)
        self._snapshot()
        peer, leg.peer = leg.peer, None
        if peer is not None and peer.peer is leg:
            peer.peer = None
            if peer.live:
                self.driver.reporter.leg_state(peer.channel, "answered")
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
        yield from self.tail()

    def tail(self) -> Task:
        """After the last verb the call stays up while anyone is on it."""
        yield Wait(lambda: not any(leg.live for leg in self.all_legs))
        self.end("normal")

    def _dial(self, verb: Dial) -> Task:
        if sum(1 for leg in self.all_legs if leg.live) >= self.plan.max_legs:
            log.error("plan dials past max_legs", extra={"plan_id": self.plan.plan_id})
            self.end("error")
            return False
        timeout = verb.ring_timeout or self.driver.settings.ring_timeout
        leg = self.place(verb.leg, verb.number, verb.caller_id, verb.target, timeout)
        yield Wait(lambda: leg.answered or leg.ended, time.monotonic() + timeout + RING_MARGIN)
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
        self.bridge(a, b)
        return True

    def _play(self, verb: Play) -> Task:
        leg = self._answered(verb.leg)
        if leg is None:
            return True
        local = str(media_path(self.driver.settings.media_dir, verb.audio))
        if verb.wait and not os.path.exists(local):
            # A per-call prompt still being rendered by the call job (see workers.jobs).
            yield Wait(lambda: os.path.exists(local) or leg.ended, time.monotonic() + verb.wait)
            if leg.ended:
                return True
            if not os.path.exists(local):
                log.error("prompt not ready in time", extra={"plan_id": self.plan.plan_id})
                self.end("error")
                return False
        path = commands.node_path(self.driver.media_root, verb.audio)
        for _ in range(verb.times):
            seen = leg.playbacks
            self.driver.send(commands.broadcast_playback(leg.uuid, path))
            yield Wait(lambda: leg.playbacks > seen or leg.ended)
            if leg.ended:
                break
        return True

    def _gather(self, verb: Gather) -> Task:
        leg = self._answered(verb.leg)
        if leg is None:
            return True
        # Digits typed during a preceding prompt count (type-ahead), as on the embedded engine.
        yield Wait(lambda: len(leg.digits) >= verb.max_digits or leg.ended,
                   time.monotonic() + verb.timeout)
        got = leg.digits[:verb.max_digits]
        del leg.digits[:verb.max_digits]
        self.gathered[leg.role] = "".join(got)
        log.info("gathered", extra={"plan_id": self.plan.plan_id, "leg": leg.role,
                                     "digits": len(got)})
        return True

    def _record_verb(self, verb: Record) -> bool:
        left = self.legs.get(verb.left) if verb.left else None
        right = self.legs.get(verb.right) if verb.right else None
        if left is None and right is None:
            log.warning("record skipped, no leg", extra={"plan_id": self.plan.plan_id})
            return True
        self.start_recording(verb.key, left, right)
        return True

    def _hangup_verb(self, verb: Hangup) -> Task:
        if verb.leg is None:
            self.end("normal")
            return False
        leg = self.legs.get(verb.leg)
        if leg is not None and leg.live:
            leg.ends_plan = False
            self._hangup(leg)
            yield Wait(lambda: leg.ended)
        return True

    def _branch(self, verb: Branch) -> Task:
        leg = self._answered(verb.leg)
        if leg is None:
            return True
        digits = self.gathered.pop(leg.role, "")
        miss = verb.miss(digits)
        if miss is not None:
            self._ivr_end(miss, "normal")
            return False
        kind, number = verb.target(digits)
        self.transfer_to = verb.routes[digits]
        self.ivr_result = "transfer_failed"
        if sum(1 for other in self.all_legs if other.live) >= self.plan.max_legs:
            self.end("error")
            return False
        target = self.place("transfer_target", number, verb.caller_id, kind, verb.ring_timeout)
        yield self.ring(target, leg, timeout=verb.ring_timeout)
        if not (target.answered and target.live and leg.live):
            self.give_up_ringing(target)
            self._ivr_end("transfer_failed", "transfer_failed")
            return False
        self.bridge(leg, target)
        self.ivr_result = "transferred"
        self._snapshot()
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
    def place(self, role: str, number: str, caller_id: str, target: str,
              ring_timeout: int) -> FsLeg:
        """Originate a new leg (parked when it answers); one that cannot be sent ends at once."""
        settings = self.driver.settings
        template = (settings.freeswitch_agent_dial if target == "agent"
                    else f"sofia/gateway/{settings.freeswitch_gateway}/{{number}}")
        leg = FsLeg(role, number, caller_id)
        line = commands.originate(leg.uuid, commands.dial_string(template, number), caller_id,
                                  ring_timeout, self.driver.variables(self.plan, role))
        self.legs[role] = leg
        self.all_legs.append(leg)
        self.driver.adopt_leg(self, leg)
        self.driver.reporter.leg_started(self.plan, leg.outcome)
        self._snapshot()
        log.info("dialing", extra={"plan_id": self.plan.plan_id, "leg": role,
                                    "channel": leg.channel})
        if not self.driver.send(line, job_uuid=leg.job):
            self.leg_ended(leg, "DESTINATION_OUT_OF_ORDER", None, heard=False)
        return leg

    def _answered(self, role: str) -> FsLeg | None:
        leg = self.legs.get(role)
        return leg if leg is not None and leg.answered and leg.live else None

    def _hangup(self, leg: FsLeg, again: bool = False) -> None:
        """uuid_kill: a CANCEL for a ringing leg, a BYE for an answered one."""
        if leg.ended or (leg.hangup_requested and not again):
            return
        leg.hangup_requested = True
        if not leg.answered:
            leg.cancelled = True
        self.driver.send(commands.kill(leg.uuid))

    def bridge(self, a: FsLeg, b: FsLeg) -> None:
        """uuid_bridge two answered legs (each parks again when it breaks)."""
        a.peer, b.peer = b, a
        self.driver.send(commands.bridge(a.uuid, b.uuid))
        for leg in (a, b):
            self.driver.reporter.leg_state(leg.channel, "bridged")

    def start_recording(self, key: str, left: FsLeg | None, right: FsLeg | None) -> None:
        """Record on one leg: stereo (its own audio left, its peer's right) when both sides
        are wanted, else that side only."""
        index = len(self.recordings)
        path = self.driver.recording_path(self.plan.plan_id, index)
        if left is not None and right is not None:
            leg = left
            self.driver.send(commands.set_stereo(leg.uuid))
        else:
            leg = left or right
            self.driver.send(commands.set_read_only(leg.uuid))
        self.driver.send(commands.record_start(leg.uuid, path))
        self.recordings.append(RecordingFiles(key, [path]))
        log.info("recording", extra={"plan_id": self.plan.plan_id, "channels":
                                     2 if left is not None and right is not None else 1})

    def _ids(self, leg: FsLeg) -> dict[str, str]:
        return {"plan_id": self.plan.plan_id, "account_id": self.plan.account_id,
                "leg": leg.role, "channel": leg.channel}

    def _snapshot(self) -> None:
        self.driver.reporter.snapshot(self.plan, {r: leg.outcome for r, leg in self.legs.items()},
                                      "".join(self.dtmf), self.ivr_result, self.transfer_to)
