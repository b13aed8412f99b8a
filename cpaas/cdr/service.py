"""CDR queries and statistics (no Flask here).

Speed (bench/cdr_query.py): each CDR is stored with its JSON (``api_json``, rendered
once by the writer), so a list reads one text per row and joins them: a page of 1000
costs no per-value conversion or encoding, here or in the database. A page deep into a range
(``offset``) first finds where it starts on the ``(account_id, call_date, id)`` index
alone, then reads just its rows.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

import peewee
import redis
from peewee import SQL, Tuple

from cpaas.cdr.writer import COUNTERS
from cpaas.db import database
from cpaas.jsontext import JsonArray
from cpaas.models import Cdr, CdrStats
from cpaas.telephony import live

#: One CDR as the API sends it: the id, then what the writer rendered (cpaas.cdr.writer).
_ROW_JSON = SQL("""'{"id":' || id || ',' || api_json""")


def _page(where: peewee.Expression, order: tuple) -> peewee.ModelSelect:
    return Cdr.select(_ROW_JSON).where(where).order_by(*order)


def _json_rows(query: peewee.ModelSelect) -> JsonArray:
    return JsonArray.of(row[0] for row in database.execute(query).fetchall())


def by_date(account_id: str, start: date, end: date, count: int, offset: int,
            after_id: int | None = None) -> JsonArray:
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
    return _json_rows(_page(where, (Cdr.call_date, Cdr.id)).limit(count))


def by_request(account_id: str, request_id: str) -> JsonArray:
    """Every CDR of one request."""
    return _json_rows(_page((Cdr.account_id == account_id) & (Cdr.request_id == request_id),
                            (Cdr.id,)))


def by_campaign(account_id: str, campaign_id: str) -> JsonArray:
    """Every CDR of one campaign (the caller has checked the campaign is the account's)."""
    return _json_rows(_page((Cdr.account_id == account_id) & (Cdr.campaign_id == campaign_id),
                            (Cdr.id,)))


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
