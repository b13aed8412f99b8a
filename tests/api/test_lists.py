"""create_campaign_list and add_contact_to_list."""
from __future__ import annotations

import json
import re

import pytest

from cpaas.db import database
from cpaas.models import Contact, ContactList
from tests.api.helpers import error_body, make_list, ok_body

SPEC_CONTACTS = [
    {"contact_name": "ankit", "contact_number": "919979270001",
     "contact_fields": {"field1": "Ankit", "field2": "Jayswal", "field3": "500"}},
    {"contact_name": "abc", "contact_number": "918000680001",
     "contact_fields": {"field1": "abc", "field2": "xyz", "field3": "100"}},
]


def contacts_of(list_id: str) -> dict[str, tuple[str, dict]]:
    with database.connection_context():
        return {c.number: (c.name, json.loads(c.fields))
                for c in Contact.select().where(Contact.list_id == list_id)}


def list_count() -> int:
    with database.connection_context():
        return ContactList.select().count()


# --- create_campaign_list -------------------------------------------------------------

def test_create_list_returns_list_id(api):
    inner = ok_body(api.post("/api/create_campaign_list", {"list_name": "my_campaign_list"}))
    assert set(inner) == {"list_id", "success"}
    assert re.fullmatch(r"LS[0-9a-f]{10}", inner["list_id"])
    with database.connection_context():
        row = ContactList.get_by_id(inner["list_id"])
    assert row.name == "my_campaign_list"


def test_list_ids_are_random(api):
    ids = {make_list(api, f"list{i}") for i in range(5)}
    assert len(ids) == 5


def test_duplicate_list_name_is_409(api):
    make_list(api, "dup")
    inner = error_body(api.post("/api/create_campaign_list", {"list_name": "dup"}), 409, "list_name")
    assert "already exists" in inner["message"]
    assert list_count() == 1


def test_list_name_is_trimmed_for_uniqueness(api):
    make_list(api, "dup")
    error_body(api.post("/api/create_campaign_list", {"list_name": "  dup "}), 409, "list_name")


def test_same_list_name_in_another_account_is_fine(api, other):
    make_list(api, "shared")
    make_list(other, "shared")
    assert list_count() == 2


def test_invalid_list_name_is_400(api, subtests):
    for value in [None, "", "   ", "x" * 101, ["a"], {"a": 1}, "bad\x00name", "line\nbreak"]:
        with subtests.test(value=value):
            error_body(api.post("/api/create_campaign_list", {"list_name": value}), 400, "list_name")
    assert list_count() == 0


def test_list_name_unknown_field_is_400(api):
    inner = error_body(api.post("/api/create_campaign_list", {"list_name": "a", "extra": 1}), 400, "extra")
    assert "extra" in inner["message"]
    assert list_count() == 0


def test_list_name_max_length_accepted(api):
    make_list(api, "n" * 100)


# --- add_contact_to_list --------------------------------------------------------------

def test_add_contacts_spec_example(api):
    list_id = make_list(api)
    inner = ok_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": SPEC_CONTACTS}))
    assert inner == {"message": "(2) contacts imported successfully", "success": "true"}
    assert contacts_of(list_id) == {
        "919979270001": ("ankit", {"field1": "Ankit", "field2": "Jayswal", "field3": "500"}),
        "918000680001": ("abc", {"field1": "abc", "field2": "xyz", "field3": "100"}),
    }


def test_list_id_with_spaces_is_trimmed(api):
    list_id = make_list(api)
    inner = ok_body(api.post("/api/add_contact_to_list",
                             {"list_id": f" {list_id} ", "contacts": SPEC_CONTACTS[:1]}))
    assert inner["message"] == "(1) contacts imported successfully"


def test_plus_and_plain_number_are_the_same_contact(api):
    list_id = make_list(api)
    contacts = [{"contact_name": "a", "contact_number": "+919979270001", "contact_fields": {"f1": "x"}},
                {"contact_number": "919979270001", "contact_fields": {"f2": "y"}}]
    inner = ok_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": contacts}))
    assert inner["message"] == "(1) contacts imported successfully"
    # Merged: the name is kept, fields combined.
    assert contacts_of(list_id) == {"919979270001": ("a", {"f1": "x", "f2": "y"})}


def test_duplicate_in_request_later_wins(api):
    list_id = make_list(api)
    contacts = [{"contact_name": "old", "contact_number": "919979270001", "contact_fields": {"f": "1"}},
                {"contact_name": "new", "contact_number": "+919979270001", "contact_fields": {"f": "2"}}]
    ok_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": contacts}))
    assert contacts_of(list_id) == {"919979270001": ("new", {"f": "2"})}


def test_adding_an_existing_number_updates_it(api):
    list_id = make_list(api)
    ok_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": SPEC_CONTACTS}))
    again = [{"contact_name": "ankit2", "contact_number": "+919979270001", "contact_fields": {"f": "z"}}]
    inner = ok_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": again}))
    assert inner["message"] == "(1) contacts imported successfully"
    stored = contacts_of(list_id)
    assert len(stored) == 2
    assert stored["919979270001"][0] == "ankit2"


def test_same_number_in_two_lists_is_two_contacts(api):
    a, b = make_list(api, "a"), make_list(api, "b")
    for list_id in (a, b):
        ok_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": SPEC_CONTACTS[:1]}))
    assert len(contacts_of(a)) == 1 and len(contacts_of(b)) == 1


def test_numbers_as_json_numbers_and_field_values_as_numbers(api):
    list_id = make_list(api)
    contacts = [{"contact_number": 919979270001, "contact_fields": {"amount": 500, "rate": 1.5}}]
    ok_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": contacts}))
    assert contacts_of(list_id) == {"919979270001": ("", {"amount": "500", "rate": "1.5"})}


def test_contact_name_and_fields_are_optional(api):
    list_id = make_list(api)
    ok_body(api.post("/api/add_contact_to_list",
                     {"list_id": list_id, "contacts": [{"contact_number": "12345678"}]}))
    assert contacts_of(list_id) == {"12345678": ("", {})}


def test_one_bad_contact_stores_nothing(api):
    list_id = make_list(api)
    contacts = SPEC_CONTACTS + [{"contact_name": "bad", "contact_number": "91997927XXXX"}]
    inner = error_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": contacts}),
                       400, "contacts")
    assert "contact_number" in inner["errors"]["contacts"]["2"]
    assert contacts_of(list_id) == {}


def test_invalid_contact_number_is_400(api, subtests):
    list_id = make_list(api)
    for number in ["91997927XXXX", "1234567", "1234567890123456", "+", "", "91 9979270001",
                   "++919979270001", "9199792700\n01", "919979270001\n", "919979270001\x00",
                   "-919979270001", "٩١٩٩٧٩٢٧٠٠٠١", None, 12.5, True]:
        with subtests.test(number=number):
            resp = api.post("/api/add_contact_to_list",
                            {"list_id": list_id, "contacts": [{"contact_number": number}]})
            inner = error_body(resp, 400, "contacts")
            assert "contact_number" in inner["errors"]["contacts"]["0"]
    assert contacts_of(list_id) == {}


@pytest.mark.parametrize("number,stored", [("12345678", "12345678"), ("+123456789012345", "123456789012345")])
def test_contact_number_length_bounds(api, number, stored):
    list_id = make_list(api)
    ok_body(api.post("/api/add_contact_to_list",
                     {"list_id": list_id, "contacts": [{"contact_number": number}]}))
    assert list(contacts_of(list_id)) == [stored]


def test_invalid_contact_fields_are_400(api, subtests):
    list_id = make_list(api)
    for fields in ["a string", ["a"], {"k": {"nested": 1}}, {"k": ["x"]}, {"k": None}, {"k": True},
                   {"": "v"}, {"k" * 65: "v"}, {"k": "v" * 501}, {"k": "bad\x07"},
                   {f"f{i}": "v" for i in range(51)}]:
        with subtests.test(fields=str(fields)[:60]):
            resp = api.post("/api/add_contact_to_list",
                            {"list_id": list_id, "contacts": [{"contact_number": "919979270001",
                                                               "contact_fields": fields}]})
            inner = error_body(resp, 400, "contacts")
            assert "contact_fields" in inner["errors"]["contacts"]["0"]
    assert contacts_of(list_id) == {}


def test_contacts_must_be_a_non_empty_list(api, subtests):
    list_id = make_list(api)
    for contacts in [[], None, "919979270001", {"contact_number": "919979270001"}]:
        with subtests.test(contacts=contacts):
            error_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": contacts}),
                       400, "contacts")
    assert contacts_of(list_id) == {}


def test_too_many_contacts_in_one_request_is_400(api):
    list_id = make_list(api)
    contacts = [{"contact_number": str(10_000_000_000 + i)} for i in range(10_001)]
    error_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": contacts}),
               400, "contacts")
    assert contacts_of(list_id) == {}


def test_unknown_contact_key_is_400(api):
    list_id = make_list(api)
    resp = api.post("/api/add_contact_to_list",
                    {"list_id": list_id, "contacts": [{"contact_number": "919979270001", "email": "x"}]})
    inner = error_body(resp, 400, "contacts")
    assert "email" in inner["errors"]["contacts"]["0"]


def test_missing_fields_are_named(api):
    inner = error_body(api.post("/api/add_contact_to_list", {}), 400)
    assert {"list_id", "contacts"} <= set(inner["errors"])


def test_malformed_list_id_is_400(api, subtests):
    for list_id in ["", "LS123", "XX0123456789", "LS0123456789abc", "LSZZZZZZZZZZ", "LS01234567 89", 123]:
        with subtests.test(list_id=list_id):
            error_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": SPEC_CONTACTS}),
                       400, "list_id")


def test_unknown_list_is_404(api):
    inner = error_body(api.post("/api/add_contact_to_list",
                                {"list_id": "LS0123456789", "contacts": SPEC_CONTACTS}), 404, "list_id")
    assert inner["message"] == "list not found"


def test_other_accounts_list_is_404_and_untouched(api, other):
    list_id = make_list(api)
    resp = other.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": SPEC_CONTACTS})
    inner = error_body(resp, 404, "list_id")
    unknown = error_body(other.post("/api/add_contact_to_list",
                                    {"list_id": "LS0123456789", "contacts": SPEC_CONTACTS}), 404)
    assert inner == unknown  # exactly as when it does not exist
    assert contacts_of(list_id) == {}
