"""The campaign dialer: the scanner's task that dials running campaigns at their pace.

Each turn (every ``CPAAS_SCAN_INTERVAL``, in the one process holding the scanner's
lease) it moves campaigns through their window (scheduled → running → completed), adds
contacts that joined the list, and starts as many attempts as the campaign's token
bucket, the account's cap on concurrent calls and the trunk's caps allow, sharing the
trunk equally between the accounts that have work. What it cannot dial it explains:
each campaign's ``state_reason_code`` and ``state_reason`` say why it is not dialing.

It only starts attempts (:mod:`cpaas.campaigns.attempts`): whether one is dialed is
decided by the check at the moment of dialing, in the call job
(:mod:`cpaas.campaigns.dial_check`). Every few seconds it also reconciles: an attempt
whose call job was lost (Redis flushed, a worker killed) is queued again — its claim
makes a second job harmless — and an attempt whose CDR exists but whose settle notice
was lost is settled from the CDR.
"""
from __future__ import annotations

import bisect
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import peewee
import redis
from rq import Queue

from cpaas import config
from cpaas.calls.state import OPEN, CallState
from cpaas.campaigns import attempts, dial_check, hours, pacing, reasons
from cpaas.campaigns.state import (ACTIVE, CAMPAIGN, DUE_STATES, OPEN_STATES, AttemptState,
                                   CampaignStatus, ContactState)
from cpaas.db import database
from cpaas.models import Campaign, CampaignAttempt, CampaignContact, CallRequest, Cdr, Contact
from cpaas.calls import service as calls
from cpaas.platform import CAMPAIGN_QUEUE
from cpaas.telephony.engine_client import EngineClient, EngineError, engine_client
from cpaas.telephony.plans import Plan
from cpaas.validation import utcnow

log = logging.getLogger(__name__)

#: Attempts one turn starts at most (the scanner runs again at once when it is full).
BATCH = 200
#: Seconds between looks for contacts added to a running campaign's list.
SYNC_EVERY = 2.0
#: Contacts taken into a campaign per statement.
SYNC_BATCH = 500
#: Seconds between reconciliations, and how old a queued attempt must be to be re-queued.
RECONCILE_EVERY = 5.0
REQUEUE_AFTER = timedelta(seconds=10)
#: The engine is "out of capacity" once this many seconds of the campaigns' pace wait
#: in it for a free call slot: dialing faster would only lengthen that queue.
ENGINE_BACKLOG_SECONDS = 2.0


@dataclass
class Load:
    """Calls open right now (queued, dialing or live), per account and on the trunk."""

    accounts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    trunk: int = 0

    @classmethod
    def now(cls) -> "Load":
        """Count them (one grouped read over the request status index)."""
        load = cls()
        for account_id, n in (CallRequest.select(CallRequest.account_id, peewee.fn.COUNT(1))
                              .where(CallRequest.status.in_([s.value for s in OPEN]))
                              .group_by(CallRequest.account_id).tuples()):
            load.accounts[account_id] = n
            load.trunk += n
        return load

    def add(self, account_id: str) -> None:
        """One more call of ``account_id``."""
        self.accounts[account_id] += 1
        self.trunk += 1


class DialerTask:
    """The scanner's campaign task: each call is one turn over the active campaigns."""

    def __init__(self, settings: config.Settings, r: redis.Redis,
                 clock: Callable[[], datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.r = r
        self.queue = Queue(CAMPAIGN_QUEUE, connection=r)
        self.clock = clock
        self.monotonic = monotonic
        self.buckets: dict[str, pacing.Bucket] = {}
        self.trunk_bucket = (pacing.Bucket(settings.trunk_cps, settings.trunk_cps * settings.scan_interval * 2,
                                           monotonic) if settings.trunk_cps > 0 else None)
        self.synced: dict[str, float] = {}
        self.reconciled = float("-inf")
        #: The account that got the last dial: the next turn starts after it.
        self.last_served = ""
        self._engine: EngineClient | None = None
        self.behind = 0

    def __call__(self) -> bool:
        """One turn; True when a batch limit was reached and more is due at once."""
        now = self.clock()
        campaigns = list(Campaign.select().where(Campaign.status.in_(ACTIVE))
                         .order_by(Campaign.created_at))
        wanted: dict[str, list[tuple[Campaign, list[CampaignContact]]]] = defaultdict(list)
        load = Load.now()
        self.behind = self._engine_behind(campaigns)
        for campaign in campaigns:
            due = self._prepare(campaign, now, load)
            if due:
                wanted[campaign.account_id].append((campaign, due))
        more = self._dial(wanted, now, load)
        if self.monotonic() - self.reconciled >= RECONCILE_EVERY:
            self.reconciled = self.monotonic()
            self.reconcile(now)
        return more

    def _engine_behind(self, campaigns: list[Campaign]) -> int:
        """How many plans wait in the engine for a call slot, when that is more than
        about :data:`ENGINE_BACKLOG_SECONDS` of the running campaigns' pace (else 0)."""
        if self._engine is None:
            try:
                self._engine = engine_client(self.settings, self.r)
            except EngineError:
                return 0
        pace = sum(c.calls_per_minute for c in campaigns
                   if c.status == CampaignStatus.RUNNING) / 60.0
        waiting = self._engine.waiting()
        return waiting if waiting > max(10.0, pace * ENGINE_BACKLOG_SECONDS) else 0

    # ---------------------------------------------------------------- one campaign
    def _prepare(self, campaign: Campaign, now: datetime, load: Load) -> list[CampaignContact]:
        """Move ``campaign`` through its window; the contacts it may dial this turn."""
        if now >= campaign.end_at:   # paused or not: it can never dial again
            # Take in the contacts not synced yet (the dialer was down, or they joined
            # since the last look), so they too are counted as skipped, not nowhere.
            self.synced.pop(campaign.id, None)
            self._sync(campaign)
            self._complete(campaign, now, reasons.WINDOW_ENDED)
            return []
        if campaign.status == CampaignStatus.PAUSED:
            self._say(campaign, reasons.PAUSED, "paused with pause_campaign")
            return []
        if now < campaign.start_at:
            verdict = dial_check.verdict_for(campaign, "", now)
            self._say(campaign, reasons.OUTSIDE_WINDOW, hours.describe(verdict))
            return []
        if campaign.status == CampaignStatus.SCHEDULED:
            if not CAMPAIGN.advance(campaign.id, CampaignStatus.RUNNING):
                return []
            campaign.status = CampaignStatus.RUNNING
            log.info("campaign running", extra={"account_id": campaign.account_id,
                                                "campaign_id": campaign.id})
        self._sync(campaign)
        if not campaign.contact_local_time:
            verdict = dial_check.verdict_for(campaign, "", now)
            if not verdict.allowed:
                if not self._finished(campaign, now):
                    self._say(campaign, verdict.reason_code, hours.describe(verdict))
                return []
        if self.behind:
            # Its window, completion and reasons above still move on; only dialing waits.
            if not self._finished(campaign, now):
                self._say(campaign, reasons.NO_CAPACITY,
                          f"the engine has {self.behind} calls waiting for a free call slot")
            return []
        bucket = self._bucket(campaign)
        room = self._room(campaign, load)
        if room <= 0:
            self._finished(campaign, now)
            return []
        n = min(bucket.available(), room, BATCH)
        if n <= 0:
            return []
        due = list(CampaignContact.select().where(
            (CampaignContact.campaign_id == campaign.id)
            & CampaignContact.state.in_(DUE_STATES) & (CampaignContact.next_at <= now))
            .order_by(CampaignContact.next_at, CampaignContact.contact_id).limit(n))
        if not due:
            self._idle(campaign, now)
        return due

    def _room(self, campaign: Campaign, load: Load) -> int:
        """How many more calls the account's cap and the trunk's leave for ``campaign``."""
        room = BATCH
        cap = self.settings.account_max_calls
        if cap:
            room = cap - load.accounts[campaign.account_id]
            if room <= 0:
                self._say_account_limit(campaign)
                return 0
        trunk = self.settings.trunk_max_calls
        if trunk:
            if load.trunk >= trunk:
                self._say(campaign, reasons.TRUNK_LIMIT,
                          f"trunk limit of {trunk} concurrent calls reached")
                return 0
            room = min(room, trunk - load.trunk)
        return room

    def _say_account_limit(self, campaign: Campaign) -> None:
        self._say(campaign, reasons.ACCOUNT_LIMIT,
                  f"account limit of {self.settings.account_max_calls} concurrent calls reached")

    def _account_full(self, account_id: str, load: Load) -> bool:
        cap = self.settings.account_max_calls
        return bool(cap) and load.accounts[account_id] >= cap

    def _dial(self, wanted: dict[str, list[tuple[Campaign, list[CampaignContact]]]],
              now: datetime, load: Load) -> bool:
        """Start the wanted attempts, one account after the other in turn, so accounts
        share the trunk's caps equally (and each account's cap holds across its
        campaigns), then commit them together (:meth:`_start`). False: what is left
        waits for the next turn."""
        queues = {account: [(c, row) for c, rows in items for row in rows]
                  for account, items in wanted.items()}
        order = sorted(queues)
        # Start after the account that dialed last, so no account always gets the last
        # token (rotating with the turn's number did not: a trunk token that comes every
        # other turn always went to the same account).
        first = bisect.bisect_right(order, self.last_served)
        order = order[first:] + order[:first]
        picked: dict[str, tuple[Campaign, list[CampaignContact]]] = {}
        in_turn: list[tuple[str, int]] = []   # the order the accounts took turns in
        while order:
            for account in list(order):
                if queues[account] and self._account_full(account, load):
                    # Each campaign's room was counted before any of them dialed: the
                    # account's cap holds across all of its campaigns in this turn.
                    for campaign in {c.id: c for c, _ in queues[account]}.values():
                        self._say_account_limit(campaign)
                    queues[account] = []
                if not queues[account]:
                    order.remove(account)
                    continue
                if not self._trunk_allows(load):
                    for campaign, _ in queues[account][:1]:
                        self._say(campaign, reasons.TRUNK_LIMIT,
                                  f"trunk limit of {self.settings.trunk_cps:g} calls per second reached"
                                  if self.trunk_bucket else "trunk limit reached")
                    # Not "more due at once": the trunk's tokens arrive at its rate and
                    # the next turn finds them; running again now would only spin.
                    order = []
                    break
                campaign, row = queues[account].pop(0)
                self.last_served = account
                if self._admit(campaign, row, now, load):
                    picked.setdefault(campaign.id, (campaign, []))[1].append(row)
                    in_turn.append((campaign.id, row.contact_id))
        self._start(list(picked.values()), in_turn, now)
        # Each campaign took at most its tokens and BATCH: what is left is the next
        # turn's, never due at once.
        return False

    def _trunk_allows(self, load: Load) -> bool:
        trunk = self.settings.trunk_max_calls
        if trunk and load.trunk >= trunk:
            return False
        return self.trunk_bucket is None or self.trunk_bucket.available() >= 1

    def _admit(self, campaign: Campaign, row: CampaignContact, now: datetime, load: Load) -> bool:
        """Whether the contact is dialed this turn (its own calling hours first); an
        admitted one takes its tokens and counts in the load at once, so the turn's
        caps and pacing hold before the attempts are committed together."""
        if campaign.contact_local_time:
            verdict = dial_check.verdict_for(campaign, row.number, now)
            if not verdict.allowed:
                self._defer(campaign, row, verdict, now)
                return False
        self.buckets[campaign.id].take()
        if self.trunk_bucket is not None:
            self.trunk_bucket.take()
        load.add(campaign.account_id)
        return True

    def _start(self, picked: list[tuple[Campaign, list[CampaignContact]]],
               in_turn: list[tuple[str, int]], now: datetime) -> None:
        """Commit the admitted attempts (a few statements per campaign, not per contact)
        and queue their call jobs in one round trip, in the order they were taken."""
        started: dict[tuple[str, int], Plan] = {}
        for campaign, rows in picked:
            plans = attempts.start_many(campaign, rows, now, self.settings.ring_timeout)
            if plans:
                self._say(campaign, "", "")
            started.update(((campaign.id, cid), plan) for cid, plan in plans.items())
        plans = [started[key] for key in in_turn if key in started]
        try:
            calls.queue_plans(self.queue, plans)
        except redis.RedisError:
            # Committed but not queued: the reconciler queues them once Redis is back.
            log.warning("attempts not queued yet", extra={"attempts": len(plans)})

    def _defer(self, campaign: Campaign, row: CampaignContact, verdict: hours.Verdict,
               now: datetime) -> None:
        """A contact outside its own calling hours waits for them (or is final)."""
        where = ((CampaignContact.campaign_id == campaign.id)
                 & (CampaignContact.contact_id == row.contact_id)
                 & (CampaignContact.state == row.state))
        if verdict.next_at is None:
            CampaignContact.update(state=ContactState.SKIPPED.value, reason_code=verdict.reason_code,
                                   updated_at=now).where(where).execute()
        else:
            CampaignContact.update(next_at=verdict.next_at, reason_code=verdict.reason_code,
                                   updated_at=now).where(where).execute()

    def _idle(self, campaign: Campaign, now: datetime) -> None:
        """Nothing is due: the campaign is done, waiting for retries or for hours."""
        counts = dict(CampaignContact.select(CampaignContact.state, peewee.fn.COUNT(1))
                      .where((CampaignContact.campaign_id == campaign.id)
                             & CampaignContact.state.in_(OPEN_STATES))
                      .group_by(CampaignContact.state).tuples())
        if not counts and not self._unsynced(campaign):
            self._complete(campaign, now, "")
            return
        if counts.get(ContactState.DIALING.value):
            self._say(campaign, "", "")
            return
        nxt = (CampaignContact.select(peewee.fn.MIN(CampaignContact.next_at))
               .where((CampaignContact.campaign_id == campaign.id)
                      & CampaignContact.state.in_(DUE_STATES)).scalar())
        waiting = sum(counts.values())
        if counts.get(ContactState.RETRY_WAIT.value) == waiting and nxt:
            self._say(campaign, reasons.RETRY_WAIT,
                      f"{waiting} contacts waiting for retries, next at {nxt:%H:%M:%S} UTC")
        elif nxt:
            self._say(campaign, reasons.OUTSIDE_HOURS,
                      f"{waiting} contacts waiting for their calling_hours, next at "
                      f"{nxt:%H:%M:%S} UTC")

    def _finished(self, campaign: Campaign, now: datetime) -> bool:
        """Complete ``campaign`` if every contact is final; True when it did. For the
        turns that dial nothing for another reason (outside its hours, at a cap): a
        finished campaign must not wait for those to clear to say it is completed."""
        if self._unsynced(campaign) or CampaignContact.select().where(
                (CampaignContact.campaign_id == campaign.id)
                & CampaignContact.state.in_(OPEN_STATES)).exists():
            return False
        self._complete(campaign, now, "")
        return True

    def _complete(self, campaign: Campaign, now: datetime, reason: str) -> None:
        """Every contact is final, or the window ended: the campaign is completed."""
        with database.atomic():
            if not CAMPAIGN.advance(campaign.id, CampaignStatus.COMPLETED):
                return
            if reason:
                CampaignContact.update(state=ContactState.SKIPPED.value, reason_code=reason,
                                       updated_at=now).where(
                    (CampaignContact.campaign_id == campaign.id)
                    & CampaignContact.state.in_(DUE_STATES)).execute()
            Campaign.update(state_reason_code=reason,
                            state_reason="campaign window ended" if reason else "").where(
                Campaign.id == campaign.id).execute()
        log.info("campaign completed", extra={"account_id": campaign.account_id,
                                              "campaign_id": campaign.id, "reason": reason})

    # ------------------------------------------------------------------ contacts
    def _sync(self, campaign: Campaign) -> None:
        """Add the list's contacts that have no progress row yet (at start, and every
        :data:`SYNC_EVERY` seconds: contacts added while it runs are dialed too), and
        count the announcement placeholders each new contact has no value for."""
        mono = self.monotonic()
        if mono - self.synced.get(campaign.id, float("-inf")) < SYNC_EVERY:
            return
        self.synced[campaign.id] = mono
        now = self.clock()
        existing = CampaignContact.select(CampaignContact.contact_id).where(
            (CampaignContact.campaign_id == campaign.id)
            & (CampaignContact.contact_id == Contact.id))
        while True:
            new = list(Contact.select(Contact.id, Contact.number, Contact.name, Contact.fields)
                       .where((Contact.list_id == campaign.list_id) & ~peewee.fn.EXISTS(existing))
                       .order_by(Contact.id).limit(SYNC_BATCH).tuples())
            if not new:
                return
            with database.atomic():
                CampaignContact.insert_many(
                    [(campaign.id, cid, num, ContactState.PENDING.value, 0, now, "", now)
                     for cid, num, _, _ in new],
                    fields=[CampaignContact.campaign_id, CampaignContact.contact_id,
                            CampaignContact.number, CampaignContact.state,
                            CampaignContact.attempts, CampaignContact.next_at,
                            CampaignContact.reason_code, CampaignContact.updated_at],
                ).on_conflict_ignore().execute()
                attempts.count_missing(campaign, new)
            log.info("contacts added to campaign", extra={
                "campaign_id": campaign.id, "account_id": campaign.account_id, "added": len(new)})
            if len(new) < SYNC_BATCH:
                return

    def _unsynced(self, campaign: Campaign) -> bool:
        existing = CampaignContact.select(CampaignContact.contact_id).where(
            (CampaignContact.campaign_id == campaign.id)
            & (CampaignContact.contact_id == Contact.id))
        return (Contact.select(Contact.id).where((Contact.list_id == campaign.list_id)
                                                 & ~peewee.fn.EXISTS(existing)).exists())

    def _bucket(self, campaign: Campaign) -> pacing.Bucket:
        bucket = self.buckets.get(campaign.id)
        if bucket is None:
            bucket = self.buckets[campaign.id] = pacing.per_minute(
                campaign.calls_per_minute, self.settings.scan_interval)
            bucket.clock = self.monotonic
            bucket.at = self.monotonic()
        return bucket

    def _say(self, campaign: Campaign, code: str, sentence: str) -> None:
        """Record why the campaign is (not) dialing, when that changed. Compared with
        the row as this turn read it (pause and resume write it too), which then holds
        what was said, so a turn that says the same again writes nothing."""
        sentence = sentence[:200]
        if (campaign.state_reason_code, campaign.state_reason) != (code, sentence):
            Campaign.update(state_reason_code=code, state_reason=sentence).where(
                Campaign.id == campaign.id).execute()
            campaign.state_reason_code, campaign.state_reason = code, sentence

    # ------------------------------------------------------------------ reconcile
    def reconcile(self, now: datetime) -> None:
        """Re-queue attempts whose job was lost; settle attempts whose notice was lost."""
        stale = list(CampaignAttempt.select(CampaignAttempt.id).join(
            CallRequest, on=(CallRequest.id == CampaignAttempt.id)).where(
            (CampaignAttempt.status == AttemptState.QUEUED.value)
            & (CallRequest.status == CallState.QUEUED.value)
            & (CampaignAttempt.created_at < now - REQUEUE_AFTER)).limit(BATCH))
        if stale:
            queued = set(self.queue.get_job_ids())
            for row in stale:
                if row.id not in queued:
                    log.warning("attempt's job lost; queued again", extra={"request_id": row.id})
                    attempts.queue(self.queue, row.id, self.settings.ring_timeout)
        unsettled = (CampaignAttempt.select(CampaignAttempt.id, Cdr.dial_status, Cdr.hangup_cause)
                     .join(CallRequest, on=(CallRequest.id == CampaignAttempt.id))
                     .join(Cdr, on=((Cdr.request_id == CampaignAttempt.id)
                                    & (Cdr.account_id == CampaignAttempt.account_id)))
                     .where(CampaignAttempt.status.in_([AttemptState.QUEUED.value,
                                                        AttemptState.PLACED.value])
                            & (CallRequest.status == CallState.DONE.value))
                     .limit(BATCH).tuples())
        for attempt_id, dial_status, cause in unsettled:
            if attempts.settle(attempt_id, dial_status, cause, now):
                log.warning("attempt settled from its CDR (its notice was lost)",
                            extra={"request_id": attempt_id})
