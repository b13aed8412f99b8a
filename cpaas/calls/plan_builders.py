"""Compile call requests into engine-neutral call plans."""
from __future__ import annotations

import dataclasses

from cpaas.telephony import sealed
from cpaas.telephony.plans import Bridge, Dial, Hangup, Plan, Record, Say
from cpaas.telephony.tts import Prosody, speak_digits

#: recording_option → (left channel, right channel): agent left, customer right.
RECORDING_SIDES = {
    "both": ("agent", "customer"),
    "agent": ("agent", None),
    "customer": (None, "customer"),
}


def click2call(request_id: str, account_id: str, agent: str, customer: str, caller_id: str,
               recording_option: str, record_key: str | None, ring_timeout: int,
               kind: str = "c2c", transcript_key: str | None = None) -> Plan:
    """Dial the agent; when they answer dial the customer; bridge (and record).

    If the agent does not answer, the plan stops at the first Dial and the customer is
    never dialed. Three legs are reserved so a transfer can add its target.
    ``transcript_key``: also record both sides there, for the transcript only.
    """
    verbs: list = [
        Dial("agent", agent, caller_id, ring_timeout),
        Dial("customer", customer, caller_id, ring_timeout),
    ]
    if recording_option in RECORDING_SIDES and record_key:
        left, right = RECORDING_SIDES[recording_option]
        verbs.append(Record(record_key, left=left, right=right))
    if transcript_key:
        verbs.append(Record(transcript_key, left="agent", right="customer"))
    verbs.append(Bridge("agent", "customer"))
    return Plan(request_id, account_id, kind, verbs, max_legs=3)  # type: ignore[arg-type]


def otp(request_id: str, account_id: str, customer: str, caller_id: str, template_text: str,
        code: str, prosody: Prosody, repeat: int, ring_timeout: int, box: sealed.Box) -> Plan:
    """Dial the customer, speak the template with the code digit by digit ``repeat``
    times, hang up. The spoken text is secret: sealed with ``box`` for the plan (it
    crosses Redis), rendered per call, never cached."""
    text = box.seal(template_text.replace("{otp}", speak_digits(code)), request_id)
    say = Say("customer", text, times=repeat, secret=True, **dataclasses.asdict(prosody))
    return Plan(request_id, account_id, "otp",
                [Dial("customer", customer, caller_id, ring_timeout), say, Hangup()], max_legs=1)
