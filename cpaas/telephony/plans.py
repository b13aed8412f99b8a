"""Call plans: the small verb lists every call-placing API call compiles to.

A plan is engine-neutral (like TwiML or a Vonage NCCO). Services build plans; engines
execute them. Plans travel through Redis as JSON, so every verb is a plain dataclass
whose fields are JSON scalars. Free text never reaches an engine: the call job turns
``Say`` into a ``Play`` of an audio file, and only that file's path travels (a secret
prompt is rendered while the call rings; its ``Play`` waits for the file). Audio paths
are names inside the media root (``Settings.media_dir``), never absolute: each engine
resolves them under its own root (:func:`media_path`), so the data folder may have any
path (spaces, any length) while what reaches an engine stays a safe token.

Execution semantics shared by every engine:

* verbs run in order; ``Dial`` blocks until its leg answers or fails;
* when a ``Dial`` fails, the plan stops: every other leg is hung up and the plan ends;
* with ``end_on_hangup`` (the default) a hangup of any answered leg ends the plan,
  hanging up the others (click2call: "either side hanging up ends both");
* after the last verb the plan stays up while any leg is live (bridged legs talk
  until someone hangs up) unless the last verb is ``Hangup``;
* a ``Gather`` remembers the digits it collected on its leg; a later ``Branch`` on that
  leg acts on them (see :class:`Branch`) and its result travels in ``plan.ended``.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

#: A leg's role inside its plan. Roles double as names the other verbs refer to.
Role = Literal["agent", "customer", "contact", "transfer_target"]
#: The kinds of call the platform places (also the live-call statistics buckets).
Kind = Literal["c2c", "otp", "campaign", "callback"]
ROLES = frozenset({"agent", "customer", "contact", "transfer_target"})
#: What a :class:`Branch` did, reported as ``PlanEnded.ivr_result`` ("" when none ran).
IvrResult = Literal["transferred", "no_input", "invalid", "transfer_failed"]
IVR_RESULTS: frozenset[str] = frozenset({"transferred", "no_input", "invalid", "transfer_failed"})

NUMBER_RE = re.compile(r"^[0-9]{8,15}$")
EXTENSION_RE = re.compile(r"^[0-9]{2,6}$")
#: Every string a plan carries into an engine command must match this (GUIDE §6).
SAFE_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.@+:/-]{1,200}$")
#: The digits a Branch route is chosen by (what a Gather can collect; the API's
#: ``ivr_max_digits`` goes up to 20).
ROUTE_DIGITS_RE = re.compile(r"^[0-9*#]{1,20}$")
#: A Branch route: an agent extension or a PSTN number, as Dial's targets.
ROUTE_RE = re.compile(r"^(agent:[0-9]{2,6}|number:[0-9]{8,15})$")
#: Longest ring a plan may ask for (seconds).
MAX_RING_TIMEOUT = 300


def check_media_name(name: str) -> str:
    """``name`` if it is a safe path inside the media root; ``ValueError`` otherwise.

    Relative, a safe token, no ``..``: it cannot name anything outside the root.
    """
    if not isinstance(name, str) or not SAFE_TOKEN_RE.fullmatch(name) or name.startswith("/") \
            or ".." in name:
        raise ValueError(f"unsafe media path {name!r}: a relative name inside the media root")
    return name


def media_path(root: Path, name: str) -> Path:
    """Where the media ``name`` (from a plan) is under ``root``."""
    return root / check_media_name(name)


@dataclass(frozen=True)
class Dial:
    """Place one leg and wait until it answers or fails.

    ``target`` is ``number`` (a PSTN number through the trunk) or ``agent`` (an
    extension through the agent URI template).
    """

    leg: Role
    number: str
    caller_id: str
    ring_timeout: int = 30
    target: Literal["number", "agent"] = "number"


@dataclass(frozen=True)
class Bridge:
    """Connect two answered legs' audio both ways."""

    leg_a: Role
    leg_b: Role


@dataclass(frozen=True)
class Play:
    """Play a rendered audio file (8 kHz mono 16-bit WAV, a local path) ``times`` times."""

    leg: Role
    audio: str   # relative to the media root (see :func:`media_path`)
    times: int = 1
    #: seconds to wait for ``audio`` to appear: a per-call prompt (an OTP) is rendered
    #: while the call rings, so it may not exist yet when the plan starts.
    wait: float = 0.0


@dataclass(frozen=True)
class Say:
    """Speak text with TTS. Never reaches an engine: the call job replaces it with a
    :class:`Play` of the rendered audio (see ``workers.jobs``). The voice fields are those of
    ``cpaas.telephony.tts.Prosody`` (same names), kept flat so plans stay plain JSON."""

    leg: Role
    text: str
    voice: str = "Joanna"
    volume: str = "medium"
    rate: str = "medium"
    pitch: str = "medium"
    language_code: str = "en-US"
    engine_type: str = "standard"
    times: int = 1
    #: secret text (an OTP): ``text`` is then sealed for the plan
    #: (:mod:`cpaas.telephony.sealed`), opened only by the call job, rendered per call,
    #: never cached, and its audio deleted after the call
    secret: bool = False


@dataclass(frozen=True)
class Gather:
    """Collect up to ``max_digits`` DTMF digits, giving up after ``timeout`` seconds."""

    leg: Role
    max_digits: int = 1
    timeout: int = 5


@dataclass(frozen=True)
class Record:
    """Record the call into object storage under ``key``.

    ``left``/``right`` name the legs whose received audio goes to each channel;
    ``None`` for one of them gives a mono file of the other side.
    """

    key: str
    left: Role | None = None
    right: Role | None = None


@dataclass(frozen=True)
class Hangup:
    """Hang up one leg, or every leg of the plan when ``leg`` is None."""

    leg: Role | None = None


@dataclass(frozen=True)
class Branch:
    """Act on the digits the preceding Gather on ``leg`` collected: transfer ``leg`` to the
    route its digits name (dial it, then bridge), or end the plan.

    No digits: result ``no_input``; digits no route names: ``invalid``; either way the
    plan hangs up. Otherwise the route's target is dialed as ``transfer_target`` (an
    ``agent`` through the agent URI template, a ``number`` through the trunk) with
    ``caller_id`` and ``ring_timeout``; when it answers it is bridged with ``leg``
    (``transferred``) and the plan lasts until either hangs up; when it does not, or
    ``leg`` hangs up while it rings, ``transfer_failed`` and the plan hangs up. The plan
    needs ``max_legs`` of at least 2.
    """

    leg: Role
    routes: dict[str, str]     # digits ("0", "12", "*") -> "agent:<2-6 digits>" | "number:<8-15 digits>"
    caller_id: str             # for the transfer leg (validated digits)
    ring_timeout: int = 30

    def miss(self, digits: str) -> IvrResult | None:
        """Why the plan ends without a transfer on ``digits``; None when a route takes them."""
        if not digits:
            return "no_input"
        return None if digits in self.routes else "invalid"

    def target(self, digits: str) -> tuple[Literal["agent", "number"], str]:
        """The kind (as :attr:`Dial.target`) and number of the route ``digits`` name."""
        kind, _, number = self.routes[digits].partition(":")
        return ("agent" if kind == "agent" else "number"), number

    def check(self) -> None:
        """``ValueError`` unless every field is a strict token an engine may use."""
        if self.leg not in ROLES:
            raise ValueError(f"unknown leg {self.leg!r}")
        if not isinstance(self.caller_id, str) or not NUMBER_RE.fullmatch(self.caller_id):
            raise ValueError("branch caller ids must be validated digits")
        if type(self.ring_timeout) is not int or not 1 <= self.ring_timeout <= MAX_RING_TIMEOUT:
            raise ValueError(f"branch ring_timeout must be 1..{MAX_RING_TIMEOUT} seconds")
        if not isinstance(self.routes, dict):
            raise ValueError("branch routes must map digits to routes")
        for digits, route in self.routes.items():
            if not isinstance(digits, str) or not ROUTE_DIGITS_RE.fullmatch(digits):
                raise ValueError(f"branch digits {digits!r} must be 1-20 of 0-9 * #")
            if not isinstance(route, str) or not ROUTE_RE.fullmatch(route):
                raise ValueError(f"branch route {route!r} must be agent:<ext> or number:<digits>")


Verb = Union[Dial, Bridge, Play, Say, Gather, Record, Hangup, Branch]
VERBS: dict[str, type] = {cls.__name__: cls
                          for cls in (Dial, Bridge, Play, Say, Gather, Record, Hangup, Branch)}


@dataclass
class Plan:
    """One call request compiled for an engine."""

    plan_id: str  # the request_id (or a campaign attempt id); also the CDR key
    account_id: str
    kind: Kind
    verbs: list[Verb]
    end_on_hangup: bool = True
    #: legs the plan may hold at once, including a later transfer target; the
    #: embedded engine reserves this many call slots in one worker process.
    max_legs: int = 1
    #: audio files that belong to this call only (an OTP) and are deleted when it ends;
    #: names inside the media root, like :attr:`Play.audio`.
    ephemeral_files: list[str] = field(default_factory=list)

    def validate(self) -> None:
        """Refuse a plan carrying anything an engine must not put on the wire."""
        for token in (self.plan_id, self.account_id):
            if not SAFE_TOKEN_RE.fullmatch(token):
                raise ValueError(f"unsafe plan token {token!r}")
        for verb in self.verbs:
            if isinstance(verb, Say):
                raise ValueError("Say must be rendered to audio before the plan reaches an engine")
            if isinstance(verb, Dial):
                pattern = EXTENSION_RE if verb.target == "agent" else NUMBER_RE
                if not pattern.fullmatch(verb.number) or not NUMBER_RE.fullmatch(verb.caller_id):
                    raise ValueError("dial targets and caller ids must be validated digits")
            elif isinstance(verb, Play):
                check_media_name(verb.audio)
            elif isinstance(verb, Record):
                if not SAFE_TOKEN_RE.fullmatch(verb.key) or ".." in verb.key:
                    raise ValueError(f"unsafe path {verb.key!r}")
            elif isinstance(verb, Branch):
                verb.check()
                if self.max_legs < 2:
                    raise ValueError("a plan with a Branch needs max_legs >= 2 for its transfer")
        for name in self.ephemeral_files:
            check_media_name(name)

    def to_json(self) -> str:
        """Serialise for Redis."""
        return json.dumps({
            **{k: v for k, v in dataclasses.asdict(self).items() if k != "verbs"},
            "verbs": [{"verb": type(v).__name__, **dataclasses.asdict(v)} for v in self.verbs],
        })

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Plan":
        """Inverse of :meth:`to_json`."""
        data: dict[str, Any] = json.loads(raw)
        verbs = []
        for item in data.pop("verbs"):
            verbs.append(VERBS[item.pop("verb")](**item))
        return cls(verbs=verbs, **data)

    def legs(self) -> list[str]:
        """Roles dialed by this plan, in order."""
        return [v.leg for v in self.verbs if isinstance(v, Dial)]
