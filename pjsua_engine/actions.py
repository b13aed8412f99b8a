"""Live-leg actions on a running plan: hangup, record, blind and attended transfer.

Transfers never send REFER (carriers and sipp ignore it, GUIDE §1): the engine dials
the target itself inside the plan's reserved extra call slot and re-bridges, as
FreeSWITCH's ``uuid_transfer``/``att_xfer`` do.
"""
from __future__ import annotations

import logging
import time

from cpaas.telephony.engine_client import LegAction
from cpaas.telephony.plans import EXTENSION_RE, NUMBER_RE, SAFE_TOKEN_RE
from pjsua_engine.model import ActionError, Leg, Task, Wait

log = logging.getLogger(__name__)

#: Roles that sit on the platform's side of a call: the left channel of a recording.
AGENT_SIDE = {"agent", "transfer_target"}


class LegActions:
    """Mixed into :class:`pjsua_engine.runner.PlanRunner`."""

    def act(self, leg: Leg, action: LegAction) -> None:
        """Apply a live-leg action; raise :class:`ActionError` when it cannot be."""
        if self.ending or leg.ended:
            raise ActionError("call is ending")
        if action.kind == "hangup":
            self._hangup(leg)
        elif action.kind == "record":
            self._record_action(leg, action)
        elif action.kind in ("blind_transfer", "attended_transfer"):
            self._transfer_action(leg, action)
        else:
            raise ActionError(f"unknown action {action.kind!r}")

    def _record_action(self, leg: Leg, action: LegAction) -> None:
        key = action.record_key or ""
        if not SAFE_TOKEN_RE.match(key) or ".." in key:
            raise ActionError("invalid record key")
        if any(rec.key == key for rec in self.recordings):
            raise ActionError("already recording under that key")
        peer = leg.peer if leg.peer is not None and leg.peer.live else None
        if leg.role in AGENT_SIDE:
            self._start_recording(key, leg, peer)
        else:
            self._start_recording(key, peer, leg)

    def _transfer_action(self, leg: Leg, action: LegAction) -> None:
        target_kind = action.target_kind or "number"
        pattern = EXTENSION_RE if target_kind == "agent" else NUMBER_RE
        if not action.target or not pattern.match(action.target):
            raise ActionError("invalid transfer target")
        caller_id = action.caller_id or leg.caller_id
        if not NUMBER_RE.match(caller_id):
            raise ActionError("invalid caller id")
        peer = leg.peer
        if not leg.answered or peer is None or not peer.live:
            raise ActionError("leg is not bridged to anyone")
        current = self.legs.get("transfer_target")
        if current is not None and current.live:
            raise ActionError("a transfer is already in progress")
        if sum(1 for other in self.all_legs if other.live) >= self.slots:
            raise ActionError("no call slot left for this plan (max_legs)")
        target = self._place("transfer_target", action.target, caller_id, target_kind)
        if target.ended:
            raise ActionError("transfer target could not be dialed")
        if action.kind == "blind_transfer":
            self._spawn(self._blind_transfer(leg, peer, target))
        else:
            self._spawn(self._attended_transfer(leg, peer, target))

    def _ring(self, target: Leg, *others: Leg, timeout: float | None = None) -> Wait:
        """Until ``target`` answers or ends, one of ``others`` ends, or ``timeout`` (the
        platform's ring timeout by default) passes."""
        return Wait(lambda: target.answered or target.ended or any(o.ended for o in others),
                    time.monotonic() + (timeout or self.ctx.settings.ring_timeout))

    def _give_up_ringing(self, target: Leg) -> None:
        if target.live and not target.answered:
            target.ring_timed_out = True
            self._hangup(target)

    def _blind_transfer(self, transferer: Leg, peer: Leg, target: Leg) -> Task:
        """Peer stays with the transferer until the target answers, then moves over."""
        target.ends_plan = False
        transferer.ends_plan = False   # it has handed the call over; its BYE is expected
        yield self._ring(target, peer)
        if peer.ended:
            return
        if not (target.answered and target.live):
            self._give_up_ringing(target)
            if transferer.ended:
                self.end("transfer_failed")
            else:
                transferer.ends_plan = True
            return
        target.ends_plan = True
        self._unbridge(transferer, peer)
        self.audio.move_recorders(transferer.key, target.key)
        self._bridge(peer, target)
        self._hangup(transferer)
        log.info("blind transfer done", extra={"plan_id": self.plan.plan_id})

    def _attended_transfer(self, customer: Leg, agent: Leg, target: Leg) -> Task:
        """Hold the customer, let the agent consult the target, join them when it leaves."""
        agent.ends_plan = False
        target.ends_plan = False
        self._unbridge(customer, agent)
        self.ctx.reporter.leg_state(customer.channel, "held")
        self.ctx.reporter.leg_state(agent.channel, "answered")
        yield self._ring(target, customer)
        if customer.ended:
            return
        if not (target.answered and target.live):
            self._give_up_ringing(target)
            if agent.ended:
                self.end("transfer_failed")
            else:
                agent.ends_plan = True
                self._bridge(customer, agent)
            return
        if agent.live:
            self._bridge(agent, target)   # consultation; the customer still on hold
            yield Wait(lambda: agent.ended or target.ended or customer.ended)
            if customer.ended:
                return
            if target.ended:
                if agent.ended:
                    self.end("normal")
                else:
                    agent.ends_plan = True
                    self._bridge(customer, agent)
                return
        target.ends_plan = True
        self.audio.move_recorders(agent.key, target.key)
        self._bridge(customer, target)
        log.info("attended transfer done", extra={"plan_id": self.plan.plan_id})
