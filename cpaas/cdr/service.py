"""CDR queries and statistics (no Flask here).

Speed (bench/cdr_query.py): CDR lists are read as plain rows (no model objects; on
PostgreSQL without peewee's per-value conversion, which leaves psycopg2's values as they
are) and shaped by :func:`as_dict` itself. A page deep into a range (``offset``) first finds where it starts
on the ``(account_id, call_date, id)`` index alone, then reads just its rows.
"""
from __future__ import annotations

from collections import namedtuple
from datetime import date, datetime, time, timedelta
from typing import Any, Iterable

import peewee
import redis
from peewee import Tuple

from cpaas.cdr.writer import COUNTERS
from cpaas.db import database
from cpaas.models import Cdr, CdrStats
from cpaas.telephony import live
from cpaas.validation import http_date


def as_dict(row: Cdr) -> dict[str, Any]:
    """A CDR in the spec's shape; every row carries the same keys."""
    return {
        "account_id": row.account_id,
        "agent_number": row.agent_number,
        "answer": http_date(row.answer_at),
        "billsec": row.billsec,
        "call_date": http_date(row.call_date),
        "call_direction": row.call_direction,
        "call_duration": row.call_duration,
        "call_status": row.call_status,
        "caller_id": row.caller_id,
        "customer_number": row.customer_number,
        "destination_context": row.destination_context,
        "dial_status": row.dial_status,
        "dialed_number": row.dialed_number,
        "dtmf_inputs": row.dtmf_inputs,
        "end": http_date(row.end_at),
        "hangup_cause": row.hangup_cause,
        "id": row.id,
        "is_dnd": str(row.is_dnd),
        "list_id": row.list_id,
        "recording_name": row.recording_name,
        "request_id": row.request_id,
        "uniqueid": row.uniqueid,
    }


#: A CDR row as a tuple with the model's field names: what ``Cdr.select()`` returns,
#: readable by :func:`as_dict` like a model object.
_Row = namedtuple("_Row", [f.name for f in Cdr._meta.sorted_fields])  # type: ignore[misc]


def _rows(query: peewee.ModelSelect) -> Iterable[tuple]:
    """The query's rows as tuples of the values the model's fields would hold.

    psycopg2 already returns exactly those (str, int, float, datetime, None: each
    field's conversion leaves them as they are), so PostgreSQL rows skip the per-value
    conversion; other databases (SQLite keeps timestamps as text) get peewee's.
    """
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        return database.execute(query).fetchall()
    return query.tuples()


def _as_dicts(query: peewee.ModelSelect) -> list[dict[str, Any]]:
    """:func:`as_dict` of every row of ``Cdr.select()…`` (all fields, model order)."""
    make = _Row._make
    return [as_dict(make(row)) for row in _rows(query)]


def by_date(account_id: str, start: date, end: date, count: int, offset: int,
            after_id: int | None = None) -> list[dict[str, Any]]:
    """CDRs whose call_date falls on ``start``..``end`` (UTC, inclusive), in
    (call_date, id) order. ``after_id`` continues after that row (keyset paging,
    fast at any depth); ``offset`` then skips within what follows."""
    low = datetime.combine(start, time.min)
    high = datetime.combine(end + timedelta(days=1), time.min)
    where = (Cdr.account_id == account_id) & (Cdr.call_date >= low) & (Cdr.call_date < high)
    if after_id is not None:
        anchor = (Cdr.select(Cdr.call_date, Cdr.id)
                  .where((Cdr.id == after_id) & (Cdr.account_id == account_id)).first())
        if anchor is None:
            return []
        where &= Tuple(Cdr.call_date, Cdr.id) > Tuple(anchor.call_date, anchor.id)
    if offset:
        # Skipping rows that are read whole costs a heap visit each: find where the page
        # starts on the (account_id, call_date, id) index alone (an index-only scan),
        # then read the page from there. Past the end, the start is NULL: no rows.
        first = (Cdr.select(Cdr.call_date, Cdr.id).where(where).order_by(Cdr.call_date, Cdr.id)
                 .offset(offset).limit(1))
        where &= Tuple(Cdr.call_date, Cdr.id) >= first
    query = Cdr.select().where(where).order_by(Cdr.call_date, Cdr.id).limit(count)
    return _as_dicts(query)


def by_request(account_id: str, request_id: str) -> list[dict[str, Any]]:
    """Every CDR of one request."""
    query = (Cdr.select().where((Cdr.account_id == account_id) & (Cdr.request_id == request_id))
             .order_by(Cdr.id))
    return _as_dicts(query)


def by_campaign(account_id: str, campaign_id: str) -> list[dict[str, Any]]:
    """Every CDR of one campaign (the caller has checked the campaign is the account's)."""
    query = (Cdr.select().where((Cdr.account_id == account_id) & (Cdr.campaign_id == campaign_id))
             .order_by(Cdr.id))
    return _as_dicts(query)


def statistics(account_id: str, campaign_id: str = "") -> dict[str, list[int]]:
    """Counters by outcome, as the spec's one-element arrays.

    Kept by the CDR writer in ``cdr_stats``, so this is one primary-key read however
    many CDRs there are. Account-level statistics have no ``dnd_calls`` (spec shape).
    """
    row = CdrStats.get_or_none((CdrStats.account_id == account_id)
                               & (CdrStats.campaign_id == campaign_id))
    names = [n for n in COUNTERS if campaign_id or n != "dnd_calls"]
    return {name: [int(getattr(row, name)) if row else 0] for name in names}


def live_statistics(r: redis.Redis, account_id: str) -> dict[str, int]:
    """Live calls by kind, counted from the engines' live-leg registry (calls, not legs)."""
    calls: dict[str, set[str]] = {"c2c": set(), "campaign": set(), "otp": set()}
    for leg in live.for_account(r, account_id):
        kind = "c2c" if leg.kind == "callback" else leg.kind
        calls.setdefault(kind, set()).add(leg.request_id)
    return {
        "live_calls_c2c": len(calls["c2c"]),
        "live_calls_campaign": len(calls["campaign"]),
        # Inbound calls are not routed yet; no engine reports them.
        "live_calls_inbound": 0,
        "live_calls_otp": len(calls["otp"]),
    }
