"""create_campaign_dnd_list and add_dnd_contact_to_list."""
from __future__ import annotations

import re

from cpaas.db import database
from cpaas.models import DndContact, DndList
from tests.api.helpers import error_body, make_dnd_list, make_list, ok_body

SPEC_DND = [{"dnd_contact_name": "ankit", "dnd_contact_number": "919979270001"},
            {"dnd_contact_name": "abc", "dnd_contact_number": "918000680001"}]


def dnd_of(dnd_list_id: str) -> dict[str, str]:
    with database.connection_context():
        return {c.number: c.name for c in DndContact.select().where(DndContact.dnd_list_id == dnd_list_id)}


def test_create_dnd_list(api):
    inner = ok_body(api.post("/api/create_campaign_dnd_list", {"dnd_list_name": "my_first_DND_list"}))
    assert set(inner) == {"dnd_list_id", "success"}
    assert re.fullmatch(r"DN[0-9a-f]{10}", inner["dnd_list_id"])
    with database.connection_context():
        assert DndList.get_by_id(inner["dnd_list_id"]).name == "my_first_DND_list"


def test_duplicate_dnd_list_name_is_409(api, other):
    make_dnd_list(api, "dnd")
    error_body(api.post("/api/create_campaign_dnd_list", {"dnd_list_name": "dnd"}), 409, "dnd_list_name")
    make_dnd_list(other, "dnd")  # another account may use the name
    with database.connection_context():
        assert DndList.select().count() == 2


def test_dnd_and_contact_list_names_are_separate(api):
    make_list(api, "same")
    make_dnd_list(api, "same")


def test_invalid_dnd_list_name_is_400(api, subtests):
    for value in [None, "", "  ", "d" * 101, ["x"], {"a": "b"}, "tab\there"]:
        with subtests.test(value=value):
            error_body(api.post("/api/create_campaign_dnd_list", {"dnd_list_name": value}), 400,
                       "dnd_list_name")
    with database.connection_context():
        assert DndList.select().count() == 0


def test_dnd_list_unknown_field_is_400(api):
    error_body(api.post("/api/create_campaign_dnd_list", {"dnd_list_name": "a", "list_name": "b"}),
               400, "list_name")


def test_add_dnd_contacts_spec_example(api):
    dnd = make_dnd_list(api)
    inner = ok_body(api.post("/api/add_dnd_contact_to_list", {"dnd_list_id": dnd, "dnd_contacts": SPEC_DND}))
    assert inner == {"message": "(2) DND contacts imported successfully", "success": "true"}
    assert dnd_of(dnd) == {"919979270001": "ankit", "918000680001": "abc"}


def test_plus_and_plain_number_are_the_same_dnd_entry(api):
    dnd = make_dnd_list(api)
    ok_body(api.post("/api/add_dnd_contact_to_list",
                     {"dnd_list_id": dnd, "dnd_contacts": [{"dnd_contact_number": "+919979270001"}]}))
    inner = ok_body(api.post("/api/add_dnd_contact_to_list",
                             {"dnd_list_id": dnd, "dnd_contacts": [{"dnd_contact_number": "919979270001",
                                                                    "dnd_contact_name": "n"},
                                                                   {"dnd_contact_number": 919979270001}]}))
    assert inner["message"] == "(1) DND contacts imported successfully"
    assert dnd_of(dnd) == {"919979270001": "n"}


def test_dnd_id_with_spaces_is_trimmed(api):
    dnd = make_dnd_list(api)
    ok_body(api.post("/api/add_dnd_contact_to_list", {"dnd_list_id": f"  {dnd} ", "dnd_contacts": SPEC_DND}))
    assert len(dnd_of(dnd)) == 2


def test_one_bad_dnd_number_stores_nothing(api):
    dnd = make_dnd_list(api)
    body = {"dnd_list_id": dnd, "dnd_contacts": SPEC_DND + [{"dnd_contact_number": "91800068XXXX"}]}
    inner = error_body(api.post("/api/add_dnd_contact_to_list", body), 400, "dnd_contacts")
    assert "dnd_contact_number" in inner["errors"]["dnd_contacts"]["2"]
    assert dnd_of(dnd) == {}


def test_invalid_dnd_contacts_are_400(api, subtests):
    dnd = make_dnd_list(api)
    for contacts in [[], None, [{}], [{"dnd_contact_name": "x"}],
                     [{"dnd_contact_number": "919979270001", "contact_fields": {}}],
                     [{"dnd_contact_number": "919979270001", "dnd_contact_name": "n" * 101}],
                     [{"dnd_contact_number": "9199792700O1"}]]:
        with subtests.test(contacts=contacts):
            error_body(api.post("/api/add_dnd_contact_to_list", {"dnd_list_id": dnd, "dnd_contacts": contacts}),
                       400, "dnd_contacts")
    assert dnd_of(dnd) == {}


def test_contact_list_id_is_not_a_dnd_list_id(api):
    list_id = make_list(api)
    error_body(api.post("/api/add_dnd_contact_to_list", {"dnd_list_id": list_id, "dnd_contacts": SPEC_DND}),
               400, "dnd_list_id")


def test_unknown_dnd_list_is_404(api):
    inner = error_body(api.post("/api/add_dnd_contact_to_list",
                                {"dnd_list_id": "DN0123456789", "dnd_contacts": SPEC_DND}), 404, "dnd_list_id")
    assert inner["message"] == "DND list not found"


def test_other_accounts_dnd_list_is_404(api, other):
    dnd = make_dnd_list(api)
    inner = error_body(other.post("/api/add_dnd_contact_to_list", {"dnd_list_id": dnd, "dnd_contacts": SPEC_DND}),
                       404, "dnd_list_id")
    assert inner["message"] == "DND list not found"
    assert dnd_of(dnd) == {}
