"""One leg of a plan on FreeSWITCH, and how its hangup event becomes its outcome.

A leg is named by the ``origination_uuid`` we give it; the channel id ``live_calls``
shows (and ``modify_call`` takes) is that uuid behind a prefix, so an action finds its
leg without a lookup table. Outcomes come from the contract's one table
(:mod:`cpaas.telephony.outcomes`) fed with what ``CHANNEL_HANGUP_COMPLETE`` says.
"""
from __future__ import annotations

import re
import time
import uuid as uuidlib

from cpaas.telephony.events import LegOutcome
from cpaas.telephony.outcomes import LegEnd, dial_status
from freeswitch.commands import UUID_RE
from freeswitch.esl import Event

CHANNEL_PREFIX = "FS/"
_SIP_CODE = re.compile(r"^sip:([0-9]{3})$")
#: Causes FreeSWITCH gives a leg that rang past ``originate_timeout``.
RING_TIMEOUT_CAUSES = frozenset({"NO_ANSWER", "ALLOTTED_TIMEOUT", "PROGRESS_TIMEOUT"})


def channel_of(leg_uuid: str) -> str:
    """The channel id of a leg."""
    return CHANNEL_PREFIX + leg_uuid


def uuid_of(channel: str) -> str | None:
    """The leg uuid inside a channel id; None when it is not one of ours."""
    if not channel.startswith(CHANNEL_PREFIX):
        return None
    leg_uuid = channel[len(CHANNEL_PREFIX):]
    return leg_uuid if UUID_RE.fullmatch(leg_uuid) else None


def sip_code_of(event: Event) -> int | None:
    """The final SIP response a hangup event reports, if any."""
    match = _SIP_CODE.fullmatch(event.get("variable_proto_specific_hangup_cause") or "")
    if match:
        return int(match.group(1))
    status = event.get("variable_sip_term_status") or ""
    return int(status) if status.isdigit() and len(status) == 3 else None


class FsLeg:
    """One leg, as the plan runner sees it; the listener's event handlers update it."""

    def __init__(self, role: str, number: str, caller_id: str) -> None:
        self.role = role
        self.number = number
        self.caller_id = caller_id
        self.uuid = str(uuidlib.uuid4())
        self.job = str(uuidlib.uuid4())            # Job-UUID of its bgapi originate
        self.channel = channel_of(self.uuid)
        self.key = f"leg:{self.channel}"           # its name in the runner's (empty) audio links
        self.outcome = LegOutcome(role=role, number=number, channel=self.channel,
                                  started_at=time.time())
        self.ringing = False
        self.answered = False
        self.ended = False
        self.cancelled = False                     # we hung up before it answered
        self.ring_timed_out = False
        self.hangup_requested = False
        self.job_error: str | None = None          # the originate job's -ERR cause
        self.job_error_at = 0.0
        self.ends_plan = True
        self.peer: FsLeg | None = None
        self.digits: list[str] = []                # DTMF not consumed by a Gather yet
        self.playbacks = 0                         # PLAYBACK_STOP events seen
        self.playbacks_started = 0                 # PLAYBACK_START events seen
        self.bridging_until = 0.0                  # a uuid_bridge of ours not formed yet
        self.kill_deferred = False                 # a hangup held until that bridge forms

    @property
    def live(self) -> bool:
        """Dialed and not hung up yet."""
        return not self.ended

    def end(self, cause: str | None, sip_code: int | None, heard: bool = True) -> None:
        """Close the leg with what its hangup says, through the one outcome table."""
        self.ended = True
        outcome = self.outcome
        outcome.ended_at = time.time()
        outcome.hangup_cause = cause
        if not self.answered:
            outcome.sip_code = sip_code
        ring_timeout = self.ring_timed_out or (not self.answered and cause in RING_TIMEOUT_CAUSES)
        outcome.dial_status = dial_status(LegEnd(
            answered=self.answered, cancelled=self.cancelled and not ring_timeout,
            ring_timeout=ring_timeout, heard=heard, sip_code=None if self.answered else sip_code,
            cause=cause))

    def end_from_event(self, event: Event) -> None:
        """Close the leg from its ``CHANNEL_HANGUP_COMPLETE``.

        A leg that failed with no SIP response at all (nothing listening: FreeSWITCH
        says NORMAL_TEMPORARY_FAILURE, as for a 503) was never heard: CHANUNAVAIL, as on
        the embedded engine.
        """
        code = sip_code_of(event)
        cause = event.get("Hangup-Cause") or None
        heard = self.answered or self.ringing or code is not None or cause != "NORMAL_TEMPORARY_FAILURE"
        self.end(cause, code, heard=heard)
