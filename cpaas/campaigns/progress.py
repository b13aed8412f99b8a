"""What a campaign tells about its progress: counts of its contacts by state, the
placeholders contacts lacked, and each contact's attempts (``get_campaign_contacts``)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import peewee

from cpaas.campaigns import reasons
from cpaas.campaigns.state import ContactState
from cpaas.models import (Campaign, CampaignAttempt, CampaignContact, CampaignPlaceholder,
                          Contact)
from cpaas.validation import http_date

#: ``progress`` keys, in the order the API sends them; a contact state → its key.
KEYS = ("total", "pending", "dialing", "answered", "failed", "retry_waiting", "dnd", "skipped")
KEY_OF = {ContactState.PENDING.value: "pending", ContactState.DIALING.value: "dialing",
          ContactState.ANSWERED.value: "answered", ContactState.FAILED.value: "failed",
          ContactState.RETRY_WAIT.value: "retry_waiting", ContactState.DND.value: "dnd",
          ContactState.SKIPPED.value: "skipped"}
DIALER_DOWN = (reasons.DIALER_DOWN,
               "no worker process holds the dialer's lease: nothing dials until one runs")


@dataclass
class Books:
    """One campaign's counts (strings, as the spec's other numbers) and placeholders."""

    counts: dict[str, str] = field(default_factory=dict)
    placeholders: dict[str, str] = field(default_factory=dict)


def for_campaigns(campaigns: Sequence[Campaign]) -> dict[str, Books]:
    """The books of ``campaigns`` (three grouped reads, whatever their number)."""
    ids = [c.id for c in campaigns]
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KEYS, 0))
    placeholders: dict[str, dict[str, str]] = defaultdict(dict)
    if ids:
        for campaign_id, state, n in (CampaignContact.select(
                CampaignContact.campaign_id, CampaignContact.state, peewee.fn.COUNT(1))
                .where(CampaignContact.campaign_id.in_(ids))
                .group_by(CampaignContact.campaign_id, CampaignContact.state).tuples()):
            counts[campaign_id][KEY_OF[state]] += n
            counts[campaign_id]["total"] += n
        sizes = dict(Contact.select(Contact.list_id, peewee.fn.COUNT(1))
                     .where(Contact.list_id.in_({c.list_id for c in campaigns}))
                     .group_by(Contact.list_id).tuples())
        for c in campaigns:
            # Contacts of the list the dialer has not taken in yet are pending too.
            unseen = sizes.get(c.list_id, 0) - counts[c.id]["total"]
            if unseen > 0 and c.status in (0, 1, 4):
                counts[c.id]["pending"] += unseen
                counts[c.id]["total"] += unseen
        for campaign_id, name, n in (CampaignPlaceholder.select(
                CampaignPlaceholder.campaign_id, CampaignPlaceholder.field,
                CampaignPlaceholder.missing).where(CampaignPlaceholder.campaign_id.in_(ids)).tuples()):
            placeholders[campaign_id][name] = str(n)
    return {i: Books({k: str(v) for k, v in counts[i].items()}, placeholders[i]) for i in ids}


def contacts(campaign_id: str, record_count: int, offset: int = 0,
             after_id: int | None = None) -> list[dict[str, Any]]:
    """One page of the campaign's contacts (by contact id), each with its attempts."""
    query = (CampaignContact.select(CampaignContact, Contact.name)
             .join(Contact, peewee.JOIN.LEFT_OUTER, on=(Contact.id == CampaignContact.contact_id))
             .where(CampaignContact.campaign_id == campaign_id)
             .order_by(CampaignContact.contact_id).objects())
    if after_id is not None:
        query = query.where(CampaignContact.contact_id > after_id)
    else:
        query = query.offset(offset)
    rows = list(query.limit(record_count))
    tries: dict[int, list[dict[str, str]]] = defaultdict(list)
    if rows:
        for a in (CampaignAttempt.select().where(
                (CampaignAttempt.campaign_id == campaign_id)
                & CampaignAttempt.contact_id.in_([r.contact_id for r in rows]))
                .order_by(CampaignAttempt.contact_id, CampaignAttempt.attempt)):
            tries[a.contact_id].append({
                "attempt": str(a.attempt), "request_id": a.id, "status": a.status,
                "dial_status": a.dial_status, "reason_code": a.reason_code,
                "created_at": http_date(a.created_at)})
    return [{"contact_id": str(r.contact_id), "contact_number": r.number,
             "contact_name": r.name or "",
             "state": r.state, "attempts": str(r.attempts), "reason_code": r.reason_code,
             "next_at": http_date(r.next_at) if r.state in ("pending", "retry_wait") else "",
             "tries": tries[r.contact_id]} for r in rows]
