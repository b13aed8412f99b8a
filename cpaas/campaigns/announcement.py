"""A campaign contact's call plan: dial, play (or speak) the announcement, and for an IVR
campaign gather digits and branch on them.

Announcement text is filled from the contact (``{contact_name}``, ``{field1}`` …). The
values are the contact's own text and are spoken as plain words (the TTS never reads
markup from them: :mod:`cpaas.telephony.espeak`); a placeholder the contact has no value
for is spoken as nothing and reported, so the campaign can say how many lacked it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from cpaas.models import Campaign
from cpaas.telephony.plans import Branch, Dial, Gather, Hangup, Play, Plan, Say

PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]{1,64})\}")
#: The folder of the media root that holds campaigns' recorded announcements at 8 kHz.
CAMPAIGN_AUDIO = "campaigns"


def destination_context(campaign_type: int) -> str:
    """The CDR's ``destination_context`` of a campaign's calls (as the spec's example)."""
    return f"local_call_campaign_type_{campaign_type}"


def fill(text: str, name: str, fields: dict[str, str]) -> tuple[str, list[str]]:
    """``text`` with its placeholders filled; and the placeholders that had no value."""
    missing: list[str] = []

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        found = name if key == "contact_name" else fields.get(key, "")
        if not found:
            missing.append(key)
        return found

    return PLACEHOLDER.sub(value, text), missing


@dataclass(frozen=True)
class Contact:
    """What a plan needs of one contact."""

    number: str
    name: str
    fields: dict[str, str]

    @classmethod
    def from_row(cls, number: str, name: str, fields_json: str) -> "Contact":
        """From the ``contact`` table's columns."""
        try:
            fields = json.loads(fields_json or "{}")
        except ValueError:
            fields = {}
        return cls(number, name or "", fields if isinstance(fields, dict) else {})


def plan(campaign: Campaign, contact: Contact, attempt_id: str, ring_timeout: int
         ) -> tuple[Plan, list[str]]:
    """The plan of one attempt, and the placeholders the contact had no value for."""
    missing: list[str] = []
    verbs: list = [Dial("contact", contact.number, campaign.caller_id, ring_timeout)]
    if campaign.dynamic_announcement == 1:
        text, missing = fill(campaign.announcement_text, contact.name, contact.fields)
        verbs.append(Say("contact", text, voice=campaign.voice, volume=campaign.volume,
                         rate=campaign.rate, pitch=campaign.pitch,
                         language_code=campaign.language_code,
                         engine_type=campaign.tts_engine_type, times=campaign.repeat_count))
    else:
        verbs.append(Play("contact", campaign.announcement_audio, campaign.repeat_count))
    max_legs = 1
    if campaign.campaign_type == 1:
        verbs.append(Gather("contact", campaign.ivr_max_digits, campaign.ivr_timeout))
        # Always a Branch, even with no digit map: it is what reports no_input/invalid.
        routes = json.loads(campaign.ivr_digit_map or "{}")
        verbs.append(Branch("contact", routes, campaign.caller_id, ring_timeout))
        max_legs = 2
    else:
        verbs.append(Hangup())
    return Plan(attempt_id, campaign.account_id, "campaign", verbs, max_legs=max_legs), missing
