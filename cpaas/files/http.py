"""``POST /api/upload_file`` and ``GET /api/files``."""
from __future__ import annotations

from flask import Blueprint, Response, request

from cpaas.campaigns.schemas import CONTACTS_CSV_COLUMNS, DND_CSV_COLUMNS
from cpaas.envelope import ApiError, ok
from cpaas.http import caller, route
from cpaas.platform import platform
from cpaas.storage import InvalidName, account_key, account_prefix

bp = Blueprint("files", __name__)

ALLOWED_SUFFIXES = (".csv", ".wav")


@route(bp, "/upload_file", "POST", "Upload a CSV or WAV file (multipart field 'file')",
       multipart=True, description=" ".join((
           "The file is stored under its name (or file_name) for this account; an upload of "
           "the same name replaces it.", CONTACTS_CSV_COLUMNS, DND_CSV_COLUMNS,
           "WAV (a campaign's recorded_filename): RIFF/WAVE audio, best 8 kHz mono 16-bit PCM, "
           "like examples/announcement.wav.")))
def upload_file() -> Response:
    if not request.mimetype == "multipart/form-data":
        raise ApiError(415, "upload must be multipart/form-data with a 'file' field")
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "missing file", {"file": ["multipart field 'file' is required"]})
    name = (request.form.get("file_name") or upload.filename or "").strip()
    field = "file_name" if request.form.get("file_name") else "file"
    if not name.lower().endswith(ALLOWED_SUFFIXES):
        raise ApiError(400, "only .csv and .wav files can be uploaded",
                       {field: ["name must end in .csv or .wav"]})
    if name.lower().endswith(".wav") and upload.stream.read(12)[8:12] != b"WAVE":
        raise ApiError(400, "not a WAV file", {"file": ["content is not RIFF/WAVE audio"]})
    upload.stream.seek(0)
    try:
        key = account_key(caller().name, name)
    except InvalidName as err:
        raise ApiError(400, "invalid file name", {field: [str(err)]}) from None
    limit = platform().settings.max_upload_mb * 1024 * 1024
    try:
        size = platform().storage.put_stream(key, upload.stream, limit)
    except ValueError:
        raise ApiError(413, f"file larger than {platform().settings.max_upload_mb} MB") from None
    return ok(message="file uploaded successfully", file_name=name, size=size)


@route(bp, "/files", "GET", "List the account's uploaded files")
def list_files() -> Response:
    prefix = account_prefix(caller().name) + "files/"
    result = [{"file_name": key[len(prefix):], "size": size}
              for key, size in platform().storage.list(prefix)]
    return ok(message="files found" if result else "no files found", result=result)
