"""Why a campaign is not dialing, or why a contact was not dialed: the fixed list of
reason codes the API reports (``state_reason_code`` of a campaign, ``reason_code`` of a
contact or an attempt), declared once. README and the OpenAPI docs list them from here.
"""
from __future__ import annotations

#: code → what it means (the API docs print this table).
CODES: dict[str, str] = {
    "outside_window": "before campaign_start_date (in the campaign's time_zone)",
    "window_ended": "campaign_end_date passed; contacts not reached are final",
    "outside_calling_hours": "outside calling_hours (in the campaign's or the contact's zone)",
    "retry_wait": "every contact left is waiting for its retry_time",
    "account_limit": "the account's concurrent calls reached CPAAS_ACCOUNT_MAX_CALLS",
    "trunk_limit": "the trunk's CPAAS_TRUNK_MAX_CALLS or CPAAS_TRUNK_CPS is reached",
    "paused": "paused with pause_campaign; resume_campaign continues it",
    "stopped": "stopped with stop_campaign",
    "dialer_down": "no worker process holds the dialer's lease: nothing dials",
    "no_engine_capacity": "the engine has no free call slot",
    "dnd": "the number is on the campaign's DND list (contact)",
    "number_cap": "the number was dialed CPAAS_MAX_ATTEMPTS_PER_NUMBER_24H times in 24 h (contact)",
    "declined": "the callee declined (SIP 600/603): never retried (contact)",
    "contact_removed": "the contact was removed from the list before it was dialed (contact)",
}
OUTSIDE_WINDOW, WINDOW_ENDED, OUTSIDE_HOURS = "outside_window", "window_ended", "outside_calling_hours"
RETRY_WAIT, ACCOUNT_LIMIT, TRUNK_LIMIT = "retry_wait", "account_limit", "trunk_limit"
PAUSED, STOPPED, DIALER_DOWN, NO_CAPACITY = "paused", "stopped", "dialer_down", "no_engine_capacity"
DND, NUMBER_CAP, DECLINED, REMOVED = "dnd", "number_cap", "declined", "contact_removed"
