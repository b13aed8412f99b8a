"""The plain objects a plan runner works with: legs and waits.

(What a finished plan leaves is engine-neutral: :class:`cpaas.telephony.ending.EndedPlan`.)
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from cpaas.telephony.events import LegOutcome


class ActionError(Exception):
    """A live-leg action cannot be carried out (the reply carries the message)."""


@dataclass
class Wait:
    """What a task waits for: ``until()`` true, or ``deadline`` (monotonic) passed."""

    until: Callable[[], bool]
    deadline: float | None = None


#: A verb or a transfer in progress: yields waits, is sent whether the wait was met.
Task = Generator[Wait, bool, Any]


@dataclass
class Running:
    """A task and the wait it is parked on."""

    gen: Task
    wait: Wait


class Leg:
    """One call of a plan, as the runner sees it."""

    def __init__(self, runner: Any, role: str, number: str, caller_id: str) -> None:
        self.runner = runner
        self.role = role
        self.number = number
        self.caller_id = caller_id
        self.channel = f"PJSIP/{role}-{secrets.token_hex(4)}"
        self.key = f"leg:{self.channel}"          # its port's name in the audio links
        self.outcome = LegOutcome(role=role, number=number, channel=self.channel,
                                  started_at=time.time())
        self.call: Any = None                     # the pjsua Call while it exists
        self.ringing = False
        self.heard = False                        # the far end responded at all
        self.answered = False
        self.ended = False
        self.cancelled = False                    # we hung up before it answered
        self.ring_timed_out = False
        self.hangup_requested = False
        self.ends_plan = True                     # its hangup ends the plan (end_on_hangup)
        self.peer: Leg | None = None
        self.digits: list[str] = []               # DTMF not consumed by a Gather yet

    @property
    def live(self) -> bool:
        """Dialed and not disconnected yet."""
        return not self.ended
