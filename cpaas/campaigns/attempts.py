"""Campaign attempts, exactly once: start one, settle it, or hand it back undialed.

Before a contact is dialed, its attempt row (unique per campaign, contact and attempt
number) and its call request are committed together with the contact's move to
``dialing``; only the job of that request may dial it (:mod:`cpaas.calls.claim`). An
attempt ends one of two ways: its call's one CDR is written and :func:`settle` moves the
contact on (answered, retried, failed, DND), or the check at the moment of dialing
refused it and :func:`release` removes it as if it had never been (nothing left the
platform), putting the contact back or making it final.
"""
from __future__ import annotations

import logging
import secrets
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import peewee
from rq import Queue

from cpaas import ids
from cpaas.calls import service as calls
from cpaas.calls.state import CallState
from cpaas.campaigns import announcement, reasons
from cpaas.campaigns.state import ATTEMPT, CONTACT, AttemptState, ContactState
from cpaas.db import database
from cpaas.models import (Campaign, CampaignAttempt, CampaignContact, CampaignPlaceholder,
                          CallRequest, Contact)
from cpaas.telephony import causes
from cpaas.telephony.plans import Plan
from cpaas.validation import utcnow

log = logging.getLogger(__name__)

#: The attempt's ``reason_code`` when its call surely never left (it is dialed again,
#: and does not count as one of the contact's tries).
NEVER_LEFT = "never_left"


def _contact_key(campaign_id: str, contact_id: int) -> Any:
    return (CampaignContact.campaign_id == campaign_id) & (CampaignContact.contact_id == contact_id)


def start(campaign: Campaign, row: CampaignContact, now: datetime,
          ring_timeout: int) -> Plan | None:
    """Commit the next attempt of ``row`` (contact → dialing, attempt, call request);
    the attempt's plan (its ``plan_id`` is the request id, built from the rows in hand:
    nothing is read again to queue it), or None when another process moved the contact
    first."""
    contact = Contact.get_or_none(Contact.id == row.contact_id)
    number = attempt_no = None

    def insert(attempt_id: str) -> None:
        nonlocal number, attempt_no
        attempt_no = row.attempts + 1
        if not CONTACT.move(_contact_key(campaign.id, row.contact_id), ContactState.DIALING,
                            CampaignContact.attempts == row.attempts,
                            attempts=attempt_no, updated_at=now, reason_code=""):
            raise _Moved
        number = row.number
        CampaignAttempt.create(id=attempt_id, account_id=campaign.account_id,
                               campaign_id=campaign.id, contact_id=row.contact_id,
                               attempt=attempt_no, number=number,
                               status=AttemptState.QUEUED.value, dial_status="",
                               reason_code="", created_at=now)
        calls.record_request(campaign.account_id, attempt_id, "campaign", agent_number="",
                             customer_number=number, caller_id=campaign.caller_id,
                             recording_option="off", transcript="off",
                             destination_context=announcement.destination_context(
                                 campaign.campaign_type),
                             call_direction="outbound-campaign", campaign_id=campaign.id,
                             list_id=campaign.list_id)

    if contact is None:
        CONTACT.move(_contact_key(campaign.id, row.contact_id), ContactState.SKIPPED,
                     reason_code=reasons.REMOVED, updated_at=now)
        return None
    try:
        with database.atomic():
            attempt_id = ids.insert_new(CallRequest, ids.request_id, insert)
    except _Moved:
        return None
    plan, _ = announcement.plan(
        campaign, announcement.Contact.from_row(row.number, contact.name, contact.fields),
        attempt_id, ring_timeout)
    return plan


def start_many(campaign: Campaign, rows: list[CampaignContact], now: datetime,
               ring_timeout: int) -> dict[int, Plan]:
    """:func:`start` for a turn's contacts of one campaign, in one transaction of a few
    statements rather than several per contact: the plans of those that moved, by
    contact id.

    The contacts move with one UPDATE that marks them with a token of this batch in
    ``reason_code`` (conditioned, as one at a time, on each one's attempt count and a
    state that may go to ``dialing``), so exactly those it moved are read back, even if
    another process moved some first; their attempts and call requests are inserted
    together. Should two random ids collide, the batch rolls back and each contact is
    started on its own instead.
    """
    if not rows:
        return {}
    found = {c.id: c for c in Contact.select(Contact.id, Contact.name, Contact.fields)
             .where(Contact.id.in_([row.contact_id for row in rows]))}
    for row in rows:
        if row.contact_id not in found:
            CONTACT.move(_contact_key(campaign.id, row.contact_id), ContactState.SKIPPED,
                         reason_code=reasons.REMOVED, updated_at=now)
    rows = [row for row in rows if row.contact_id in found]
    if not rows:
        return {}
    mark = "batch:" + secrets.token_hex(8)
    keys = [row.contact_id for row in rows]
    try:
        with database.atomic():
            # The contact ids alone let the primary key find the rows; the pairs then
            # hold each one to the attempt count the turn saw.
            CONTACT.move((CampaignContact.campaign_id == campaign.id)
                         & CampaignContact.contact_id.in_(keys), ContactState.DIALING,
                         peewee.Tuple(CampaignContact.contact_id, CampaignContact.attempts).in_(
                             [(row.contact_id, row.attempts) for row in rows]),
                         attempts=CampaignContact.attempts + 1, updated_at=now,
                         reason_code=mark)
            # By key (the batch's contacts), never by the mark alone: that would read
            # every contact of the campaign.
            batch = ((CampaignContact.campaign_id == campaign.id)
                     & CampaignContact.contact_id.in_(keys) & (CampaignContact.reason_code == mark))
            moved_ids = {cid for (cid,) in CampaignContact.select(CampaignContact.contact_id)
                         .where(batch).tuples()}
            if not moved_ids:
                return {}
            CampaignContact.update(reason_code="").where(batch).execute()
            moved = [(row, ids.request_id()) for row in rows if row.contact_id in moved_ids]
            CampaignAttempt.insert_many([dict(
                id=attempt_id, account_id=campaign.account_id, campaign_id=campaign.id,
                contact_id=row.contact_id, attempt=row.attempts + 1, number=row.number,
                status=AttemptState.QUEUED.value, dial_status="", reason_code="",
                created_at=now) for row, attempt_id in moved]).execute()
            context = announcement.destination_context(campaign.campaign_type)
            CallRequest.insert_many([dict(
                id=attempt_id, account_id=campaign.account_id, kind="campaign",
                agent_number="", customer_number=row.number, caller_id=campaign.caller_id,
                recording_option="off", transcript="off", destination_context=context,
                call_direction="outbound-campaign", campaign_id=campaign.id,
                list_id=campaign.list_id, status=CallState.QUEUED.value, created_at=now)
                for row, attempt_id in moved]).execute()
    except peewee.IntegrityError:
        log.warning("batch start rolled back; starting its contacts one by one",
                    extra={"campaign_id": campaign.id})
        one_by_one = {row.contact_id: start(campaign, row, now, ring_timeout) for row in rows}
        return {cid: plan for cid, plan in one_by_one.items() if plan is not None}
    plans = {}
    for row, attempt_id in moved:
        contact = found[row.contact_id]
        plans[row.contact_id], _ = announcement.plan(
            campaign, announcement.Contact.from_row(row.number, contact.name, contact.fields),
            attempt_id, ring_timeout)
    return plans


class _Moved(Exception):
    """The contact was no longer where the tick saw it (another process moved it)."""


def count_missing(campaign: Campaign, contacts: list[tuple[int, str, str, str]]) -> None:
    """Count the placeholders each of ``contacts`` (id, number, name, fields JSON), just
    taken into the campaign, has no value for: once per contact and field."""
    if campaign.dynamic_announcement != 1:
        return
    missing: Counter[str] = Counter()
    for _, number, name, fields in contacts:
        _, lacking = announcement.fill(campaign.announcement_text, name,
                                       announcement.Contact.from_row(number, name, fields).fields)
        missing.update(set(lacking))
    for field, n in sorted(missing.items()):
        (CampaignPlaceholder.insert(campaign_id=campaign.id, field=field, missing=n)
         .on_conflict(conflict_target=[CampaignPlaceholder.campaign_id, CampaignPlaceholder.field],
                      update={CampaignPlaceholder.missing: CampaignPlaceholder.missing + n})
         .execute())


def build_plan(attempt_id: str, ring_timeout: int) -> Plan | None:
    """The plan of a committed attempt, from the database (a re-queued attempt gets the
    same plan as the first time); None when the attempt or its contact is gone."""
    attempt = CampaignAttempt.get_or_none(CampaignAttempt.id == attempt_id)
    if attempt is None:
        return None
    campaign = Campaign.get_by_id(attempt.campaign_id)
    row = Contact.get_or_none(Contact.id == attempt.contact_id)
    if row is None:
        return None
    contact = announcement.Contact.from_row(attempt.number, row.name, row.fields)
    plan, _ = announcement.plan(campaign, contact, attempt_id, ring_timeout)
    return plan


def queue(q: Queue, attempt_id: str, ring_timeout: int) -> bool:
    """Queue the call job of a committed attempt; False when there is nothing to dial."""
    plan = build_plan(attempt_id, ring_timeout)
    if plan is None:
        return False
    calls.queue_plan(q, plan)
    return True


def next_state(campaign: Campaign, dial_status: str, hangup_cause: str, tries: int,
               now: datetime) -> tuple[ContactState, datetime, str]:
    """Where a contact goes after an attempt that ended with ``dial_status`` (the
    contact's ``tries``-th that left the platform): state, when it is next due, reason."""
    if dial_status == "DND":
        return ContactState.DND, now, reasons.DND
    if dial_status == "ANSWER":
        return ContactState.ANSWERED, now, ""
    if causes.is_declined(hangup_cause):
        return ContactState.FAILED, now, reasons.DECLINED
    retried = set(filter(None, campaign.retry_on_statuses.split(",")))
    if dial_status in retried and tries <= campaign.max_retries:
        due = now + timedelta(seconds=campaign.retry_time)
        if due >= campaign.end_at:
            return ContactState.FAILED, now, reasons.WINDOW_ENDED
        return ContactState.RETRY_WAIT, due, ""
    return ContactState.FAILED, now, ""


def settle(attempt_id: str, dial_status: str, hangup_cause: str,
           now: datetime | None = None) -> bool:
    """The attempt's call has its CDR: close the attempt and move its contact on, once
    (whoever settles first: the notifier, or the reconciler after a lost notice)."""
    now = now or utcnow()
    attempt = CampaignAttempt.get_or_none(CampaignAttempt.id == attempt_id)
    if attempt is None or attempt.status == AttemptState.DONE.value:
        return False
    never_left = causes.never_left(hangup_cause) and dial_status != "DND"
    with database.atomic():
        if not ATTEMPT.advance(attempt_id, AttemptState.DONE, dial_status=dial_status,
                               settled_at=now, reason_code=NEVER_LEFT if never_left else ""):
            return False
        campaign = Campaign.get_by_id(attempt.campaign_id)
        if never_left:
            state, due, reason = ContactState.PENDING, now, ""
        else:
            tries = (CampaignAttempt.select().where(
                (CampaignAttempt.campaign_id == attempt.campaign_id)
                & (CampaignAttempt.contact_id == attempt.contact_id)
                & (CampaignAttempt.status == AttemptState.DONE.value)
                & (CampaignAttempt.reason_code != NEVER_LEFT)).count())
            state, due, reason = next_state(campaign, dial_status, hangup_cause, tries, now)
        CONTACT.move(_contact_key(attempt.campaign_id, attempt.contact_id), state,
                     CampaignContact.attempts == attempt.attempt,
                     next_at=due, reason_code=reason, updated_at=now)
    log.info("attempt settled", extra={"request_id": attempt_id, "account_id": attempt.account_id,
                                       "campaign_id": attempt.campaign_id,
                                       "dial_status": dial_status, "contact_state": state.value})
    return True


def on_call_settled(request: CallRequest, cdr: Any) -> None:
    """Notifier hook: a campaign attempt's CDR is committed; move its contact on."""
    if request.kind != "campaign":
        return
    with database.connection_context():
        settle(request.id, cdr.dial_status, cdr.hangup_cause)


def release(attempt_id: str, state: ContactState, reason: str, due: datetime) -> bool:
    """Remove an attempt the check refused before anything was dialed (its request is
    ``dialing``, claimed by the caller): the contact goes to ``state`` (``pending`` to be
    dialed later at ``due``, or final), and no CDR is written for it."""
    attempt = CampaignAttempt.get_or_none(CampaignAttempt.id == attempt_id)
    if attempt is None:
        return False
    with database.atomic():
        gone = CallRequest.delete().where((CallRequest.id == attempt_id)
                                          & (CallRequest.status == CallState.DIALING.value)).execute()
        if not gone:
            return False
        CampaignAttempt.delete().where(CampaignAttempt.id == attempt_id).execute()
        CONTACT.move(_contact_key(attempt.campaign_id, attempt.contact_id), state,
                     CampaignContact.attempts == attempt.attempt,
                     attempts=attempt.attempt - 1, next_at=due, reason_code=reason,
                     updated_at=utcnow())
    log.info("attempt handed back undialed", extra={
        "request_id": attempt_id, "account_id": attempt.account_id,
        "campaign_id": attempt.campaign_id, "reason": reason, "contact_state": state.value})
    return True
