"""The CDR writer: one row per finished call, counters updated in the same transaction.

Engines never call this directly: the ``events`` process turns engine events into
:class:`CdrRecord` and writes them here, whichever engine placed the call.

A CDR hardly ever changes once written (retention empties its ``recording_name``:
:func:`rewrite`, which renders it again), so the writer also stores it as the API sends it
(``api_json``, every key but ``id``, which the database assigns): a page of 1000 CDRs
is then read as 1000 ready texts instead of being encoded again on every read, by
Python or by the database (bench/README.md, section 2).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import peewee

from cpaas.db import database
from cpaas.models import Cdr, CdrStats
from cpaas.telephony.outcomes import call_status_for
from cpaas.validation import http_date

#: dial_status → counter column of cdr_stats.
COUNTER_FOR = {
    "ANSWER": "answer_calls",
    "BUSY": "busy_calls",
    "CANCEL": "cancel_calls",
    "CHANUNAVAIL": "chanunavail_calls",
    "CONGESTION": "congestion_calls",
    "NOANSWER": "noanswer_calls",
    "DND": "dnd_calls",
}
COUNTERS = ("answer_calls", "busy_calls", "cancel_calls", "chanunavail_calls",
            "congestion_calls", "noanswer_calls", "dnd_calls", "total_calls")


@dataclass
class CdrRecord:
    """Everything a CDR row holds; times are naive UTC."""

    account_id: str
    request_id: str
    uniqueid: str
    dial_status: str
    call_date: datetime
    destination_context: str
    call_direction: str
    caller_id: str
    dialed_number: str
    agent_number: str = ""
    customer_number: str = ""
    campaign_id: str | None = None
    list_id: str = ""
    answer_at: datetime | None = None
    end_at: datetime | None = None
    billsec: float | None = None
    call_duration: float | None = None
    dtmf_inputs: str = ""
    recording_name: str = ""
    is_dnd: int = 0
    hangup_cause: str = ""
    transfer_to: str = ""
    transcript_status: str = "off"


def _bump(account_id: str, campaign_id: str, dial_status: str) -> None:
    column = COUNTER_FOR.get(dial_status)
    initial = {name: 0 for name in COUNTERS}
    initial["total_calls"] = 1
    update = {CdrStats.total_calls: CdrStats.total_calls + 1}
    if column:
        initial[column] = 1
        field = getattr(CdrStats, column)
        update[field] = field + 1
    (CdrStats.insert(account_id=account_id, campaign_id=campaign_id, **initial)
     .on_conflict(conflict_target=[CdrStats.account_id, CdrStats.campaign_id], update=update)
     .execute())


#: The spec's CDR keys (less ``id``) in the order they are sent, each with its column.
API_KEYS: tuple[tuple[str, str], ...] = (
    ("account_id", "account_id"), ("agent_number", "agent_number"), ("answer", "answer_at"),
    ("billsec", "billsec"), ("call_date", "call_date"), ("call_direction", "call_direction"),
    ("call_duration", "call_duration"), ("call_status", "call_status"),
    ("caller_id", "caller_id"), ("customer_number", "customer_number"),
    ("destination_context", "destination_context"), ("dial_status", "dial_status"),
    ("dialed_number", "dialed_number"), ("dtmf_inputs", "dtmf_inputs"), ("end", "end_at"),
    ("hangup_cause", "hangup_cause"), ("is_dnd", "is_dnd"), ("list_id", "list_id"),
    ("recording_name", "recording_name"), ("request_id", "request_id"),
    ("uniqueid", "uniqueid"),
    # later additions go last: migrations append them to rows rendered before them
    ("transfer_to", "transfer_to"), ("transcript_status", "transcript_status"),
)
#: Sent as ``Tue, 11 Jul 2023 09:00:00 GMT`` (the epoch when there is none).
DATE_COLUMNS = frozenset({"answer_at", "call_date", "end_at"})


def api_json(fields: dict[str, Any]) -> str:
    """The spec's CDR object for a row's ``fields``, without ``id``, as JSON that
    continues ``{"id":<id>,``."""
    shaped: dict[str, Any] = {}
    for key, column in API_KEYS:
        value = fields[column]
        if column in DATE_COLUMNS:
            value = http_date(value)
        elif column == "is_dnd":   # the spec sends it as a string ("0")
            value = str(value)
        shaped[key] = value
    return json.dumps(shaped, separators=(",", ":"))[1:]


def write(record: CdrRecord) -> int | None:
    """Insert the row and bump the counters; returns the row id, or None when a row
    with the same ``uniqueid`` already exists (an event delivered twice)."""
    fields = asdict(record)
    fields["call_status"] = call_status_for(record.dial_status)
    fields["api_json"] = api_json(fields)
    try:
        with database.atomic():
            row_id = Cdr.insert(**fields).execute()
            _bump(record.account_id, "", record.dial_status)
            if record.campaign_id:
                _bump(record.account_id, record.campaign_id, record.dial_status)
    except peewee.IntegrityError:
        if record.uniqueid and Cdr.select().where(Cdr.uniqueid == record.uniqueid).exists():
            return None
        raise
    return row_id


def rewrite(row_id: int, changes: dict[str, Any], *conditions: Any) -> bool:
    """Change columns of one CDR and render its ``api_json`` again, in one transaction;
    only when ``conditions`` still hold (so two writers racing change it once).
    True when the row was changed."""
    with database.atomic():
        query = Cdr.select().where(Cdr.id == row_id, *conditions)
        fields = query.dicts().first()
        if fields is None:
            return False
        fields.update({name: value for name, value in changes.items()})
        changes = {**changes, "api_json": api_json(fields)}
        return Cdr.update(**changes).where(Cdr.id == row_id, *conditions).execute() == 1
