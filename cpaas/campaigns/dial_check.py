"""The check at the moment of dialing: right before a campaign attempt's INVITE, and
not earlier, is the campaign still running, is the number off its DND list as the list
is now, is it inside the window and the calling hours, and under the account's cap of
dials per number per 24 h?

The call job runs it after claiming the attempt's request and before handing the plan
to the engine (``workers.jobs.place_call``), so a pause, a stop or a DND entry takes
effect for every INVITE that leaves after it is committed. Each question is one indexed
read (bench/dial_check.py times it against a 1,000,000-entry DND list).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from cpaas.campaigns import attempts, hours, reasons
from cpaas.campaigns.state import ATTEMPT, AttemptState, CampaignStatus, ContactState
from cpaas.models import Campaign, CampaignAttempt, DndContact
from cpaas.telephony import causes, events
from cpaas.validation import utcnow

log = logging.getLogger(__name__)

DAY = timedelta(hours=24)


@dataclass(frozen=True)
class Refusal:
    """Why an attempt must not be dialed now, and where its contact goes instead."""

    reason: str
    state: ContactState
    due: datetime


@lru_cache(maxsize=256)
def _hours(text: str) -> hours.Hours | None:
    return hours.parse_hours(text) if text else None


def verdict_for(campaign: Campaign, number: str, now: datetime) -> hours.Verdict:
    """The window and calling hours for ``number`` at ``now``."""
    zones = hours.contact_zones(number) if campaign.contact_local_time else ()
    return hours.check(now, campaign.start_at, campaign.end_at, campaign.time_zone,
                       _hours(campaign.calling_hours), zones)


def refusal(attempt: CampaignAttempt, campaign: Campaign, cap: int,
            now: datetime) -> Refusal | None:
    """Why ``attempt`` must not be dialed at ``now``; None when it may."""
    if campaign.status == CampaignStatus.COMPLETED:
        # Completed with an attempt still queued: its window ended (a campaign whose
        # contacts are all final has none), so the contact is final too.
        return Refusal(reasons.WINDOW_ENDED, ContactState.SKIPPED, now)
    if campaign.status != CampaignStatus.RUNNING:
        reason = reasons.PAUSED if campaign.status == CampaignStatus.PAUSED else reasons.STOPPED
        return Refusal(reason, ContactState.PENDING, now)
    if campaign.dnd_list_id and DndContact.select(DndContact.id).where(
            (DndContact.dnd_list_id == campaign.dnd_list_id)
            & (DndContact.number == attempt.number)).exists():
        return Refusal(reasons.DND, ContactState.DND, now)
    verdict = verdict_for(campaign, attempt.number, now)
    if not verdict.allowed:
        if verdict.next_at is None:   # no allowed instant is left in the window
            return Refusal(verdict.reason_code, ContactState.SKIPPED, now)
        return Refusal(verdict.reason_code, ContactState.PENDING, verdict.next_at)
    if cap and CampaignAttempt.select(CampaignAttempt.id).where(
            (CampaignAttempt.account_id == attempt.account_id)
            & (CampaignAttempt.number == attempt.number)
            & (CampaignAttempt.created_at >= now - DAY)
            & (CampaignAttempt.id != attempt.id)
            & (CampaignAttempt.status != AttemptState.QUEUED.value)
            & (CampaignAttempt.dial_status != "DND")
            & (CampaignAttempt.reason_code != attempts.NEVER_LEFT)).limit(cap).count() >= cap:
        return Refusal(reasons.NUMBER_CAP, ContactState.SKIPPED, now)
    return None


def admit(r, attempt_id: str, cap: int, now: datetime | None = None) -> bool:
    """Run the check for a claimed attempt; True when the caller may dial it now.

    A refusal is applied here: a DND number gets its CDR (``DND``) through the event
    stream like any ended call; any other refusal hands the attempt back undialed.
    """
    now = now or utcnow()
    attempt = CampaignAttempt.get_or_none(CampaignAttempt.id == attempt_id)
    if attempt is None:
        return False
    campaign = Campaign.get_by_id(attempt.campaign_id)
    refused = refusal(attempt, campaign, cap, now)
    if refused is None:
        return ATTEMPT.advance(attempt_id, AttemptState.PLACED)
    log.info("attempt not dialed: %s", refused.reason,
             extra={"request_id": attempt_id, "account_id": attempt.account_id,
                    "campaign_id": attempt.campaign_id})
    if refused.reason == reasons.DND:
        events.publish(r, events.PlanEnded(plan_id=attempt_id, account_id=attempt.account_id,
                                           cause=causes.DND))
    else:
        attempts.release(attempt_id, refused.state, refused.reason, refused.due)
    return False
