"""/api/callback: POST, GET, PATCH, DELETE."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from cpaas.db import database
from cpaas.models import Callback
from tests.api.helpers import error_body, future_local, ok_body

#: A time far enough ahead to be in the future in every zone.
LATER = future_local(hours=24 * 30)
LATER_DT = datetime.strptime(LATER, "%Y-%m-%d %H:%M:%S")


def spec_body(**overrides):
    data = {"agent_number": "919979270001", "caller_id": "15168148111",
            "destination_number": "918000680001", "recording_option": "off",
            "time_zone": "Asia/Kolkata", "scheduled_at": LATER}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def create(client, **overrides) -> str:
    return ok_body(client.post("/api/callback", spec_body(**overrides)))["request_id"]


def row(request_id: str) -> Callback | None:
    with database.connection_context():
        return Callback.get_or_none(Callback.id == request_id)


def count() -> int:
    with database.connection_context():
        return Callback.select().count()


def read(client, request_id: str) -> dict:
    return ok_body(client.get(f"/api/callback?request_id={request_id}"))["result"]


def test_create_spec_example_stores_utc_and_zone(api):
    inner = ok_body(api.post("/api/callback", spec_body()))
    assert set(inner) == {"request_id", "success"}
    assert re.fullmatch(r"[0-9a-f]{10}", inner["request_id"])
    stored = row(inner["request_id"])
    assert stored.scheduled_at == LATER_DT - timedelta(hours=5, minutes=30)
    assert (stored.time_zone, stored.status, stored.fired_at) == ("Asia/Kolkata", "scheduled", None)
    assert (stored.agent_number, stored.caller_id, stored.destination_number, stored.recording_option) == \
        ("919979270001", "15168148111", "918000680001", "off")


def test_get_returns_it_in_its_zone(api):
    request_id = create(api, agent_number="+919979270001")
    assert read(api, request_id) == {
        "request_id": request_id, "agent_number": "919979270001", "caller_id": "15168148111",
        "destination_number": "918000680001", "recording_option": "off", "transcript": "off",
        "time_zone": "Asia/Kolkata", "scheduled_at": LATER, "status": "scheduled", "fired_at": "",
    }


def test_get_trims_request_id(api):
    request_id = create(api)
    assert read(api, f"%20{request_id}%20")["request_id"] == request_id


def test_defaults_are_utc_and_recording_off(api):
    request_id = create(api, time_zone=None, recording_option=None)
    stored = row(request_id)
    assert (stored.time_zone, stored.recording_option) == ("UTC", "off")
    assert stored.scheduled_at == LATER_DT


def test_numbers_as_json_numbers(api):
    request_id = create(api, agent_number=919979270001, caller_id=15168148111)
    assert row(request_id).agent_number == "919979270001"


def test_past_time_is_400(api):
    error_body(api.post("/api/callback", spec_body(scheduled_at="2023-08-15 12:55:00")), 400, "scheduled_at")
    assert count() == 0


def test_future_is_judged_in_the_given_zone(api):
    # Two hours ahead as UTC wall time, but in Asia/Kolkata (UTC+5:30) that moment is past.
    soon_utc = future_local(hours=2)
    ok_body(api.post("/api/callback", spec_body(time_zone="UTC", scheduled_at=soon_utc)))
    error_body(api.post("/api/callback", spec_body(time_zone="Asia/Kolkata", scheduled_at=soon_utc)),
               400, "scheduled_at")
    # ...and in America/Los_Angeles (UTC-7/-8) a wall time one hour in the past is still ahead.
    ok_body(api.post("/api/callback", spec_body(time_zone="America/Los_Angeles",
                                                scheduled_at=future_local(hours=-1))))
    assert count() == 2


CREATE_CASES = [
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"time_zone": "asia/kolkata "}, "time_zone"),
    ({"time_zone": 5}, "time_zone"),
    ({"scheduled_at": "15/08/2030 12:55"}, "scheduled_at"),
    ({"scheduled_at": "2030-02-30 10:00:00"}, "scheduled_at"),
    ({"scheduled_at": "2030-08-15T12:55:00"}, "scheduled_at"),
    ({"scheduled_at": "9999-12-31 23:59:59", "time_zone": "America/New_York"}, "scheduled_at"),
    ({"scheduled_at": "9999-12-31 23:59:59", "time_zone": "UTC"}, "scheduled_at"),
    ({"scheduled_at": None}, "scheduled_at"),
    ({"agent_number": "91997927XXXX"}, "agent_number"),
    ({"agent_number": None}, "agent_number"),
    ({"caller_id": "+1 516 814 8111"}, "caller_id"),
    ({"destination_number": "1234567"}, "destination_number"),
    ({"recording_option": "both"}, "recording_option"),
    ({"recording_option": "ON"}, "recording_option"),
    ({"request_id": "0123456789"}, "request_id"),
    ({"transcript": "yes"}, "transcript"),
]


def test_create_validation(api, subtests):
    for overrides, field in CREATE_CASES:
        with subtests.test(overrides=overrides):
            error_body(api.post("/api/callback", spec_body(**overrides)), 400, field)
    assert count() == 0


def test_recording_on(api):
    assert row(create(api, recording_option="on")).recording_option == "on"


# --- PATCH ------------------------------------------------------------------------------

def test_patch_spec_example(api):
    request_id = create(api)
    new_time = future_local(hours=24 * 31, zone_offset_hours=5.5)
    inner = ok_body(api.patch("/api/callback", {
        "request_id": request_id, "agent_number": "919979270009", "caller_id": "15168148111",
        "destination_number": "918000680009", "recording_option": "on", "scheduled_at": new_time}))
    assert inner == {"message": "callback data modified successfully", "request_id": request_id,
                     "success": "true"}
    got = read(api, request_id)
    assert (got["agent_number"], got["destination_number"], got["recording_option"], got["scheduled_at"]) == \
        ("919979270009", "918000680009", "on", new_time)
    assert got["time_zone"] == "Asia/Kolkata"


def test_patch_changes_only_what_it_sends(api):
    request_id = create(api)
    before = read(api, request_id)
    ok_body(api.patch("/api/callback", {"request_id": request_id, "recording_option": "on"}))
    after = read(api, request_id)
    assert after == {**before, "recording_option": "on"}


def test_patch_with_only_request_id_changes_nothing(api):
    request_id = create(api)
    before = read(api, request_id)
    ok_body(api.patch("/api/callback", {"request_id": f" {request_id} "}))
    assert read(api, request_id) == before


def test_patch_zone_keeps_the_wall_clock_time(api):
    request_id = create(api)
    ok_body(api.patch("/api/callback", {"request_id": request_id, "time_zone": "UTC"}))
    got = read(api, request_id)
    assert (got["time_zone"], got["scheduled_at"]) == ("UTC", LATER)
    assert row(request_id).scheduled_at == LATER_DT


def test_patch_to_past_is_400_and_changes_nothing(api):
    request_id = create(api)
    before = read(api, request_id)
    resp = api.patch("/api/callback", {"request_id": request_id, "agent_number": "919979270009",
                                       "scheduled_at": "2023-08-16 09:00:02"})
    error_body(resp, 400, "scheduled_at")
    assert read(api, request_id) == before


def test_patch_zone_that_makes_it_past_is_400(api):
    request_id = create(api, time_zone="UTC", scheduled_at=future_local(hours=2))
    before = read(api, request_id)
    error_body(api.patch("/api/callback", {"request_id": request_id, "time_zone": "Asia/Kolkata"}),
               400, "scheduled_at")
    assert read(api, request_id) == before


def test_patch_validation(api, subtests):
    request_id = create(api)
    before = read(api, request_id)
    for patch, field in [({"agent_number": "abc"}, "agent_number"),
                         ({"recording_option": "both"}, "recording_option"),
                         ({"time_zone": "Nowhere/City"}, "time_zone"),
                         ({"scheduled_at": "soon"}, "scheduled_at"),
                         ({"scheduled_at": None}, "scheduled_at"),
                         ({"scheduled_at": "9999-12-31 23:59:59", "time_zone": "America/New_York"},
                          "scheduled_at"),
                         ({"destination_number": ""}, "destination_number"),
                         ({"status": "fired"}, "status"),
                         ({"agent_number": "919979270009", "caller_id": "x"}, "caller_id")]:
        with subtests.test(patch=patch):
            error_body(api.patch("/api/callback", {"request_id": request_id, **patch}), 400, field)
    assert read(api, request_id) == before


def test_patch_without_request_id_is_400(api):
    error_body(api.patch("/api/callback", {"agent_number": "919979270001"}), 400, "request_id")


@pytest.mark.parametrize("status", ["fired", "late"])
def test_patch_and_delete_after_it_fired_are_409(api, status):
    request_id = create(api)
    with database.connection_context():
        Callback.update(status=status).where(Callback.id == request_id).execute()
    error_body(api.patch("/api/callback", {"request_id": request_id, "recording_option": "on"}),
               409, "request_id")
    error_body(api.delete("/api/callback", {"request_id": request_id}), 409, "request_id")
    stored = row(request_id)
    assert stored is not None and stored.recording_option == "off"


def test_fired_callback_shows_fired_at(api):
    request_id = create(api)
    with database.connection_context():
        Callback.update(status="fired", fired_at=datetime(2030, 1, 2, 3, 4, 5)).where(
            Callback.id == request_id).execute()
    got = read(api, request_id)
    assert got["status"] == "fired"
    assert got["fired_at"].startswith("2030-01-02 03:04:05")


# --- DELETE -----------------------------------------------------------------------------

def test_delete_spec_example(api):
    request_id = create(api)
    inner = ok_body(api.delete("/api/callback", {"request_id": request_id}))
    assert inner == {"message": "callback request deleted successfully", "request_id": request_id,
                     "success": "true"}
    assert row(request_id) is None
    error_body(api.get(f"/api/callback?request_id={request_id}"), 404, "request_id")
    error_body(api.delete("/api/callback", {"request_id": request_id}), 404, "request_id")


def test_delete_validation(api):
    error_body(api.delete("/api/callback", {}), 400, "request_id")
    error_body(api.delete("/api/callback", {"request_id": "xyz"}), 400, "request_id")
    error_body(api.delete("/api/callback", {"request_id": "0123456789", "agent_number": "1"}), 400,
               "agent_number")


# --- GET --------------------------------------------------------------------------------

def test_get_validation(api, subtests):
    for query in ["", "?request_id=", "?request_id=CM0123456789", "?request_id=zzzzzzzzzz",
                  "?request_id=0123456789&x=1"]:
        with subtests.test(query=query):
            error_body(api.get(f"/api/callback{query}"), 400)


def test_get_unknown_is_404(api):
    error_body(api.get("/api/callback?request_id=0123456789"), 404, "request_id")


# --- tenancy ----------------------------------------------------------------------------

def test_other_account_gets_404_everywhere(api, other):
    request_id = create(api)
    before = read(api, request_id)
    unknown = error_body(other.get("/api/callback?request_id=0123456789"), 404)
    assert error_body(other.get(f"/api/callback?request_id={request_id}"), 404) == unknown
    error_body(other.patch("/api/callback", {"request_id": request_id, "recording_option": "on"}),
               404, "request_id")
    error_body(other.delete("/api/callback", {"request_id": request_id}), 404, "request_id")
    assert read(api, request_id) == before
