"""CDR reads and statistics over rows written by the real CDR writer; live call statistics."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest

from cpaas.cdr.writer import CdrRecord, write
from cpaas.db import database
from cpaas.models import Cdr
from cpaas.telephony import live
from tests.api.helpers import account_id, error_body, make_campaign, ok_body

#: The union of the keys of the spec's CDR examples.
CDR_KEYS = {"account_id", "agent_number", "answer", "billsec", "call_date", "call_direction",
            "call_duration", "call_status", "caller_id", "customer_number", "destination_context",
            "dial_status", "dialed_number", "dtmf_inputs", "end", "id", "is_dnd", "list_id",
            "recording_name", "request_id", "uniqueid"}
STAT_KEYS = {"answer_calls", "busy_calls", "cancel_calls", "chanunavail_calls", "congestion_calls",
             "noanswer_calls", "total_calls"}
EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
_seq = itertools.count()


def cdr(account: str, call_date: datetime, dial_status: str = "ANSWER", *, request_id: str = "b5e66bf36f",
        campaign_id: str | None = None, list_id: str = "", is_dnd: int = 0, **extra) -> int:
    """Write one CDR through the real writer, as the events process does."""
    answered = dial_status == "ANSWER"
    n = next(_seq)
    record = CdrRecord(
        account_id=account_id(account), request_id=request_id,
        uniqueid="" if dial_status == "DND" else f"1688710079.{n}",
        dial_status=dial_status, call_date=call_date,
        destination_context="local_call_campaign_type_0" if campaign_id else "local_call",
        call_direction="outbound-campaign" if campaign_id else "outbound-api",
        caller_id="15168148111", dialed_number="919979270001",
        customer_number="" if campaign_id else "919979270001",
        campaign_id=campaign_id, list_id=list_id, is_dnd=is_dnd,
        answer_at=call_date - timedelta(seconds=7) if answered else None,
        end_at=None if dial_status == "DND" else call_date,
        billsec=None if dial_status == "DND" else (7.26955 if answered else 0.0),
        call_duration=None if dial_status == "DND" else 17.0311, **extra)
    row_id = write(record)
    assert row_id is not None
    return row_id


def by_date(client, start: str, end: str, **extra):
    return client.post("/api/get_cdr_by_date", {"start_call_date": start, "end_call_date": end, **extra})


def ids(resp) -> list[int]:
    return [r["id"] for r in ok_body(resp)["result"]]


# --- get_cdr_by_date ------------------------------------------------------------------

def test_by_date_spec_row_shape(api):
    row_id = cdr("account_1", datetime(2023, 7, 7, 6, 8, 16))
    inner = ok_body(by_date(api, "2023-07-07", "2023-07-07"))
    assert inner["message"] == "cdr found"
    [row] = inner["result"]
    assert CDR_KEYS <= set(row)
    row = {k: row[k] for k in CDR_KEYS}
    assert row == {
        "account_id": account_id("account_1"), "agent_number": "", "answer": "Fri, 07 Jul 2023 06:08:09 GMT",
        "billsec": pytest.approx(7.26955), "call_date": "Fri, 07 Jul 2023 06:08:16 GMT",
        "call_direction": "outbound-api", "call_duration": pytest.approx(17.0311), "call_status": "ANSWERED",
        "caller_id": "15168148111", "customer_number": "919979270001", "destination_context": "local_call",
        "dial_status": "ANSWER", "dialed_number": "919979270001", "dtmf_inputs": "",
        "end": "Fri, 07 Jul 2023 06:08:16 GMT", "id": row_id, "is_dnd": "0", "list_id": "",
        "recording_name": "", "request_id": "b5e66bf36f", "uniqueid": row["uniqueid"],
    }
    assert isinstance(row["id"], int)


def test_unanswered_call_has_epoch_answer_and_zero_billsec(api):
    cdr("account_1", datetime(2023, 7, 7, 6, 8, 16), "NOANSWER")
    [row] = ok_body(by_date(api, "2023-07-07", "2023-07-07"))["result"]
    assert row["answer"] == EPOCH
    assert row["billsec"] == 0
    assert row["call_status"] == "NO ANSWER"
    assert row["dial_status"] == "NOANSWER"


def test_dates_in_the_spec_format(api):
    # Every weekday and month name, a leap day, sub-second times (truncated, as in
    # http_date) and a missing answer time, against Python's own formatting.
    stamps = [datetime(2024, month, 1 + month, month, 59, 59, 999_999) for month in range(1, 13)]
    stamps += [datetime(2024, 2, 29, 23, 59, 59, 500_000), datetime(2023, 1, 1, 0, 0, 0)]
    for stamp in stamps:
        cdr("account_1", stamp)
    cdr("account_1", datetime(2023, 1, 1, 0, 0, 1), "BUSY")
    rows = ok_body(by_date(api, "2023-01-01", "2024-12-31"))["result"]
    expected = sorted(stamps + [datetime(2023, 1, 1, 0, 0, 1)])
    assert [r["call_date"] for r in rows] == [s.strftime("%a, %d %b %Y %H:%M:%S GMT") for s in expected]
    assert {r["answer"] for r in rows if r["dial_status"] == "BUSY"} == {EPOCH}
    assert {r["answer"] for r in rows if r["dial_status"] == "ANSWER"} == \
        {(s - timedelta(seconds=7)).strftime("%a, %d %b %Y %H:%M:%S GMT") for s in stamps}


def test_text_is_escaped(api):
    awkward = 'a "quoted" \\ back\tslash, ünïcode ☎ and \u2028 line'
    cdr("account_1", datetime(2023, 7, 7, 6, 8, 16), hangup_cause=awkward[:64])
    [row] = ok_body(by_date(api, "2023-07-07", "2023-07-07"))["result"]
    assert row["hangup_cause"] == awkward[:64]


def test_no_cdr_found(api):
    inner = ok_body(by_date(api, "2023-06-13", "2023-06-17"))
    assert inner == {"message": "no cdr found", "result": [], "success": "true"}


def test_dates_are_inclusive_utc_days(api):
    inside = [cdr("account_1", datetime(2023, 6, 13, 0, 0, 0)),
              cdr("account_1", datetime(2023, 6, 15, 12, 0, 0)),
              cdr("account_1", datetime(2023, 6, 17, 23, 59, 59))]
    cdr("account_1", datetime(2023, 6, 12, 23, 59, 59))
    cdr("account_1", datetime(2023, 6, 18, 0, 0, 0))
    assert ids(by_date(api, "2023-06-13", "2023-06-17")) == inside
    assert len(ids(by_date(api, "2023-06-17", "2023-06-17"))) == 1


def test_ordered_by_call_date_then_id(api):
    late = cdr("account_1", datetime(2023, 6, 15, 10, 0, 0))
    early = cdr("account_1", datetime(2023, 6, 14, 10, 0, 0))
    same_a = cdr("account_1", datetime(2023, 6, 14, 12, 0, 0))
    same_b = cdr("account_1", datetime(2023, 6, 14, 12, 0, 0))
    assert ids(by_date(api, "2023-06-13", "2023-06-17")) == [early, same_a, same_b, late]


def test_record_count_and_offset_as_strings_or_numbers(api):
    written = [cdr("account_1", datetime(2023, 6, 14, 10, 0, i)) for i in range(7)]
    assert ids(by_date(api, "2023-06-13", "2023-06-17", record_count="5", offset="1")) == written[1:6]
    assert ids(by_date(api, "2023-06-13", "2023-06-17", record_count=2, offset=5)) == written[5:7]
    assert ids(by_date(api, "2023-06-13", "2023-06-17", offset=7)) == []


def test_after_id_keyset_paging(api):
    written = [cdr("account_1", datetime(2023, 6, 14, 10, 0, i % 3)) for i in range(9)]
    expected = ids(by_date(api, "2023-06-13", "2023-06-17"))
    assert sorted(expected) == sorted(written)
    pages, after = [], None
    while True:
        extra = {"record_count": 2} if after is None else {"record_count": 2, "after_id": after}
        page = ids(by_date(api, "2023-06-13", "2023-06-17", **extra))
        if not page:
            break
        pages.extend(page)
        after = page[-1]
    assert pages == expected
    # offset applies after the anchor
    assert ids(by_date(api, "2023-06-13", "2023-06-17", after_id=expected[2], offset=1, record_count=2)) == \
        expected[4:6]


def test_after_id_of_another_account_or_unknown_gives_nothing(api, other):
    theirs = cdr("account_2", datetime(2023, 6, 14, 10, 0, 0))
    cdr("account_1", datetime(2023, 6, 15, 10, 0, 0))
    assert ok_body(by_date(api, "2023-06-13", "2023-06-17", after_id=theirs))["result"] == []
    assert ok_body(by_date(api, "2023-06-13", "2023-06-17", after_id=10 ** 9))["result"] == []


def test_record_count_defaults_to_1000(api):
    with database.atomic():
        for i in range(1001):
            cdr("account_1", datetime(2023, 6, 14, 10, 0, 0) + timedelta(seconds=i))
    assert len(ids(by_date(api, "2023-06-14", "2023-06-14"))) == 1000
    assert len(ids(by_date(api, "2023-06-14", "2023-06-14", record_count="5000"))) == 1001


def test_only_own_cdrs(api, other):
    mine = cdr("account_1", datetime(2023, 6, 14, 10, 0, 0))
    theirs = cdr("account_2", datetime(2023, 6, 14, 10, 0, 0))
    assert ids(by_date(api, "2023-06-14", "2023-06-14")) == [mine]
    assert ids(by_date(other, "2023-06-14", "2023-06-14")) == [theirs]


BY_DATE_CASES = [
    ({"end_call_date": "2023-06-17"}, "start_call_date"),
    ({"start_call_date": "2023-06-13"}, "end_call_date"),
    ({"start_call_date": "13-06-2023", "end_call_date": "2023-06-17"}, "start_call_date"),
    ({"start_call_date": "2023-06-13", "end_call_date": "2023-06-31"}, "end_call_date"),
    ({"start_call_date": "2023-06-17", "end_call_date": "2023-06-13"}, "end_call_date"),
    ({"start_call_date": "2023-06-13", "end_call_date": "9999-12-31"}, "end_call_date"),
    ({"start_call_date": "2023-06-13", "end_call_date": "2023-06-17", "record_count": "0"}, "record_count"),
    ({"start_call_date": "2023-06-13", "end_call_date": "2023-06-17", "record_count": "5001"}, "record_count"),
    ({"start_call_date": "2023-06-13", "end_call_date": "2023-06-17", "record_count": "ten"}, "record_count"),
    ({"start_call_date": "2023-06-13", "end_call_date": "2023-06-17", "record_count": 2.5}, "record_count"),
    ({"start_call_date": "2023-06-13", "end_call_date": "2023-06-17", "offset": "-1"}, "offset"),
    ({"start_call_date": "2023-06-13", "end_call_date": "2023-06-17", "after_id": "x"}, "after_id"),
    ({"start_call_date": "2023-06-13", "end_call_date": "2023-06-17", "after_id": 10 ** 30}, "after_id"),
    ({"start_call_date": "2023-06-13", "end_call_date": "2023-06-17", "after_id": 1e300}, "after_id"),
    ({"start_call_date": "2023-06-13", "end_call_date": "2023-06-17", "offset": 10 ** 30}, "offset"),
    ({"start_call_date": "2023-06-13", "end_call_date": "2023-06-17", "page": 1}, "page"),
]


def test_by_date_validation(api, subtests):
    for body, field in BY_DATE_CASES:
        with subtests.test(body=body):
            error_body(api.post("/api/get_cdr_by_date", body), 400, field)


def test_record_count_5000_is_allowed(api):
    ok_body(by_date(api, "2023-06-13", "2023-06-17", record_count="5000"))


# --- get_cdr_by_request_id -------------------------------------------------------------

def test_by_request_id(api):
    a = cdr("account_1", datetime(2023, 7, 4, 5, 31, 51), request_id="91da7c083f", agent_number="918000680001")
    b = cdr("account_1", datetime(2023, 7, 4, 5, 35, 0), "BUSY", request_id="91da7c083f")
    cdr("account_1", datetime(2023, 7, 4, 5, 36, 0), request_id="0000000000")
    inner = ok_body(api.post("/api/get_cdr_by_request_id", {"request_id": " 91da7c083f "}))
    assert inner["message"] == "cdr found"
    assert [r["id"] for r in inner["result"]] == [a, b]
    assert all(set(r) == set(inner["result"][0]) >= CDR_KEYS for r in inner["result"])
    assert inner["result"][0]["agent_number"] == "918000680001"


def test_by_request_id_none_found(api):
    inner = ok_body(api.post("/api/get_cdr_by_request_id", {"request_id": "91da7c083f"}))
    assert inner == {"message": "no cdr found", "result": [], "success": "true"}


def test_by_request_id_of_another_account_is_as_if_unknown(api, other):
    cdr("account_1", datetime(2023, 7, 4, 5, 31, 51), request_id="91da7c083f")
    theirs = other.post("/api/get_cdr_by_request_id", {"request_id": "91da7c083f"})
    unknown = other.post("/api/get_cdr_by_request_id", {"request_id": "1234567890"})
    assert theirs.status_code == unknown.status_code
    assert ok_body(theirs) == ok_body(unknown) == {"message": "no cdr found", "result": [], "success": "true"}


def test_by_request_id_validation(api, subtests):
    for body, field in [({}, "request_id"), ({"request_id": "91da7c08"}, "request_id"),
                        ({"request_id": "CM91da7c083f"}, "request_id"),
                        ({"request_id": "91DA7C083G"}, "request_id"), ({"request_id": 1234567890}, "request_id"),
                        ({"request_id": "91da7c083f", "x": 1}, "x")]:
        with subtests.test(body=body):
            error_body(api.post("/api/get_cdr_by_request_id", body), 400, field)


# --- get_cdr_by_campaign_id ------------------------------------------------------------

def test_by_campaign_id_spec_example(api):
    campaign_id = make_campaign(api)
    dnd = cdr("account_1", datetime(2023, 7, 18, 6, 11, 10), "DND", request_id="", campaign_id=campaign_id,
              list_id="LS50f6ec70b7", is_dnd=1)
    answered = cdr("account_1", datetime(2023, 7, 18, 6, 11, 30), request_id="", campaign_id=campaign_id,
                   list_id="LS50f6ec70b7")
    cdr("account_1", datetime(2023, 7, 18, 6, 12, 0))  # not the campaign's
    inner = ok_body(api.post("/api/get_cdr_by_campaign_id", {"campaign_id": f" {campaign_id} "}))
    assert inner["message"] == "cdr found"
    rows = inner["result"]
    assert [r["id"] for r in rows] == [dnd, answered]
    assert all(set(r) == set(rows[0]) >= CDR_KEYS for r in rows)
    assert (rows[0]["is_dnd"], rows[0]["dial_status"], rows[0]["call_status"], rows[0]["answer"],
            rows[0]["end"], rows[0]["billsec"], rows[0]["list_id"]) == \
        ("1", "DND", None, EPOCH, EPOCH, None, "LS50f6ec70b7")
    assert (rows[1]["is_dnd"], rows[1]["call_direction"]) == ("0", "outbound-campaign")


def test_by_campaign_id_without_cdrs(api):
    campaign_id = make_campaign(api)
    inner = ok_body(api.post("/api/get_cdr_by_campaign_id", {"campaign_id": campaign_id}))
    assert inner == {"message": "no cdr found", "result": [], "success": "true"}


def test_by_campaign_id_of_another_account_is_404(api, other):
    campaign_id = make_campaign(api)
    cdr("account_1", datetime(2023, 7, 18, 6, 11, 30), campaign_id=campaign_id)
    inner = error_body(other.post("/api/get_cdr_by_campaign_id", {"campaign_id": campaign_id}), 404, "campaign_id")
    unknown = error_body(other.post("/api/get_cdr_by_campaign_id", {"campaign_id": "CM0123456789"}), 404)
    assert inner == unknown


def test_by_campaign_id_validation(api, subtests):
    for body, field in [({}, "campaign_id"), ({"campaign_id": "LS0123456789"}, "campaign_id"),
                        ({"campaign_id": "CM01"}, "campaign_id"), ({"campaign_id": None}, "campaign_id"),
                        ({"campaign_id": "CM0123456789", "y": 2}, "y")]:
        with subtests.test(body=body):
            error_body(api.post("/api/get_cdr_by_campaign_id", body), 400, field)


# --- statistics -------------------------------------------------------------------------

def _recount(account: str, campaign_id: str | None = None) -> dict[str, list[int]]:
    with database.connection_context():
        query = Cdr.select().where(Cdr.account_id == account_id(account))
        if campaign_id:
            query = query.where(Cdr.campaign_id == campaign_id)
        statuses = [r.dial_status for r in query]
    out = {f"{name.lower()}_calls": [statuses.count(name)]
           for name in ("ANSWER", "BUSY", "CANCEL", "CHANUNAVAIL", "CONGESTION", "NOANSWER")}
    out["total_calls"] = [len(statuses)]
    if campaign_id:
        out["dnd_calls"] = [statuses.count("DND")]
    return out


MIX = ["ANSWER"] * 4 + ["BUSY"] * 2 + ["CANCEL", "CHANUNAVAIL", "CONGESTION"] + ["NOANSWER"] * 3


def test_statistics_equal_a_recount(api, other):
    base = datetime(2023, 6, 14, 10, 0, 0)
    for i, status in enumerate(MIX):
        cdr("account_1", base + timedelta(minutes=i), status)
    cdr("account_2", base, "ANSWER")
    inner = ok_body(api.get("/api/get_cdr_statistics"))
    assert set(inner) == {"result", "success"}
    assert set(inner["result"]) == STAT_KEYS
    assert inner["result"] == _recount("account_1")
    assert inner["result"]["answer_calls"] == [4] and inner["result"]["total_calls"] == [len(MIX)]
    assert ok_body(other.get("/api/get_cdr_statistics"))["result"] == _recount("account_2")


def test_statistics_zero(api):
    assert ok_body(api.get("/api/get_cdr_statistics"))["result"] == {k: [0] for k in STAT_KEYS}


def test_campaign_statistics_with_dnd_calls(api, other):
    campaign_id = make_campaign(api)
    base = datetime(2023, 7, 18, 6, 0, 0)
    for i, status in enumerate(MIX + ["DND"] * 4):
        cdr("account_1", base + timedelta(seconds=i), status, campaign_id=campaign_id,
            is_dnd=1 if status == "DND" else 0)
    cdr("account_1", base, "ANSWER")  # outside the campaign
    inner = ok_body(api.post("/api/get_campaign_cdr_statistics", {"campaign_id": f" {campaign_id} "}))
    assert set(inner["result"]) == STAT_KEYS | {"dnd_calls"}
    assert inner["result"] == _recount("account_1", campaign_id)
    assert inner["result"]["dnd_calls"] == [4]
    assert inner["result"]["total_calls"] == [len(MIX) + 4]
    # the account-wide counters include the campaign's calls
    assert ok_body(api.get("/api/get_cdr_statistics"))["result"] == _recount("account_1")


def test_campaign_statistics_zero(api):
    campaign_id = make_campaign(api)
    inner = ok_body(api.post("/api/get_campaign_cdr_statistics", {"campaign_id": campaign_id}))
    assert inner["result"] == {k: [0] for k in STAT_KEYS | {"dnd_calls"}}


def test_campaign_statistics_of_another_account_is_404(api, other):
    campaign_id = make_campaign(api)
    cdr("account_1", datetime(2023, 7, 18, 6, 0, 0), campaign_id=campaign_id)
    error_body(other.post("/api/get_campaign_cdr_statistics", {"campaign_id": campaign_id}), 404, "campaign_id")
    error_body(api.post("/api/get_campaign_cdr_statistics", {"campaign_id": "CM0123456789"}), 404, "campaign_id")
    error_body(api.post("/api/get_campaign_cdr_statistics", {}), 400, "campaign_id")


def test_duplicate_event_is_written_once(api):
    record = dict(account_id=account_id("account_1"), request_id="91da7c083f", uniqueid="1688448695.804",
                  dial_status="ANSWER", call_date=datetime(2023, 7, 4, 5, 31, 51), destination_context="click2call",
                  call_direction="outbound-api", caller_id="15168148111", dialed_number="919979270001")
    assert write(CdrRecord(**record)) is not None
    assert write(CdrRecord(**record)) is None
    assert len(ok_body(api.post("/api/get_cdr_by_request_id", {"request_id": "91da7c083f"}))["result"]) == 1
    assert ok_body(api.get("/api/get_cdr_statistics"))["result"]["total_calls"] == [1]


# --- live call statistics ------------------------------------------------------------------

ZERO_LIVE = {"live_calls_c2c": 0, "live_calls_campaign": 0, "live_calls_inbound": 0, "live_calls_otp": 0}


def test_live_statistics_zero(api):
    inner = ok_body(api.get("/api/get_live_call_statistics"))
    assert inner == {"result": ZERO_LIVE, "success": "true"}


def test_live_statistics_count_calls_per_account(api, other, app):
    r = app.extensions["cpaas"].redis
    me, them = account_id("account_1"), account_id("account_2")
    legs = [
        live.LiveLeg("PJSIP/a-1", me, "c2c0000001", "c2c", "agent", "919979270001"),
        live.LiveLeg("PJSIP/a-2", me, "c2c0000001", "c2c", "customer", "918000680001"),  # same call
        live.LiveLeg("PJSIP/a-3", me, "cb00000001", "callback", "agent", "919979270002"),
        live.LiveLeg("PJSIP/a-4", me, "otp0000001", "otp", "customer", "919979270003"),
        live.LiveLeg("PJSIP/a-5", me, "otp0000002", "otp", "customer", "919979270004"),
        live.LiveLeg("PJSIP/a-6", me, "cmp0000001", "campaign", "contact", "919979270005"),
        live.LiveLeg("PJSIP/b-1", them, "c2c0000009", "c2c", "agent", "919979270009"),
    ]
    for leg in legs:
        live.put(r, leg)
    assert ok_body(api.get("/api/get_live_call_statistics"))["result"] == {
        "live_calls_c2c": 2, "live_calls_campaign": 1, "live_calls_inbound": 0, "live_calls_otp": 2}
    assert ok_body(other.get("/api/get_live_call_statistics"))["result"] == {**ZERO_LIVE, "live_calls_c2c": 1}
    for leg in legs[:3]:
        live.remove(r, leg.channel, leg.account_id)
    assert ok_body(api.get("/api/get_live_call_statistics"))["result"] == {
        "live_calls_c2c": 0, "live_calls_campaign": 1, "live_calls_inbound": 0, "live_calls_otp": 2}
