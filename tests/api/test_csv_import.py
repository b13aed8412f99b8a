"""import_broadcast_contacts_csv / import_dnd_contacts_csv over uploaded files (local and S3)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from cpaas import app as app_module
from cpaas.campaigns import csv_import
from cpaas.campaigns.schemas import MAX_CONTACT_FIELDS
from cpaas.db import database
from cpaas.models import Contact, DndContact
from tests import servers
from tests.api.conftest import SECRETS, Api
from tests.api.helpers import clean_bucket, error_body, make_dnd_list, make_list, ok_body, upload  # noqa: F401

pytestmark = pytest.mark.usefixtures("clean_bucket")

GOOD_CSV = (
    "contact_name,contact_number,field1,field2,field3\n"
    "ankit,+919979270001,Ankit,Jayswal,500\n"
    "abc,918000680001,abc,xyz,100\n"
)


def contacts_of(list_id: str) -> dict[str, tuple[str, dict]]:
    with database.connection_context():
        return {c.number: (c.name, json.loads(c.fields))
                for c in Contact.select().where(Contact.list_id == list_id)}


def dnd_of(dnd_list_id: str) -> dict[str, str]:
    with database.connection_context():
        return {c.number: c.name for c in DndContact.select().where(DndContact.dnd_list_id == dnd_list_id)}


def import_csv(client, list_id: str, name: str):
    return client.post("/api/import_broadcast_contacts_csv", {"list_id": list_id, "csv_name": name})


def test_import_spec_example(api):
    ok_body(upload(api, "contacts_dynamic_announcement.csv", GOOD_CSV))
    list_id = make_list(api)
    inner = ok_body(import_csv(api, list_id, "contacts_dynamic_announcement.csv"))
    assert inner == {"message": "(2) contacts imported successfully", "skipped": 0, "errors": [],
                     "success": "true"}
    assert contacts_of(list_id) == {
        "919979270001": ("ankit", {"field1": "Ankit", "field2": "Jayswal", "field3": "500"}),
        "918000680001": ("abc", {"field1": "abc", "field2": "xyz", "field3": "100"}),
    }


def test_bad_rows_are_skipped_with_line_numbers(api):
    csv_text = ("contact_name,contact_number,city\n"      # line 1
                "good1,919979270001,Pune\n"               # 2
                "bad number,91997927XXXX,Pune\n"          # 3
                "good2,919979270002,\n"                   # 4 (empty field is left out)
                "too,many,columns,here\n"                 # 5
                "short\n"                                 # 6
                "good3,+919979270003,Delhi\n")            # 7
    ok_body(upload(api, "mixed.csv", csv_text))
    list_id = make_list(api)
    inner = ok_body(import_csv(api, list_id, "mixed.csv"))
    assert inner["message"] == "(3) contacts imported successfully"
    assert inner["skipped"] == 3
    assert [e["line"] for e in inner["errors"]] == [3, 5, 6]
    assert all(isinstance(e["error"], str) and e["error"] for e in inner["errors"])
    assert "contact_number" in inner["errors"][0]["error"]
    assert contacts_of(list_id) == {
        "919979270001": ("good1", {"city": "Pune"}),
        "919979270002": ("good2", {}),
        "919979270003": ("good3", {"city": "Delhi"}),
    }


def test_only_first_20_errors_are_reported(api):
    rows = ["contact_number"] + [f"bad{i}" for i in range(25)] + ["919979270001"]
    ok_body(upload(api, "bad.csv", "\n".join(rows) + "\n"))
    list_id = make_list(api)
    inner = ok_body(import_csv(api, list_id, "bad.csv"))
    assert inner["message"] == "(1) contacts imported successfully"
    assert inner["skipped"] == 25
    assert len(inner["errors"]) == 20
    assert [e["line"] for e in inner["errors"]] == list(range(2, 22))


def test_duplicates_in_file_are_merged(api):
    csv_text = "contact_number,contact_name,a,b\n+919979270001,x,1,\n919979270001,,,2\n"
    ok_body(upload(api, "dup.csv", csv_text))
    list_id = make_list(api)
    inner = ok_body(import_csv(api, list_id, "dup.csv"))
    assert inner["message"] == "(1) contacts imported successfully"
    assert contacts_of(list_id) == {"919979270001": ("x", {"a": "1", "b": "2"})}


def test_bom_crlf_and_quoted_values(api):
    csv_text = '\ufeffcontact_name,contact_number,note\r\n"Doe, John",919979270001,"said ""hi"""\r\n'
    ok_body(upload(api, "bom.csv", csv_text))
    list_id = make_list(api)
    ok_body(import_csv(api, list_id, "bom.csv"))
    assert contacts_of(list_id) == {"919979270001": ("Doe, John", {"note": 'said "hi"'})}


def test_import_into_existing_contacts_updates_them(api):
    list_id = make_list(api)
    ok_body(api.post("/api/add_contact_to_list",
                     {"list_id": list_id, "contacts": [{"contact_number": "919979270001", "contact_name": "old"}]}))
    ok_body(upload(api, "c.csv", GOOD_CSV))
    ok_body(import_csv(api, list_id, "c.csv"))
    stored = contacts_of(list_id)
    assert len(stored) == 2 and stored["919979270001"][0] == "ankit"


def test_header_without_number_column_is_400(api):
    ok_body(upload(api, "nohdr.csv", "name,phone\nx,919979270001\n"))
    list_id = make_list(api)
    error_body(import_csv(api, list_id, "nohdr.csv"), 400, "csv_name")
    assert contacts_of(list_id) == {}


def test_header_only_file_imports_nothing(api):
    ok_body(upload(api, "empty.csv", "contact_name,contact_number\n"))
    inner = ok_body(import_csv(api, make_list(api), "empty.csv"))
    assert inner["message"] == "(0) contacts imported successfully"
    assert inner["skipped"] == 0


def test_non_utf8_file_is_400(api):
    ok_body(upload(api, "latin.csv", "contact_name,contact_number\n".encode() + b"Jos\xe9,919979270001\n"))
    error_body(import_csv(api, make_list(api), "latin.csv"), 400, "csv_name")


def test_csv_name_cannot_escape_the_accounts_files(api, other, subtests):
    ok_body(upload(other, "c.csv", GOOD_CSV))
    list_id = make_list(api)
    for name in ["../x.csv", "/etc/passwd", "..", "files/x.csv", "../../account_2/files/c.csv",
                 "../account_2/files/c.csv", "", "   ", "a\\..\\b.csv", "c.csv/.."]:
        with subtests.test(name=name):
            error_body(import_csv(api, list_id, name), 400, "csv_name")
    assert contacts_of(list_id) == {}


def test_missing_file_is_404(api):
    inner = error_body(import_csv(api, make_list(api), "nothere.csv"), 404, "csv_name")
    assert inner["message"] == "uploaded file not found"


def test_other_accounts_file_is_404(api, other):
    ok_body(upload(other, "theirs.csv", GOOD_CSV))
    list_id = make_list(api)
    error_body(import_csv(api, list_id, "theirs.csv"), 404, "csv_name")
    assert contacts_of(list_id) == {}


def test_other_accounts_list_is_404(api, other):
    list_id = make_list(api)
    ok_body(upload(other, "c.csv", GOOD_CSV))
    error_body(import_csv(other, list_id, "c.csv"), 404, "list_id")
    assert contacts_of(list_id) == {}


def test_import_validation(api):
    list_id = make_list(api)
    error_body(api.post("/api/import_broadcast_contacts_csv", {"list_id": list_id}), 400, "csv_name")
    error_body(api.post("/api/import_broadcast_contacts_csv", {"csv_name": "c.csv"}), 400, "list_id")
    error_body(api.post("/api/import_broadcast_contacts_csv",
                        {"list_id": list_id, "csv_name": "c.csv", "x": 1}), 400, "x")
    error_body(api.post("/api/import_broadcast_contacts_csv",
                        {"list_id": "DN0123456789", "csv_name": "c.csv"}), 400, "list_id")


# --- a refused file stores nothing -------------------------------------------------------

#: Good rows before the break: three whole batches and one more row, so that a batch-at-a-
#: time import would have stored (and committed) some of them before meeting it.
GOOD_ROWS = 3 * csv_import.BATCH + 1
EXISTING = [{"contact_number": "919900000000", "contact_name": "kept", "contact_fields": {"a": "1"}},
            {"contact_number": "918000000001", "contact_name": "also kept"}]
BROKEN_TAILS = {
    "cell over 64 KiB": "late,919800000001," + "y" * (64 * 1024 + 1) + "\n",
    "not UTF-8": b"late,91980000\xff001,z\n",
    "quote never closed": 'late,919800000001,"open\n' + "more,919800000002,z\n" * 5000,
    "row over 256 KiB": "late,919800000001," + ",".join(["z"] * 200_000) + "\n",
}


def _good_rows(n: int = GOOD_ROWS) -> str:
    # The first row updates an existing contact, the rest are new.
    return "contact_name,contact_number,city\n" + "".join(
        f"row {i},9199{i:08d},Pune\n" for i in range(n))


@pytest.mark.parametrize("tail", list(BROKEN_TAILS))
def test_a_refused_file_leaves_the_list_as_it_was(api, tail):
    list_id = make_list(api)
    ok_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": EXISTING}))
    before = contacts_of(list_id)
    broken = BROKEN_TAILS[tail]
    ok_body(upload(api, "broken.csv", _good_rows().encode() + (
        broken if isinstance(broken, bytes) else broken.encode())))
    error_body(import_csv(api, list_id, "broken.csv"), 400, "csv_name")
    assert contacts_of(list_id) == before
    # The same rows without the break import whole: the refusal was the tail's.
    ok_body(upload(api, "good.csv", _good_rows()))
    assert ok_body(import_csv(api, list_id, "good.csv"))["message"] == \
        f"({GOOD_ROWS}) contacts imported successfully"
    assert len(contacts_of(list_id)) == GOOD_ROWS + 1


def test_a_refused_dnd_file_leaves_the_dnd_list_as_it_was(api):
    dnd = make_dnd_list(api)
    ok_body(api.post("/api/add_dnd_contact_to_list", {"dnd_list_id": dnd, "dnd_contacts": [
        {"dnd_contact_number": "919900000000", "dnd_contact_name": "kept"}]}))
    ok_body(upload(api, "dnd.csv", _good_rows() + BROKEN_TAILS["cell over 64 KiB"]))
    error_body(api.post("/api/import_dnd_contacts_csv", {"dnd_list_id": dnd, "dnd_csv_name": "dnd.csv"}),
               400, "dnd_csv_name")
    assert dnd_of(dnd) == {"919900000000": "kept"}


def test_more_fields_than_the_api_allows_is_400_and_stores_nothing(api):
    fields = [f"f{i}" for i in range(MAX_CONTACT_FIELDS + 1)]
    row = ",".join(["x", "919979270001"] + ["v"] * len(fields)) + "\n"
    list_id = make_list(api)
    ok_body(upload(api, "wide.csv", ",".join(["contact_name", "contact_number"] + fields) + "\n" + row))
    inner = error_body(import_csv(api, list_id, "wide.csv"), 400, "csv_name")
    assert str(MAX_CONTACT_FIELDS) in inner["errors"]["csv_name"][0]
    assert contacts_of(list_id) == {}
    # Exactly the API's limit is fine, as over the API.
    ok_body(upload(api, "wide.csv", ",".join(["contact_name", "contact_number"] + fields[:-1]) + "\n"
                   + row.rsplit(",", 1)[0] + "\n"))
    ok_body(import_csv(api, list_id, "wide.csv"))
    assert len(contacts_of(list_id)["919979270001"][1]) == MAX_CONTACT_FIELDS


@pytest.mark.parametrize("where", ["header", "row"])
def test_one_huge_row_of_commas_is_400(api, where):
    commas = "," * (8 * 1024 * 1024)
    text = (f"contact_number{commas}\n919979270001\n" if where == "header"
            else f"contact_number\n919979270001\n9199792700{commas}\n")
    list_id = make_list(api)
    ok_body(upload(api, "commas.csv", text))
    error_body(import_csv(api, list_id, "commas.csv"), 400, "csv_name")
    assert contacts_of(list_id) == {}


def test_overlong_values_are_skipped_rows_not_a_refusal(api):
    csv_text = ("contact_name,contact_number,note\n"
                "good1,919979270001,x\n"
                f"long,919979270002,{'n' * 501}\n"
                f"longest,919979270003,{'n' * 64 * 1024}\n"
                "good2,919979270004,y\n")
    ok_body(upload(api, "long.csv", csv_text))
    list_id = make_list(api)
    inner = ok_body(import_csv(api, list_id, "long.csv"))
    assert (inner["skipped"], [e["line"] for e in inner["errors"]]) == (2, [3, 4])
    assert set(contacts_of(list_id)) == {"919979270001", "919979270004"}


# --- DND CSV --------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["dnd_contact_name,dnd_contact_number", "contact_name,contact_number"])
def test_dnd_csv_import_with_either_column_names(api, header):
    csv_text = f"{header}\nankit,+919979270001\nabc,918000680001\nbad,123\n"
    ok_body(upload(api, "dnd.csv", csv_text))
    dnd = make_dnd_list(api)
    inner = ok_body(api.post("/api/import_dnd_contacts_csv", {"dnd_list_id": dnd, "dnd_csv_name": "dnd.csv"}))
    assert inner["message"] == "(2) DND contacts imported successfully"
    assert inner["skipped"] == 1
    assert inner["errors"][0]["line"] == 4
    assert dnd_of(dnd) == {"919979270001": "ankit", "918000680001": "abc"}


def test_dnd_csv_number_only(api):
    ok_body(upload(api, "dnd.csv", "dnd_contact_number\n919979270001\n+919979270001\n"))
    dnd = make_dnd_list(api)
    inner = ok_body(api.post("/api/import_dnd_contacts_csv", {"dnd_list_id": dnd, "dnd_csv_name": "dnd.csv"}))
    assert inner["message"] == "(1) DND contacts imported successfully"
    assert dnd_of(dnd) == {"919979270001": ""}


def test_dnd_csv_tenancy_and_paths(api, other):
    ok_body(upload(other, "dnd.csv", "dnd_contact_number\n919979270001\n"))
    dnd = make_dnd_list(api)
    error_body(api.post("/api/import_dnd_contacts_csv", {"dnd_list_id": dnd, "dnd_csv_name": "dnd.csv"}),
               404, "dnd_csv_name")
    error_body(api.post("/api/import_dnd_contacts_csv",
                        {"dnd_list_id": dnd, "dnd_csv_name": "../account_2/files/dnd.csv"}),
               400, "dnd_csv_name")
    error_body(other.post("/api/import_dnd_contacts_csv", {"dnd_list_id": dnd, "dnd_csv_name": "dnd.csv"}),
               404, "dnd_list_id")
    error_body(api.post("/api/import_dnd_contacts_csv", {"dnd_list_id": dnd}), 400, "dnd_csv_name")
    assert dnd_of(dnd) == {}


def test_dnd_csv_without_number_column_is_400(api):
    ok_body(upload(api, "dnd.csv", "phone\n919979270001\n"))
    error_body(api.post("/api/import_dnd_contacts_csv",
                        {"dnd_list_id": make_dnd_list(api), "dnd_csv_name": "dnd.csv"}), 400, "dnd_csv_name")


# --- S3 (moto's real server) ------------------------------------------------------------

@pytest.fixture
def s3_app(app, settings, monkeypatch):
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    port = servers.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        # moto keeps its state per process, across server instances: start empty.
        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="bucket")
        s3_settings = dataclasses.replace(settings, storage_url="s3://bucket/prefix",
                                          s3_endpoint_url=endpoint)
        yield app_module.create_app(s3_settings), s3, s3_settings
    finally:
        server.stop()


def test_s3_upload_list_and_import(s3_app):
    application, s3, _ = s3_app
    api = Api(application.test_client(), "account_1", SECRETS["account_1"])
    other = Api(application.test_client(), "account_2", SECRETS["account_2"])

    inner = ok_body(upload(api, "contacts.csv", GOOD_CSV))
    assert inner["size"] == len(GOOD_CSV.encode())
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="bucket")["Contents"]]
    assert keys == ["prefix/accounts/account_1/files/contacts.csv"]

    listed = ok_body(api.get("/api/files"))
    assert listed["result"] == [{"file_name": "contacts.csv", "size": len(GOOD_CSV.encode())}]
    assert ok_body(other.get("/api/files"))["result"] == []

    list_id = make_list(api)
    inner = ok_body(import_csv(api, list_id, "contacts.csv"))
    assert inner["message"] == "(2) contacts imported successfully"
    assert set(contacts_of(list_id)) == {"919979270001", "918000680001"}

    # Tenancy and names hold on S3 too.
    error_body(import_csv(other, make_list(other), "contacts.csv"), 404, "csv_name")
    error_body(import_csv(api, list_id, "../account_2/files/contacts.csv"), 400, "csv_name")

    dnd = make_dnd_list(api)
    ok_body(upload(api, "dnd.csv", "dnd_contact_number\n919979270001\n"))
    inner = ok_body(api.post("/api/import_dnd_contacts_csv", {"dnd_list_id": dnd, "dnd_csv_name": "dnd.csv"}))
    assert inner["message"] == "(1) DND contacts imported successfully"


def test_s3_upload_over_the_size_limit_is_413_and_not_stored(s3_app):
    _, s3, s3_settings = s3_app
    small = app_module.create_app(dataclasses.replace(s3_settings, max_upload_mb=1))
    api = Api(small.test_client(), "account_1", SECRETS["account_1"])
    error_body(upload(api, "big.csv", b"contact_number\n" + b"9" * (1024 * 1024)), 413)
    assert s3.list_objects_v2(Bucket="bucket").get("KeyCount", 0) == 0
    assert ok_body(api.get("/api/files"))["result"] == []
