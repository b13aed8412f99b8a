"""create_campaign, get_campaign_details and stop_campaign (/api/stop_campaign and /stop_campaign)."""
from __future__ import annotations

import re
from datetime import datetime

import pytest

from cpaas.db import database
from cpaas.models import Campaign
from tests.api.helpers import (campaign_body, clean_bucket, error_body, make_campaign,  # noqa: F401
                               make_dnd_list, make_list, ok_body, upload, wav_bytes)

pytestmark = pytest.mark.usefixtures("clean_bucket")

SPEC_DETAIL_KEYS = {"calls_per_minute", "campaign_caller_id", "campaign_end_date", "campaign_id",
                    "campaign_name", "campaign_start_date", "campaign_status", "campaign_type",
                    "max_retries", "repeat_announcement_count", "retry_time"}


def stored(campaign_id: str) -> Campaign:
    with database.connection_context():
        return Campaign.get_by_id(campaign_id)


def campaign_count() -> int:
    with database.connection_context():
        return Campaign.select().count()


def create(client, **overrides):
    list_id = overrides.pop("list_id", None) or make_list(client)
    return client.post("/api/create_campaign", campaign_body(list_id, **overrides))


def details(client) -> list[dict]:
    return ok_body(client.get("/api/get_campaign_details"))["result"]


# --- create_campaign ------------------------------------------------------------------

def test_create_campaign_spec_example_stores_every_field(api):
    list_id, dnd = make_list(api), make_dnd_list(api)
    inner = ok_body(api.post("/api/create_campaign", campaign_body(list_id, dnd)))
    assert set(inner) == {"campaign_id", "success", "tts_engine_used"}
    assert inner["tts_engine_used"] == "standard"  # the example asks for no engine type
    assert re.fullmatch(r"CM[0-9a-f]{10}", inner["campaign_id"])
    row = stored(inner["campaign_id"])
    assert (row.name, row.list_id, row.dnd_list_id) == ("test_broadcast_campaign", list_id, dnd)
    assert (row.campaign_type, row.caller_id, row.dynamic_announcement) == (0, "15168148111", 1)
    assert row.announcement_text.startswith("Dear, {field1}")
    # 2023-09-25 14:05 in Asia/Kolkata (UTC+5:30) is 08:35 UTC.
    assert row.start_at == datetime(2023, 9, 25, 8, 35)
    assert row.end_at == datetime(2023, 9, 26, 14, 30)
    assert row.time_zone == "Asia/Kolkata"
    assert (row.repeat_count, row.max_retries, row.retry_time, row.calls_per_minute) == (2, 1, 60, 10)
    assert (row.voice, row.volume, row.rate, row.pitch) == ("Matthew", "soft", "slow", "medium")
    assert (row.language_code, row.tts_engine_type) == ("en-US", "standard")
    assert row.retry_on_statuses == "NOANSWER,BUSY"
    assert row.status == 0


def test_defaults(api):
    list_id = make_list(api)
    body = {"list_id": list_id, "campaign_name": "minimal", "campaign_type": "1",
            "campaign_caller_id": "+15168148111", "announcement_text": "hello",
            "campaign_start_date": "2023-12-18 10:00:00", "campaign_end_date": "2023-12-18 20:00:00"}
    row = stored(ok_body(api.post("/api/create_campaign", body))["campaign_id"])
    assert row.dnd_list_id is None
    assert row.caller_id == "15168148111"
    assert (row.time_zone, row.start_at) == ("UTC", datetime(2023, 12, 18, 10, 0))
    assert (row.dynamic_announcement, row.repeat_count, row.max_retries) == (1, 1, 0)
    assert (row.retry_time, row.calls_per_minute) == (60, 10)
    assert (row.voice, row.volume, row.rate, row.pitch, row.language_code, row.tts_engine_type) == \
        ("Joanna", "medium", "medium", "medium", "en-US", "standard")


def test_ivr_example_date_without_space(api):
    row = stored(ok_body(create(api, campaign_start_date="2023-12-1810:00:00",
                                campaign_end_date="2023-12-18 20:00:00"))["campaign_id"])
    assert row.start_at == datetime(2023, 12, 18, 4, 30)


@pytest.mark.parametrize("start,end,utc_start", [
    ("2023-07-11T14:30:00", "2023-07-12T14:30:00", datetime(2023, 7, 11, 9, 0)),       # zone applies
    ("2023-07-11T09:00:00Z", "2023-07-12T09:00:00Z", datetime(2023, 7, 11, 9, 0)),     # explicit UTC
    ("2023-07-11T12:00:00+03:00", "2023-07-12T09:00:00Z", datetime(2023, 7, 11, 9, 0)),
])
def test_iso_8601_dates(api, start, end, utc_start):
    row = stored(ok_body(create(api, campaign_start_date=start, campaign_end_date=end))["campaign_id"])
    assert row.start_at == utc_start


def test_numbers_as_json_numbers(api):
    row = stored(ok_body(create(api, campaign_type=1, dynamic_announcement=1, repeat=3, max_retries=2,
                                retry_time=120, calls_per_minute=30,
                                campaign_caller_id=15168148111))["campaign_id"])
    assert (row.campaign_type, row.repeat_count, row.max_retries, row.retry_time, row.calls_per_minute) == \
        (1, 3, 2, 120, 30)
    assert row.caller_id == "15168148111"


def test_table_spellings_repeat_count_and_retry_attempts(api):
    row = stored(ok_body(create(api, repeat=None, max_retries=None, repeat_count="4",
                                retry_attempts="3"))["campaign_id"])
    assert (row.repeat_count, row.max_retries) == (4, 3)


def test_both_spellings_agreeing_are_accepted(api):
    row = stored(ok_body(create(api, repeat="2", repeat_count=2, max_retries="1",
                                retry_attempts="1"))["campaign_id"])
    assert (row.repeat_count, row.max_retries) == (2, 1)


@pytest.mark.parametrize("overrides,field", [
    ({"repeat": "2", "repeat_count": "3"}, "repeat_count"),
    ({"max_retries": "1", "retry_attempts": "2"}, "retry_attempts"),
])
def test_both_spellings_disagreeing_is_400(api, overrides, field):
    error_body(create(api, **overrides), 400, field)
    assert campaign_count() == 0


def test_retry_on_statuses_list_or_string(api, subtests):
    list_id = make_list(api)
    for i, (value, expected) in enumerate([
        ("NOANSER, BUSY", "NOANSWER,BUSY"),
        (["NOANSWER", "CONGESTION"], "NOANSWER,CONGESTION"),
        ("busy", "BUSY"),
        (["NOANSER", "NOANSWER"], "NOANSWER"),
        ("CHANUNAVAIL,CANCEL,", "CHANUNAVAIL,CANCEL"),
    ]):
        with subtests.test(value=value):
            row = stored(ok_body(create(api, list_id=list_id, campaign_name=f"c{i}",
                                        retry_on_statuses=value))["campaign_id"])
            assert row.retry_on_statuses == expected


def test_invalid_retry_on_statuses(api, subtests):
    list_id = make_list(api)
    for value in ["RINGING", "", [], ["BUSY", 1], 5, {"a": "BUSY"}, "NO ANSWER"]:
        with subtests.test(value=value):
            error_body(create(api, list_id=list_id, retry_on_statuses=value), 400, "retry_on_statuses")
    assert campaign_count() == 0


def test_hyphenated_prosody_values_are_accepted(api, subtests):
    list_id = make_list(api)
    for i, (field, value) in enumerate([("volume", "x-soft"), ("volume", "x-loud"), ("volume", "silent"),
                                        ("rate", "x-slow"), ("rate", "x-fast"), ("pitch", "x-low"),
                                        ("pitch", "x-high"), ("tts_engine_type", "neural")]):
        with subtests.test(field=field, value=value):
            row = stored(ok_body(create(api, list_id=list_id, campaign_name=f"c{i}",
                                        **{field: value}))["campaign_id"])
            assert getattr(row, field) == value


def test_line_wrapped_or_unknown_prosody_values_are_400(api, subtests):
    list_id = make_list(api)
    for field, value in [("volume", "x- soft"), ("volume", "x- loud"), ("volume", "LOUD"),
                         ("rate", "x- fast"), ("rate", "x- slow"), ("pitch", "x- low"),
                         ("pitch", "x- high"), ("tts_engine_type", "generative"), ("volume", "")]:
        with subtests.test(field=field, value=value):
            error_body(create(api, list_id=list_id, **{field: value}), 400, field)
    assert campaign_count() == 0


def test_unknown_voice_is_400(api):
    inner = error_body(create(api, voice="Robot"), 400, "voice")
    assert "Joanna" in inner["errors"]["voice"][0]


def test_unknown_language_code_is_400(api):
    error_body(create(api, language_code="xx-XX"), 400, "language_code")


VALIDATION_CASES = [
    ({"campaign_type": "2"}, "campaign_type"),
    ({"campaign_type": None}, "campaign_type"),
    ({"dynamic_announcement": "2"}, "dynamic_announcement"),
    ({"campaign_caller_id": "1516814811X"}, "campaign_caller_id"),
    ({"campaign_caller_id": "123"}, "campaign_caller_id"),
    ({"campaign_name": ""}, "campaign_name"),
    ({"campaign_name": "n" * 101}, "campaign_name"),
    ({"announcement_text": ""}, "announcement_text"),
    ({"announcement_text": "t" * 2001}, "announcement_text"),
    ({"announcement_text": "bell\x07"}, "announcement_text"),
    ({"dynamic_announcement": "0", "recorded_filename": ""}, "recorded_filename"),
    ({"campaign_start_date": "25/09/2023 14:05"}, "campaign_start_date"),
    ({"campaign_start_date": "2023-02-30 10:00:00"}, "campaign_start_date"),
    ({"campaign_end_date": "tomorrow"}, "campaign_end_date"),
    ({"campaign_end_date": "2023-09-25 14:05:00"}, "campaign_end_date"),   # equal to start
    ({"campaign_end_date": "2023-09-24 20:00:00"}, "campaign_end_date"),   # before start
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"time_zone": ""}, "time_zone"),
    ({"repeat": "0"}, "repeat"),
    ({"repeat": "11"}, "repeat"),
    ({"repeat": "two"}, "repeat"),
    ({"max_retries": "-1"}, "max_retries"),
    ({"retry_time": "0"}, "retry_time"),
    ({"retry_time": 1.5}, "retry_time"),
    ({"calls_per_minute": "0"}, "calls_per_minute"),
    ({"calls_per_minute": True}, "calls_per_minute"),
    ({"dnd_list_id": "LS0123456789"}, "dnd_list_id"),
    ({"list_id": "DN0123456789"}, "list_id"),
    ({"colour": "blue"}, "colour"),
]


def test_validation(api, subtests):
    list_id = make_list(api)
    for overrides, field in VALIDATION_CASES:
        with subtests.test(overrides=overrides):
            error_body(create(api, **{"list_id": list_id, **overrides}), 400, field)
    assert campaign_count() == 0


def test_numbers_with_spaces_are_trimmed(api):
    row = stored(ok_body(create(api, calls_per_minute=" 10 ", repeat="2 "))["campaign_id"])
    assert (row.calls_per_minute, row.repeat_count) == (10, 2)


def test_time_zone_changes_the_stored_utc_time(api):
    ny = stored(ok_body(create(api, campaign_name="ny", time_zone="America/New_York",
                               campaign_start_date="2023-07-11 05:00:00",
                               campaign_end_date="2023-07-11 06:00:00"))["campaign_id"])
    assert ny.start_at == datetime(2023, 7, 11, 9, 0)   # EDT is UTC-4 in July


def test_dates_out_of_range_are_400(api, subtests):
    list_id = make_list(api)
    for start, end, zone in [("0001-01-01 00:00:00", "2023-01-01 00:00:00", "Asia/Kolkata"),
                             ("2023-01-01 00:00:00", "9999-12-31 23:59:59", "America/New_York"),
                             ("0001-01-01T00:00:00+05:00", "2023-01-01T00:00:00", "UTC")]:
        with subtests.test(start=start, end=end, zone=zone):
            resp = create(api, list_id=list_id, campaign_start_date=start, campaign_end_date=end,
                          time_zone=zone)
            assert resp.status_code == 400, resp.data
    assert campaign_count() == 0


def test_duplicate_campaign_name_is_409(api, other):
    make_campaign(api, "same")
    list_id = make_list(api, "second")
    error_body(api.post("/api/create_campaign", campaign_body(list_id, campaign_name="same")), 409,
               "campaign_name")
    make_campaign(other, "same")  # other accounts may use it
    assert campaign_count() == 2


def test_unknown_list_is_404(api):
    error_body(create(api, list_id="LS0123456789"), 404, "list_id")


def test_other_accounts_list_is_404(api, other):
    theirs = make_list(other)
    error_body(create(api, list_id=theirs), 404, "list_id")
    assert campaign_count() == 0


def test_other_accounts_dnd_list_is_404(api, other):
    theirs = make_dnd_list(other)
    list_id = make_list(api)
    error_body(create(api, list_id=list_id, dnd_list_id=theirs), 404, "dnd_list_id")
    error_body(create(api, list_id=list_id, dnd_list_id="DN0123456789"), 404, "dnd_list_id")
    assert campaign_count() == 0


# --- recorded_filename ----------------------------------------------------------------

def test_recorded_file_must_be_an_uploaded_wav_of_the_account(api, other):
    ok_body(upload(api, "greeting.wav", wav_bytes()))
    row = stored(ok_body(create(api, dynamic_announcement="0", recorded_filename="greeting.wav",
                                announcement_text=""))["campaign_id"])
    assert (row.dynamic_announcement, row.recorded_filename) == (0, "greeting.wav")


def test_recorded_file_not_uploaded_is_404(api):
    error_body(create(api, dynamic_announcement="0", recorded_filename="missing.wav"), 404, "recorded_filename")


def test_recorded_file_of_another_account_is_404(api, other):
    ok_body(upload(other, "theirs.wav", wav_bytes()))
    error_body(create(api, dynamic_announcement="0", recorded_filename="theirs.wav"), 404, "recorded_filename")
    assert campaign_count() == 0


def test_recorded_file_must_be_a_wav(api):
    ok_body(upload(api, "list.csv", "contact_number\n919979270001\n"))
    error_body(create(api, dynamic_announcement="0", recorded_filename="list.csv"), 404, "recorded_filename")


def test_recorded_file_path_is_refused(api, other, subtests):
    ok_body(upload(other, "theirs.wav", wav_bytes()))
    list_id = make_list(api)
    for name in ["../account_2/files/theirs.wav", "/etc/x.wav", "a/b.wav", ".."]:
        with subtests.test(name=name):
            error_body(create(api, list_id=list_id, dynamic_announcement="0", recorded_filename=name),
                       400, "recorded_filename")
    assert campaign_count() == 0


# --- get_campaign_details -------------------------------------------------------------

def test_details_spec_shape_and_utc_dates(api):
    campaign_id = make_campaign(api, "test_broadcast_campaign_max", time_zone="Asia/Kolkata",
                                campaign_start_date="2023-07-11 14:30:00",
                                campaign_end_date="2023-07-13 01:30:00", repeat="3")
    inner = ok_body(api.get("/api/get_campaign_details"))
    assert inner["message"] == "campaign found"
    [row] = inner["result"]
    assert SPEC_DETAIL_KEYS <= set(row)
    # the spec's keys are strings; the dialer's progress and placeholder counts are
    # objects of strings (issue 9)
    assert all(isinstance(row[k], str) for k in SPEC_DETAIL_KEYS)
    assert all(isinstance(v, str) for k in ("progress", "placeholders_missing") for v in row[k].values())
    assert row["progress"]["total"] == row["progress"]["pending"] == "0"
    assert row["campaign_id"] == campaign_id
    assert row["campaign_name"] == "test_broadcast_campaign_max"
    assert row["campaign_start_date"] == "Tue, 11 Jul 2023 09:00:00 GMT"
    assert row["campaign_end_date"] == "Wed, 12 Jul 2023 20:00:00 GMT"
    assert (row["calls_per_minute"], row["campaign_caller_id"], row["campaign_status"],
            row["campaign_type"], row["max_retries"], row["repeat_announcement_count"],
            row["retry_time"]) == ("10", "15168148111", "0", "0", "1", "3", "60")


def test_details_only_list_own_campaigns(api, other):
    mine = {make_campaign(api, "a"), make_campaign(api, "b")}
    theirs = make_campaign(other, "c")
    assert {c["campaign_id"] for c in details(api)} == mine
    assert [c["campaign_id"] for c in details(other)] == [theirs]


def test_details_without_campaigns(api):
    inner = ok_body(api.get("/api/get_campaign_details"))
    assert inner["result"] == []
    assert inner["message"] == "no campaign found"


def test_details_with_json_content_type_and_no_body(api):
    resp = api.client.get("/api/get_campaign_details",
                          headers={**api.headers, "Content-Type": "application/json"})
    ok_body(resp)


# --- stop_campaign --------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/stop_campaign", "/stop_campaign"])
def test_stop_campaign(api, path):
    campaign_id = make_campaign(api)
    inner = ok_body(api.post(path, {"campaign_id": f" {campaign_id} "}))
    assert inner == {"message": "campaign stopped successfully", "success": "true"}
    assert stored(campaign_id).status == 2
    assert details(api)[0]["campaign_status"] == "2"


def test_stop_is_idempotent(api):
    campaign_id = make_campaign(api)
    ok_body(api.post("/api/stop_campaign", {"campaign_id": campaign_id}))
    ok_body(api.post("/stop_campaign", {"campaign_id": campaign_id}))
    assert stored(campaign_id).status == 2


def test_stop_running_campaign(api):
    campaign_id = make_campaign(api)
    with database.connection_context():
        Campaign.update(status=1).where(Campaign.id == campaign_id).execute()
    ok_body(api.post("/api/stop_campaign", {"campaign_id": campaign_id}))
    assert stored(campaign_id).status == 2


def test_stop_completed_campaign_is_409(api):
    campaign_id = make_campaign(api)
    with database.connection_context():
        Campaign.update(status=3).where(Campaign.id == campaign_id).execute()
    error_body(api.post("/api/stop_campaign", {"campaign_id": campaign_id}), 409, "campaign_id")
    assert stored(campaign_id).status == 3


@pytest.mark.parametrize("path", ["/api/stop_campaign", "/stop_campaign"])
def test_stop_other_accounts_campaign_is_404(api, other, path):
    campaign_id = make_campaign(api)
    inner = error_body(other.post(path, {"campaign_id": campaign_id}), 404, "campaign_id")
    assert inner["message"] == "campaign not found"
    error_body(other.post(path, {"campaign_id": "CM0123456789"}), 404, "campaign_id")
    assert stored(campaign_id).status == 0


@pytest.mark.parametrize("path", ["/api/stop_campaign", "/stop_campaign"])
def test_stop_validation(api, path, subtests):
    for body, field in [({}, "campaign_id"), ({"campaign_id": "LS0123456789"}, "campaign_id"),
                        ({"campaign_id": ""}, "campaign_id"), ({"campaign_id": "CM0123456789", "x": 1}, "x"),
                        ({"campaign_id": 5}, "campaign_id")]:
        with subtests.test(body=body):
            error_body(api.post(path, body), 400, field)


@pytest.mark.parametrize("path", ["/api/stop_campaign", "/stop_campaign"])
def test_stop_needs_auth(api, path):
    campaign_id = make_campaign(api)
    error_body(api.client.post(path, json={"campaign_id": campaign_id}), 401)
    error_body(api.client.post(path, json={"campaign_id": campaign_id},
                               headers={"account": "account_1", "auth": "wrong"}), 401)
    assert stored(campaign_id).status == 0
