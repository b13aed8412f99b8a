"""One call plan executing on a FreeSWITCH node, driven by that node's events.

The plan semantics (verb order, a failed Dial ends the plan, end_on_hangup, the last
verb, Gather/Branch, blind and attended transfers) are the embedded engine's, inherited
from :class:`pjsua_engine.runner.PlanRunner` and its :class:`~pjsua_engine.actions.LegActions`
rather than written twice, so both engines give a plan the same course and the same
events. What differs is only how a verb acts on a leg and how a leg's state is learnt:
an ESL command (:mod:`freeswitch.commands`) through the node driver (the runner's
``ctx``), and the node's events, which the driver hands to :meth:`FsPlanRunner.leg_answered`
and its siblings. The conference-bridge bookkeeping the base class keeps (``audio``)
stays empty here: FreeSWITCH bridges and records the legs itself.

Recordings live on a channel of FreeSWITCH's, so they cannot move to another leg as the
embedded engine's recorders do. Both sides are therefore recorded on the customer's
side (its peer left, itself right: ``RECORD_STEREO_SWAP``), the leg a transfer keeps;
a one-sided recording is made on that side's own leg.
"""
from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any, Callable

from cpaas.telephony.events import LegAnswered, LegHangup, LegRinging
from cpaas.telephony.plans import Branch, Dial, Play, Plan, media_path
from cpaas.telephony.recordings import RecordingFiles
from freeswitch import commands, media
from freeswitch.esl import Event
from freeswitch.legs import FsLeg
from pjsua_engine.model import Task, Wait
from pjsua_engine.runner import PlanRunner

if TYPE_CHECKING:
    from freeswitch.driver import NodeDriver

log = logging.getLogger(__name__)

#: Seconds a failed originate job waits for its channel's own hangup event (which
#: carries the SIP code) before the job's -ERR alone closes the leg.
JOB_ERROR_GRACE = 1.0
#: FreeSWITCH's own ``originate_timeout`` is a backstop this much later than the
#: plan's ring timeout, which the runner keeps itself, as on the embedded engine.
ORIGINATE_BACKSTOP = 5
#: A broadcast that reaches a leg in the instant between its answer and its ``park()``
#: is run and dropped by FreeSWITCH 1.10 (no audio, no PLAYBACK_START: seen on the
#: real node, about one IVR run in five): without a start this long after it, the
#: broadcast is sent again, up to ``PLAYBACK_TRIES`` in all, then the plan ends.
PLAYBACK_START_WAIT = 3.0
PLAYBACK_TRIES = 3
#: A leg we hang up while a bridge we asked for is still forming is killed only once
#: the bridge has formed (CHANNEL_BRIDGE), or after this long. FreeSWITCH hangs up the
#: other leg (DESTINATION_OUT_OF_ORDER) when one leaves while the bridge forms
#: (switch_ivr_bridge.c, audio_bridge_thread: the side that had not joined yet), where a
#: formed bridge that breaks parks it (park_after_bridge). Seen on the real node: an
#: agent hung up the instant the attended transfer's target answered, and the target
#: went with it, so the held customer had no one to join.
BRIDGE_FORM_WAIT = 2.0


class FsPlanRunner(PlanRunner):
    """Executes one :class:`Plan` on one node (``ctx`` is the node's driver)."""

    ctx: "NodeDriver"

    def __init__(self, plan: Plan, driver: "NodeDriver") -> None:
        super().__init__(plan, plan.max_legs, driver)   # type: ignore[arg-type]

    def start_tail(self) -> None:
        """Follow an adopted, established call to its end (see NodeDriver)."""
        self._spawn(self._tail())

    def _tail(self) -> Task:
        yield Wait(lambda: not any(leg.live for leg in self.all_legs))
        self.end("normal")

    def poll(self, now: float) -> None:
        """Close legs whose originate failed without a channel, kill legs whose bridge
        never formed in time, then advance the plan."""
        clock = time.monotonic()
        for leg in self.all_legs:
            if leg.live and leg.job_error and clock - leg.job_error_at > JOB_ERROR_GRACE:
                self._leg_ended(leg, None, cause=leg.job_error, heard=leg.ringing)
            elif leg.live and leg.kill_deferred and clock >= leg.bridging_until:
                self._kill(leg)
        super().poll(now)

    # ---------------------------------------------------------- node events
    def leg_ringing(self, leg: FsLeg) -> None:
        """``CHANNEL_PROGRESS`` (180) or ``CHANNEL_PROGRESS_MEDIA`` (183)."""
        if not (leg.ringing or leg.ended):
            leg.ringing = True
            self.ctx.reporter.publish(LegRinging(**self._ids(leg)))

    def leg_answered(self, leg: FsLeg) -> None:
        """``CHANNEL_ANSWER``."""
        if leg.answered or leg.ended:
            return
        leg.answered = True
        leg.outcome.answered_at = time.time()
        leg.outcome.sip_code = 200
        self.ctx.reporter.publish(LegAnswered(**self._ids(leg), sip_code=200))
        self.ctx.reporter.leg_state(leg.channel, "answered")
        self._snapshot()
        if leg.hangup_requested:
            self._hangup(leg, again=True)   # our cancel crossed its answer

    def leg_bridged(self, leg: FsLeg) -> None:
        """``CHANNEL_BRIDGE`` (either side): a hangup held for the bridge goes now."""
        leg.bridging_until = 0.0
        if leg.kill_deferred and leg.live:
            self._kill(leg)

    def leg_dtmf(self, leg: FsLeg, digit: str) -> None:
        """``DTMF`` (raised while the leg is parked or prompting)."""
        self._on_dtmf(leg, digit, "rfc2833")

    def leg_hangup(self, leg: FsLeg, event: Event) -> None:
        """``CHANNEL_HANGUP_COMPLETE``."""
        self._leg_ended(leg, None, event=event)

    def leg_lost(self, leg: FsLeg) -> None:
        """The node no longer has the leg (and we missed its hangup)."""
        self._leg_ended(leg, None)

    def _leg_ended(self, leg: FsLeg, sip_code: int | None, *, cause: str | None = None,  # type: ignore[override]
                   heard: bool = True, event: Event | None = None) -> None:
        if leg.ended:
            return
        if event is not None:
            leg.end_from_event(event)
        else:
            leg.end(cause, sip_code, heard=heard)
        self.ctx.forget_leg(leg)
        self.ctx.reporter.publish(LegHangup(plan_id=self.plan.plan_id,
                                            account_id=self.plan.account_id, outcome=leg.outcome))
        self.ctx.reporter.leg_ended(self.plan, leg.channel)
        self._snapshot()
        peer, leg.peer = leg.peer, None
        if peer is not None and peer.peer is leg:
            peer.peer = None
            if peer.live:
                self.ctx.reporter.leg_state(peer.channel, "answered")
        if not self.ending and self.plan.end_on_hangup and leg.answered and leg.ends_plan:
            self.end("normal")

    # ------------------------------------------------------- how verbs act
    def _play(self, verb: Play) -> Task:   # type: ignore[override]
        leg = self._answered(verb.leg)
        if leg is None:
            return True
        local = str(media_path(self.ctx.settings.media_dir, verb.audio))
        if verb.wait and not os.path.exists(local):
            # A per-call prompt still being rendered by the call job (see workers.jobs).
            yield Wait(lambda: os.path.exists(local) or leg.ended, time.monotonic() + verb.wait)
            if leg.ended:
                return True
            if not os.path.exists(local):
                log.error("prompt not ready in time", extra={"plan_id": self.plan.plan_id})
                self.end("error")
                return False
        secret = verb.audio in self.plan.ephemeral_files
        for _ in range(verb.times):   # one round per command, as the embedded engine rewinds
            seen, started = leg.playbacks, leg.playbacks_started
            for attempt in range(1, PLAYBACK_TRIES + 1):
                # Over HTTP a secret gets a fresh single-use URL each round (and each
                # try): the node keeps no copy to replay it from (commands.broadcast_playback).
                self.ctx.post(commands.broadcast_playback(leg.uuid, self._media(verb.audio),
                                                          secret))
                began = yield Wait(lambda: leg.playbacks_started > started
                                   or leg.playbacks > seen or leg.ended,
                                   time.monotonic() + PLAYBACK_START_WAIT)
                if began or leg.ended:
                    break
                log.warning("playback did not start; broadcast again",
                            extra={"plan_id": self.plan.plan_id, "leg": verb.leg,
                                   "attempt": attempt})
            else:
                log.error("playback never started", extra={"plan_id": self.plan.plan_id})
                self.end("error")
                return False
            yield Wait(lambda: leg.playbacks > seen or leg.ended)
            if leg.ended:
                break
        return True

    _VERBS: dict[type, Callable[..., Any]] = {**PlanRunner._VERBS, Play: _play}

    def _media(self, name: str) -> str:
        """Where the node reads ``name``: our shared folder, or a sealed URL of ours
        (single-use for a secret prompt)."""
        settings = self.ctx.settings
        if not settings.freeswitch_media_url:
            return commands.node_path(self.ctx.media_root, name)
        return media.url_for(settings, name, self.plan.plan_id,
                             once=name in self.plan.ephemeral_files)

    def _ring_timeout(self, role: str) -> int:
        """The ring timeout the plan gives ``role`` (a Dial's, a Branch's for its target)."""
        for verb in self.plan.verbs:
            if isinstance(verb, Dial) and verb.leg == role and verb.ring_timeout:
                return verb.ring_timeout
            if isinstance(verb, Branch) and role == "transfer_target":
                return verb.ring_timeout
        return self.ctx.settings.ring_timeout

    def _place(self, role: str, number: str, caller_id: str, target: str) -> FsLeg:  # type: ignore[override]
        """Originate a leg that parks when it answers; one the node refuses ends at once."""
        settings = self.ctx.settings
        template = (settings.freeswitch_agent_dial if target == "agent"
                    else f"sofia/gateway/{settings.freeswitch_gateway}/{{number}}")
        leg = FsLeg(role, number, caller_id)
        line = commands.originate(leg.uuid, commands.dial_string(template, number), caller_id,
                                  self._ring_timeout(role) + ORIGINATE_BACKSTOP,
                                  self.ctx.variables(self.plan, role))
        self.legs[role] = leg
        self.all_legs.append(leg)
        self.ctx.adopt_leg(self, leg)
        self.ctx.reporter.leg_started(self.plan, leg.outcome)
        self._snapshot()
        log.info("dialing", extra={"plan_id": self.plan.plan_id, "leg": role,
                                    "channel": leg.channel})
        # (During a live-call action the driver waits for the reply, so a transfer
        # target the node refuses has ended before LegActions._transfer_action looks.)
        self.ctx.post(line, job_uuid=leg.job, refused=lambda: self._leg_ended(
            leg, None, cause="DESTINATION_OUT_OF_ORDER", heard=False))
        return leg

    def _hangup(self, leg: FsLeg, again: bool = False) -> None:  # type: ignore[override]
        """uuid_kill: a CANCEL for a ringing leg (NO_ANSWER past its ring timeout), a BYE
        for an answered one."""
        if leg.ended or (leg.hangup_requested and not again):
            return
        leg.hangup_requested = True
        if not leg.answered:
            leg.cancelled = True
        if leg.bridging_until > time.monotonic():
            leg.kill_deferred = True   # see BRIDGE_FORM_WAIT
            return
        self._kill(leg)

    def _kill(self, leg: FsLeg) -> None:
        leg.kill_deferred = False
        cause = "NO_ANSWER" if leg.ring_timed_out and not leg.answered else "NORMAL_CLEARING"
        self.ctx.post(commands.kill(leg.uuid, cause))

    def _bridge(self, a: FsLeg, b: FsLeg) -> None:  # type: ignore[override]
        """uuid_bridge two answered legs (each parks again when the bridge breaks); until
        it has formed, a hangup of either waits for it (BRIDGE_FORM_WAIT)."""
        a.peer, b.peer = b, a
        a.bridging_until = b.bridging_until = time.monotonic() + BRIDGE_FORM_WAIT
        self.ctx.post(commands.bridge(a.uuid, b.uuid))
        for leg in (a, b):
            self.ctx.reporter.leg_state(leg.channel, "bridged")

    def _unbridge(self, a: FsLeg, b: FsLeg) -> None:  # type: ignore[override]
        """Part two legs: ``a`` is parked (held), ``b`` parks by ``park_after_bridge``."""
        if a.peer is b:
            a.peer = None
        if b.peer is a:
            b.peer = None
        if a.live:
            self.ctx.post(commands.park(a.uuid))

    def _start_recording(self, key: str, left: FsLeg | None,  # type: ignore[override]
                         right: FsLeg | None) -> None:
        """``uuid_record`` with this recording's own flags (see the module docstring)."""
        index = len(self.recordings)
        path, target = self.ctx.recording_path(self.plan.plan_id, index)
        if left is not None and right is not None:
            leg, flags = right, ("RECORD_STEREO", "RECORD_STEREO_SWAP")
        else:
            leg, flags = (left or right), ("RECORD_READ_ONLY",)
        self.ctx.post(commands.record_start(leg.uuid, target, flags))
        self.recordings.append(RecordingFiles(key, [path]))
        log.info("recording", extra={"plan_id": self.plan.plan_id, "flags": ",".join(flags)})
