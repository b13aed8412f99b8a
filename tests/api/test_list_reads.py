"""Reading back lists, contacts and DND entries, and removing them (paged like the CDR reads)."""
from __future__ import annotations

import pytest

from cpaas.db import database
from cpaas.models import Contact, ContactList, DndContact, DndList
from tests.api.helpers import (all_routes, error_body, make_campaign, make_dnd_list, make_list,
                               ok_body)

CONTACTS = [
    {"contact_name": "ankit", "contact_number": "919979270001",
     "contact_fields": {"field1": "Ankit", "field2": "Jayswal", "field3": "500"}},
    {"contact_name": "abc", "contact_number": "+918000680001",
     "contact_fields": {"field1": "abc", "field3": "100"}},
    {"contact_name": "", "contact_number": "14155550100"},
]
DND = [{"dnd_contact_name": "ankit", "dnd_contact_number": "919979270001"},
       {"dnd_contact_name": "abc", "dnd_contact_number": "918000680001"},
       {"dnd_contact_name": "", "dnd_contact_number": "+14155550100"}]

READS = ["/api/get_campaign_lists", "/api/get_list_contacts", "/api/get_dnd_lists",
         "/api/get_dnd_list_contacts"]
DELETES = ["/api/delete_contact_from_list", "/api/delete_dnd_contact_from_list",
           "/api/delete_campaign_list", "/api/delete_campaign_dnd_list"]


def filled_list(client, name: str = "my_campaign_list") -> str:
    list_id = make_list(client, name)
    ok_body(client.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": CONTACTS}))
    return list_id


def filled_dnd(client, name: str = "my_first_DND_list") -> str:
    dnd = make_dnd_list(client, name)
    ok_body(client.post("/api/add_dnd_contact_to_list", {"dnd_list_id": dnd, "dnd_contacts": DND}))
    return dnd


def rows(model, **where) -> int:
    with database.connection_context():
        query = model.select()
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return query.count()


# --- lists of lists ----------------------------------------------------------------------

def test_get_campaign_lists_shows_each_list_with_its_count(api, other):
    full = filled_list(api, "full")
    empty = make_list(api, "empty")
    make_list(other, "theirs")
    inner = ok_body(api.post("/api/get_campaign_lists", {}))
    assert inner["message"] == "list found"
    by_id = {row["list_id"]: row for row in inner["result"]}
    assert set(by_id) == {full, empty}
    assert by_id[full]["list_name"] == "full" and by_id[full]["contact_count"] == "3"
    assert by_id[empty]["contact_count"] == "0"
    assert by_id[full]["created_at"].endswith(" GMT")


def test_get_campaign_lists_of_an_account_without_lists(other, api):
    make_list(api, "mine")
    inner = ok_body(other.post("/api/get_campaign_lists", {}))
    assert inner == {"message": "no list found", "result": [], "success": "true"}


def test_get_campaign_lists_pages_in_creation_order(api):
    made = [make_list(api, f"list{i}") for i in range(5)]
    pages = [ok_body(api.post("/api/get_campaign_lists", {"record_count": "2", "offset": str(o)}))
             ["result"] for o in (0, 2, 4, 6)]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    assert [row["list_id"] for page in pages for row in page] == made


def test_get_dnd_lists_shows_each_list_with_its_count(api, other):
    dnd = filled_dnd(api)
    make_dnd_list(other, "theirs")
    inner = ok_body(api.post("/api/get_dnd_lists", {"record_count": 10}))
    assert inner["message"] == "DND list found"
    assert [(r["dnd_list_id"], r["dnd_list_name"], r["dnd_contact_count"]) for r in inner["result"]] \
        == [(dnd, "my_first_DND_list", "3")]
    assert ok_body(other.post("/api/get_dnd_lists", {}))["result"][0]["dnd_list_name"] == "theirs"


# --- a list's entries ---------------------------------------------------------------------

def test_get_list_contacts_returns_what_was_stored(api):
    list_id = filled_list(api)
    inner = ok_body(api.post("/api/get_list_contacts", {"list_id": list_id}))
    assert inner["message"] == "contact found"
    assert inner["result"] == [
        {"contact_name": "ankit", "contact_number": "919979270001",
         "contact_fields": {"field1": "Ankit", "field2": "Jayswal", "field3": "500"}},
        {"contact_name": "abc", "contact_number": "918000680001",
         "contact_fields": {"field1": "abc", "field3": "100"}},
        {"contact_name": "", "contact_number": "14155550100", "contact_fields": {}},
    ]


def test_get_list_contacts_pages(api):
    list_id = filled_list(api)
    numbers = []
    for offset in range(0, 4):
        page = ok_body(api.post("/api/get_list_contacts", {"list_id": list_id, "record_count": 1,
                                                          "offset": offset}))["result"]
        numbers += [c["contact_number"] for c in page]
    assert numbers == ["919979270001", "918000680001", "14155550100"]
    empty = ok_body(api.post("/api/get_list_contacts", {"list_id": list_id, "offset": 3}))
    assert empty["message"] == "no contact found" and empty["result"] == []


def test_get_dnd_list_contacts_returns_what_was_stored(api):
    dnd = filled_dnd(api)
    inner = ok_body(api.post("/api/get_dnd_list_contacts", {"dnd_list_id": dnd, "record_count": "2"}))
    assert inner["message"] == "DND contact found"
    first = inner["result"]
    rest = ok_body(api.post("/api/get_dnd_list_contacts",
                            {"dnd_list_id": dnd, "record_count": "2", "offset": "2"}))["result"]
    assert len(first) == 2 and len(rest) == 1
    assert sorted((c["dnd_contact_number"], c["dnd_contact_name"]) for c in first + rest) == [
        ("14155550100", ""), ("918000680001", "abc"), ("919979270001", "ankit")]


# --- removing -----------------------------------------------------------------------------

def test_delete_contact_from_list(api):
    list_id = filled_list(api)
    inner = ok_body(api.post("/api/delete_contact_from_list",
                             {"list_id": list_id, "contact_number": "+918000680001"}))
    assert inner == {"message": "contact deleted successfully", "success": "true"}
    left = ok_body(api.post("/api/get_list_contacts", {"list_id": list_id}))["result"]
    assert [c["contact_number"] for c in left] == ["919979270001", "14155550100"]
    error_body(api.post("/api/delete_contact_from_list",
                        {"list_id": list_id, "contact_number": "918000680001"}), 404, "contact_number")


def test_delete_dnd_contact_from_list(api):
    dnd = filled_dnd(api)
    ok_body(api.post("/api/delete_dnd_contact_from_list",
                     {"dnd_list_id": dnd, "dnd_contact_number": "14155550100"}))
    assert rows(DndContact, dnd_list_id=dnd) == 2
    error_body(api.post("/api/delete_dnd_contact_from_list",
                        {"dnd_list_id": dnd, "dnd_contact_number": "14155550100"}), 404,
               "dnd_contact_number")


def test_delete_campaign_list_removes_it_and_its_contacts(api):
    list_id = filled_list(api)
    kept = filled_list(api, "kept")
    inner = ok_body(api.post("/api/delete_campaign_list", {"list_id": list_id}))
    assert inner == {"message": "list deleted successfully", "success": "true"}
    assert rows(Contact, list_id=list_id) == 0 and rows(ContactList, id=list_id) == 0
    assert rows(Contact, list_id=kept) == 3
    error_body(api.post("/api/get_list_contacts", {"list_id": list_id}), 404, "list_id")
    error_body(api.post("/api/delete_campaign_list", {"list_id": list_id}), 404, "list_id")
    make_list(api, "my_campaign_list")  # the name is free again


def test_delete_campaign_dnd_list_removes_it_and_its_entries(api):
    dnd = filled_dnd(api)
    ok_body(api.post("/api/delete_campaign_dnd_list", {"dnd_list_id": dnd}))
    assert rows(DndContact, dnd_list_id=dnd) == 0 and rows(DndList, id=dnd) == 0
    error_body(api.post("/api/get_dnd_list_contacts", {"dnd_list_id": dnd}), 404, "dnd_list_id")


def test_a_list_a_campaign_uses_cannot_be_deleted(api):
    list_id = filled_list(api)
    dnd = filled_dnd(api)
    campaign = make_campaign(api, list_id=list_id, dnd_list_id=dnd)
    inner = error_body(api.post("/api/delete_campaign_list", {"list_id": list_id}), 409, "list_id")
    assert campaign in inner["errors"]["list_id"][0]
    error_body(api.post("/api/delete_campaign_dnd_list", {"dnd_list_id": dnd}), 409, "dnd_list_id")
    assert rows(Contact, list_id=list_id) == 3 and rows(DndContact, dnd_list_id=dnd) == 3
    # Its entries may still be removed one by one.
    ok_body(api.post("/api/delete_contact_from_list",
                     {"list_id": list_id, "contact_number": "14155550100"}))


# --- tenancy and validation -------------------------------------------------------------

def test_another_accounts_ids_are_404_everywhere(api, other):
    list_id, dnd = filled_list(api), filled_dnd(api)
    calls = [
        ("/api/get_list_contacts", {"list_id": list_id}, "list_id"),
        ("/api/get_dnd_list_contacts", {"dnd_list_id": dnd}, "dnd_list_id"),
        ("/api/delete_contact_from_list", {"list_id": list_id, "contact_number": "919979270001"},
         "list_id"),
        ("/api/delete_dnd_contact_from_list",
         {"dnd_list_id": dnd, "dnd_contact_number": "919979270001"}, "dnd_list_id"),
        ("/api/delete_campaign_list", {"list_id": list_id}, "list_id"),
        ("/api/delete_campaign_dnd_list", {"dnd_list_id": dnd}, "dnd_list_id"),
    ]
    for path, payload, field in calls:
        error_body(other.post(path, payload), 404, field)
    assert rows(Contact, list_id=list_id) == 3 and rows(DndContact, dnd_list_id=dnd) == 3
    assert rows(ContactList, id=list_id) == 1 and rows(DndList, id=dnd) == 1


@pytest.mark.parametrize("payload, field", [
    ({"record_count": "0"}, "record_count"), ({"record_count": 5001}, "record_count"),
    ({"offset": -1}, "offset"), ({"offset": "x"}, "offset"), ({"list_id": "LS1"}, "list_id"),
    ({"list_id": "DN0123456789"}, "list_id"), ({"extra": 1}, "extra"),
])
def test_bad_paging_or_ids_are_400(api, payload, field):
    list_id = make_list(api)
    body = {"list_id": list_id, **payload}
    error_body(api.post("/api/get_list_contacts", body), 400, field)


@pytest.mark.parametrize("path, payload, field", [
    ("/api/delete_contact_from_list", {"list_id": "LS0123456789"}, "contact_number"),
    ("/api/delete_contact_from_list", {"list_id": "LS0123456789", "contact_number": "12"},
     "contact_number"),
    ("/api/delete_dnd_contact_from_list", {"dnd_list_id": "LS0123456789",
                                           "dnd_contact_number": "919979270001"}, "dnd_list_id"),
    ("/api/delete_campaign_list", {}, "list_id"),
    ("/api/delete_campaign_dnd_list", {"dnd_list_id": ""}, "dnd_list_id"),
    ("/api/get_campaign_lists", {"list_id": "LS0123456789"}, "list_id"),
])
def test_bad_delete_bodies_are_400(api, path, payload, field):
    error_body(api.post(path, payload), 400, field)


def test_new_endpoints_are_in_the_openapi_document(app):
    doc = app.test_client().get("/api/openapi.json").get_json()
    documented = {r.path for r in all_routes()}
    for path in READS + DELETES:
        assert path in documented and "post" in doc["paths"][path], path
    schema = doc["paths"]["/api/get_list_contacts"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert set(schema["properties"]) == {"list_id", "record_count", "offset"}
    assert schema["required"] == ["list_id"] and schema["additionalProperties"] is False
