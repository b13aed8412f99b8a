"""The states of a campaign, of each contact's progress through it and of each dial
attempt, declared once with the moves allowed between them (:class:`cpaas.states.Transitions`).

A campaign's status is the spec's number (``campaign_status`` "0"…"3", and 4 for paused,
which the spec lacks), so it is an ``IntEnum``; the dialer's own books use ``str`` enums.
"""
from __future__ import annotations

import enum

from cpaas.models import Campaign, CampaignAttempt, CampaignContact
from cpaas.states import Transitions


class CampaignStatus(enum.IntEnum):
    """``campaign.status``."""

    SCHEDULED = 0
    RUNNING = 1
    STOPPED = 2
    COMPLETED = 3
    PAUSED = 4


CAMPAIGN: Transitions[CampaignStatus] = Transitions(Campaign.status, {
    CampaignStatus.SCHEDULED: frozenset({CampaignStatus.RUNNING, CampaignStatus.PAUSED,
                                         CampaignStatus.STOPPED, CampaignStatus.COMPLETED}),
    CampaignStatus.RUNNING: frozenset({CampaignStatus.PAUSED, CampaignStatus.STOPPED,
                                       CampaignStatus.COMPLETED}),
    # Back to scheduled when resumed before its window opened.
    CampaignStatus.PAUSED: frozenset({CampaignStatus.SCHEDULED, CampaignStatus.RUNNING,
                                      CampaignStatus.STOPPED, CampaignStatus.COMPLETED}),
    CampaignStatus.STOPPED: frozenset(),
    CampaignStatus.COMPLETED: frozenset(),
})
#: Campaigns the dialer looks at (a paused one still says why it is not dialing).
ACTIVE = [s.value for s in (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)]


class ContactState(str, enum.Enum):
    """``campaign_contact.state``: where one contact is in one campaign."""

    PENDING = "pending"          # not dialed yet (or its dial was handed back undialed)
    DIALING = "dialing"          # an attempt of it is queued or on the wire
    RETRY_WAIT = "retry_wait"    # its last attempt failed with a retried status
    ANSWERED = "answered"        # final
    FAILED = "failed"            # final: not answered, no retry left (or declined)
    DND = "dnd"                  # final: on the DND list when it was to be dialed
    SKIPPED = "skipped"          # final: never dialed (window ended, number cap)


CONTACT: Transitions[ContactState] = Transitions(CampaignContact.state, {
    ContactState.PENDING: frozenset({ContactState.DIALING, ContactState.SKIPPED}),
    ContactState.RETRY_WAIT: frozenset({ContactState.DIALING, ContactState.SKIPPED}),
    ContactState.DIALING: frozenset({ContactState.PENDING, ContactState.RETRY_WAIT,
                                     ContactState.ANSWERED, ContactState.FAILED,
                                     ContactState.DND, ContactState.SKIPPED}),
    ContactState.ANSWERED: frozenset(),
    ContactState.FAILED: frozenset(),
    ContactState.DND: frozenset(),
    ContactState.SKIPPED: frozenset(),
})
#: States whose contact may still be dialed.
DUE_STATES = [ContactState.PENDING.value, ContactState.RETRY_WAIT.value]
#: States of contacts the campaign is not done with.
OPEN_STATES = DUE_STATES + [ContactState.DIALING.value]


class AttemptState(str, enum.Enum):
    """``campaign_attempt.status``."""

    QUEUED = "queued"    # committed, its call job queued: only this row's holder dials
    PLACED = "placed"    # passed the check at the moment of dialing; handed to the engine
    DONE = "done"        # its call's CDR is written and the contact moved on


ATTEMPT: Transitions[AttemptState] = Transitions(CampaignAttempt.status, {
    AttemptState.QUEUED: frozenset({AttemptState.PLACED, AttemptState.DONE}),
    AttemptState.PLACED: frozenset({AttemptState.DONE}),
    AttemptState.DONE: frozenset(),
})
