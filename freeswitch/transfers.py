"""Live-leg actions on a plan running on FreeSWITCH: hangup, record, blind and attended
transfer.

As on the embedded engine (:mod:`pjsua_engine.actions`), a transfer dials the target
itself and re-bridges; no REFER reaches the far end. Every leg was originated with
``park_after_bridge``, so a leg whose bridge is broken by a new ``uuid_bridge`` waits
parked (that is the customer's hold) instead of hanging up.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from cpaas.telephony.engine_client import LegAction
from cpaas.telephony.plans import EXTENSION_RE, NUMBER_RE, SAFE_TOKEN_RE
from freeswitch import commands
from freeswitch.legs import FsLeg
from pjsua_engine.actions import AGENT_SIDE
from pjsua_engine.model import ActionError, Task, Wait

log = logging.getLogger(__name__)


class FsTransfers:
    """Mixed into :class:`freeswitch.runner.FsPlanRunner`."""

    plan: Any
    driver: Any
    legs: dict[str, FsLeg]
    all_legs: list[FsLeg]
    recordings: list[Any]
    ending: bool

    def act(self, leg: FsLeg, action: LegAction) -> None:
        """Apply a live-leg action; raise :class:`ActionError` when it cannot be."""
        if self.ending or leg.ended:
            raise ActionError("call is ending")
        if action.kind == "hangup":
            self._hangup(leg)   # type: ignore[attr-defined]
        elif action.kind == "record":
            self._record_action(leg, action)
        elif action.kind in ("blind_transfer", "attended_transfer"):
            self._transfer_action(leg, action)
        else:
            raise ActionError(f"unknown action {action.kind!r}")

    def _record_action(self, leg: FsLeg, action: LegAction) -> None:
        key = action.record_key or ""
        if not SAFE_TOKEN_RE.fullmatch(key) or ".." in key:
            raise ActionError("invalid record key")
        if any(rec.key == key for rec in self.recordings):
            raise ActionError("already recording under that key")
        peer = leg.peer if leg.peer is not None and leg.peer.live else None
        if leg.role in AGENT_SIDE:
            self.start_recording(key, leg, peer)   # type: ignore[attr-defined]
        else:
            self.start_recording(key, peer, leg)   # type: ignore[attr-defined]

    def _transfer_action(self, leg: FsLeg, action: LegAction) -> None:
        target_kind = action.target_kind or "number"
        pattern = EXTENSION_RE if target_kind == "agent" else NUMBER_RE
        if not action.target or not pattern.fullmatch(action.target):
            raise ActionError("invalid transfer target")
        caller_id = action.caller_id or leg.caller_id
        if not NUMBER_RE.fullmatch(caller_id):
            raise ActionError("invalid caller id")
        peer = leg.peer
        if not leg.answered or peer is None or not peer.live:
            raise ActionError("leg is not bridged to anyone")
        current = self.legs.get("transfer_target")
        if current is not None and current.live:
            raise ActionError("a transfer is already in progress")
        if sum(1 for other in self.all_legs if other.live) >= self.plan.max_legs:
            raise ActionError("no call slot left for this plan (max_legs)")
        target = self.place("transfer_target", action.target, caller_id,  # type: ignore[attr-defined]
                            target_kind, self.driver.settings.ring_timeout)
        if target.ended:
            raise ActionError("transfer target could not be dialed")
        flow = self._blind(leg, peer, target) if action.kind == "blind_transfer" \
            else self._attended(leg, peer, target)
        self._spawn(flow)   # type: ignore[attr-defined]

    def ring(self, target: FsLeg, *others: FsLeg, timeout: float | None = None) -> Wait:
        """Until ``target`` answers or ends, one of ``others`` ends, or ``timeout``."""
        return Wait(lambda: target.answered or target.ended or any(o.ended for o in others),
                    time.monotonic() + (timeout or self.driver.settings.ring_timeout) + 5)

    def give_up_ringing(self, target: FsLeg) -> None:
        """Stop a transfer target that did not answer in time."""
        if target.live and not target.answered:
            target.ring_timed_out = True
            self._hangup(target)   # type: ignore[attr-defined]

    def _blind(self, transferer: FsLeg, peer: FsLeg, target: FsLeg) -> Task:
        """Peer stays with the transferer until the target answers, then moves over."""
        target.ends_plan = False
        transferer.ends_plan = False
        yield self.ring(target, peer)
        if peer.ended:
            return
        if not (target.answered and target.live):
            self.give_up_ringing(target)
            if transferer.ended:
                self.end("transfer_failed")   # type: ignore[attr-defined]
            else:
                transferer.ends_plan = True
            return
        target.ends_plan = True
        self.bridge(peer, target)   # type: ignore[attr-defined]
        self._hangup(transferer)    # type: ignore[attr-defined]
        log.info("blind transfer done", extra={"plan_id": self.plan.plan_id})

    def _attended(self, customer: FsLeg, agent: FsLeg, target: FsLeg) -> Task:
        """Hold the customer (parked), let the agent consult the target, join them when
        the agent leaves."""
        agent.ends_plan = False
        target.ends_plan = False
        self.driver.send(commands.park(customer.uuid))
        customer.peer = agent.peer = None
        self.driver.reporter.leg_state(customer.channel, "held")
        self.driver.reporter.leg_state(agent.channel, "answered")
        yield self.ring(target, customer)
        if customer.ended:
            return
        if not (target.answered and target.live):
            self.give_up_ringing(target)
            if agent.ended:
                self.end("transfer_failed")   # type: ignore[attr-defined]
            else:
                agent.ends_plan = True
                self.bridge(customer, agent)   # type: ignore[attr-defined]
            return
        if agent.live:
            self.bridge(agent, target)   # type: ignore[attr-defined]
            yield Wait(lambda: agent.ended or target.ended or customer.ended)
            if customer.ended:
                return
            if target.ended:
                if agent.ended:
                    self.end("normal")   # type: ignore[attr-defined]
                else:
                    agent.ends_plan = True
                    self.bridge(customer, agent)   # type: ignore[attr-defined]
                return
        target.ends_plan = True
        self.bridge(customer, target)   # type: ignore[attr-defined]
        log.info("attended transfer done", extra={"plan_id": self.plan.plan_id})
