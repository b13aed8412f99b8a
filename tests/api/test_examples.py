"""The example files under examples/ go through the API as README's walk-through sends them."""
from __future__ import annotations

import csv
import re
import wave
from pathlib import Path

import pytest

from tests.api.helpers import clean_bucket  # noqa: F401 (a fixture)
from tests.api.helpers import campaign_body, make_dnd_list, make_list, ok_body, upload

pytestmark = pytest.mark.usefixtures("clean_bucket")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def rows_of(name: str) -> list[dict[str, str]]:
    with open(EXAMPLES / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_contacts_csv_imports_every_row(api):
    rows = rows_of("contacts.csv")
    assert {"contact_name", "contact_number", "field1"} <= set(rows[0])
    ok_body(upload(api, "contacts.csv", (EXAMPLES / "contacts.csv").read_bytes()))
    list_id = make_list(api)
    inner = ok_body(api.post("/api/import_broadcast_contacts_csv",
                             {"list_id": list_id, "csv_name": "contacts.csv"}))
    assert inner["message"] == f"({len(rows)}) contacts imported successfully"
    assert inner["skipped"] == 0
    stored = ok_body(api.post("/api/get_list_contacts", {"list_id": list_id}))["result"]
    assert [c["contact_number"] for c in stored] == [r["contact_number"].lstrip("+") for r in rows]
    assert stored[0]["contact_fields"] == {k: v for k, v in rows[0].items()
                                           if k.startswith("field")}
    listed = ok_body(api.post("/api/get_campaign_lists", {}))["result"]
    assert listed[0]["contact_count"] == str(len(rows))


def test_dnd_csv_imports_every_row(api):
    rows = rows_of("dnd.csv")
    assert set(rows[0]) == {"dnd_contact_name", "dnd_contact_number"}
    ok_body(upload(api, "dnd.csv", (EXAMPLES / "dnd.csv").read_bytes()))
    dnd = make_dnd_list(api)
    inner = ok_body(api.post("/api/import_dnd_contacts_csv",
                             {"dnd_list_id": dnd, "dnd_csv_name": "dnd.csv"}))
    assert inner["message"] == f"({len(rows)}) DND contacts imported successfully"
    listed = ok_body(api.post("/api/get_dnd_lists", {}))["result"]
    assert listed[0]["dnd_contact_count"] == str(len(rows))


def test_announcement_wav_is_8khz_mono_and_plays_in_a_campaign(api):
    path = EXAMPLES / "announcement.wav"
    with wave.open(str(path)) as audio:
        assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (8000, 1, 2)
        assert 1.0 <= audio.getnframes() / 8000 <= 10.0
    assert path.stat().st_size < 200_000
    ok_body(upload(api, "announcement.wav", path.read_bytes()))
    list_id = make_list(api)
    body = campaign_body(list_id, dynamic_announcement="0", recorded_filename="announcement.wav",
                         announcement_text="")
    ok_body(api.post("/api/create_campaign", body))


def test_readme_names_only_example_files_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"examples/[\w.-]+", readme))
    assert {"examples/contacts.csv", "examples/dnd.csv", "examples/announcement.wav"} <= named
    for name in named:
        assert (ROOT / name).is_file(), name


def test_openapi_documents_the_csv_columns(app):
    doc = app.test_client().get("/api/openapi.json").get_json()
    for path, columns in (("/api/import_broadcast_contacts_csv", ("contact_number", "field1")),
                          ("/api/import_dnd_contacts_csv", ("dnd_contact_number",)),
                          ("/api/upload_file", ("contact_number", "field1", "dnd_contact_number",
                                                "8 kHz mono"))):
        text = doc["paths"][path]["post"]["description"]
        for column in columns:
            assert column in text, (path, column)
