"""POST /api/upload_file and GET /api/files on the local object storage."""
from __future__ import annotations

import dataclasses
import io

import pytest

from cpaas import app as app_module
from tests.api.conftest import SECRETS, Api
from tests.api.helpers import clean_bucket, error_body, ok_body, upload, wav_bytes  # noqa: F401

pytestmark = pytest.mark.usefixtures("clean_bucket")

CSV = "contact_number\n919979270001\n"


def test_upload_csv_and_list(api, settings):
    inner = ok_body(upload(api, "contacts.csv", CSV))
    assert inner == {"message": "file uploaded successfully", "file_name": "contacts.csv",
                     "size": len(CSV), "success": "true"}
    stored = settings.data_dir / "bucket" / "accounts" / "account_1" / "files" / "contacts.csv"
    assert stored.read_text() == CSV
    listed = ok_body(api.get("/api/files"))
    assert listed == {"message": "files found", "result": [{"file_name": "contacts.csv", "size": len(CSV)}],
                      "success": "true"}


def test_upload_wav(api):
    data = wav_bytes()
    inner = ok_body(upload(api, "hello.wav", data))
    assert inner["size"] == len(data)


def test_file_name_field_overrides_the_upload_name(api):
    inner = ok_body(upload(api, "local-name.csv", CSV, file_name="remote.csv"))
    assert inner["file_name"] == "remote.csv"
    assert [f["file_name"] for f in ok_body(api.get("/api/files"))["result"]] == ["remote.csv"]


def test_upload_replaces_a_file_of_the_same_name(api):
    ok_body(upload(api, "c.csv", CSV))
    ok_body(upload(api, "c.csv", CSV + "919979270002\n"))
    assert ok_body(api.get("/api/files"))["result"] == [{"file_name": "c.csv", "size": len(CSV) + 13}]


def test_files_are_per_account(api, other):
    ok_body(upload(api, "mine.csv", CSV))
    ok_body(upload(other, "theirs.csv", CSV))
    ok_body(upload(other, "mine.csv", CSV + "919979270002\n"))
    assert [f["file_name"] for f in ok_body(api.get("/api/files"))["result"]] == ["mine.csv"]
    assert ok_body(api.get("/api/files"))["result"][0]["size"] == len(CSV)
    assert sorted(f["file_name"] for f in ok_body(other.get("/api/files"))["result"]) == ["mine.csv", "theirs.csv"]


def test_no_files(api):
    assert ok_body(api.get("/api/files")) == {"message": "no files found", "result": [], "success": "true"}


def test_only_csv_and_wav_names(api, subtests):
    for name in ["notes.txt", "script.sh", "csv", "archive.csv.gz", "x.wav.exe"]:
        with subtests.test(name=name):
            error_body(upload(api, name, CSV), 400, "file")
    assert ok_body(api.get("/api/files"))["result"] == []


def test_path_like_names_are_refused(api, settings, subtests):
    for name in ["../x.csv", "../../account_2/files/x.csv", "/etc/x.csv", "a/b.csv", ".hidden.csv", "..csv",
                 "x\x00.csv", "a\\b.csv", "x\n.csv", "x" * 250 + ".csv"]:
        with subtests.test(name=name):
            error_body(upload(api, "ok.csv", CSV, file_name=name), 400, "file_name")
    assert ok_body(api.get("/api/files"))["result"] == []
    assert not (settings.data_dir / "bucket" / "x.csv").exists()
    assert not (settings.data_dir / "x.csv").exists()


def test_path_in_multipart_filename_is_refused(api, settings):
    error_body(upload(api, "../../x.csv", CSV), 400, "file")
    assert not (settings.data_dir / "bucket" / "x.csv").exists()


def test_wav_name_with_non_wav_content_is_400(api):
    error_body(upload(api, "fake.wav", b"this is not audio at all"), 400, "file")
    assert ok_body(api.get("/api/files"))["result"] == []


def test_missing_file_field_is_400(api):
    resp = api.client.post("/api/upload_file", data={"file_name": "x.csv"}, headers=api.headers,
                           content_type="multipart/form-data")
    error_body(resp, 400, "file")


def test_json_upload_is_415(api):
    error_body(api.post("/api/upload_file", {"file": "contact_number\n"}), 415)


def test_upload_over_the_size_limit_is_413(app, settings):
    small = app_module.create_app(dataclasses.replace(settings, max_upload_mb=1))
    client = Api(small.test_client(), "account_1", SECRETS["account_1"])
    just_over = b"contact_number\n" + b"9" * (1024 * 1024)
    error_body(upload(client, "big.csv", just_over), 413)
    far_over = b"9" * (3 * 1024 * 1024)
    error_body(upload(client, "big.csv", far_over), 413)
    assert ok_body(client.get("/api/files"))["result"] == []
    ok_body(upload(client, "fits.csv", b"contact_number\n" + b"9" * 1000))


def test_upload_is_not_limited_by_the_json_body_limit(app, settings):
    small = app_module.create_app(dataclasses.replace(settings, max_body_bytes=1000))
    client = Api(small.test_client(), "account_1", SECRETS["account_1"])
    inner = ok_body(upload(client, "big.csv", "contact_number\n" + "919979270001\n" * 1000))
    assert inner["size"] > 1000


def test_upload_streamed_without_content_length(api):
    """A chunked multipart upload (no Content-Length) is stored whole."""
    boundary = "b0undary"
    payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.csv\"\r\n"
               f"Content-Type: text/csv\r\n\r\n{CSV}\r\n--{boundary}--\r\n").encode()
    resp = api.client.post("/api/upload_file", input_stream=io.BytesIO(payload),
                           headers={**api.headers, "Transfer-Encoding": "chunked",
                                    "Content-Type": f"multipart/form-data; boundary={boundary}"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert ok_body(resp)["size"] == len(CSV)


def test_concurrent_uploads_of_one_name_each_land_whole(app, settings):
    """Eight uploads of the same name at once over real HTTP: every one answers 200, the
    stored file is exactly one of them (the last to finish), and no partial file is left."""
    import threading

    import requests
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    url = f"http://127.0.0.1:{server.server_port}/api/upload_file"
    headers = {"account": "account_1", "auth": SECRETS["account_1"]}
    contents = [b"contact_number\n" + f"9199792700{k:02d}\n".encode() * 300_000 for k in range(8)]
    start = threading.Barrier(len(contents))
    statuses: dict[int, int] = {}

    def send(k: int) -> None:
        start.wait()
        r = requests.post(url, headers=headers, timeout=60,
                          files={"file": ("same.csv", contents[k], "text/csv")})
        statuses[k] = r.status_code

    try:
        threads = [threading.Thread(target=send, args=(k,)) for k in range(len(contents))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.shutdown()
    assert statuses == {k: 200 for k in range(len(contents))}
    folder = settings.data_dir / "bucket" / "accounts" / "account_1" / "files"
    assert [p.name for p in folder.iterdir()] == ["same.csv"]
    assert (folder / "same.csv").read_bytes() in contents
    assert ok_body(Api(app.test_client(), "account_1", SECRETS["account_1"]).get("/api/files"))[
        "result"] == [{"file_name": "same.csv", "size": len(contents[0])}]
