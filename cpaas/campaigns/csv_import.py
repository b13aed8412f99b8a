"""Streaming CSV import of contacts and DND numbers from object storage.

Memory stays flat whatever the file size: rows are read one by one and written in
batches, each batch in its own transaction. Bad rows are skipped and reported.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import IO, Callable, Iterator

from marshmallow import ValidationError

from cpaas.campaigns import service
from cpaas.campaigns.schemas import clean_contact_fields
from cpaas.db import database
from cpaas.envelope import ApiError, NotFound
from cpaas.storage import InvalidName, NotFound as ObjectMissing, Storage, account_key
from cpaas.validation import PHONE_RE

BATCH = 5000
MAX_REPORTED_ERRORS = 20
csv.field_size_limit(64 * 1024)


@dataclass
class ImportResult:
    """What an import stored and what it skipped."""

    imported: int = 0
    skipped: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)

    def skip(self, line: int, error: str) -> None:
        self.skipped += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "error": error})


class _RawAdapter(io.RawIOBase):
    """Lets io's buffered text layer read any object that has ``read(n)`` (S3 bodies)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self.stream.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def _open_text(storage: Storage, account_name: str, name: str, field_name: str) -> io.TextIOWrapper:
    try:
        key = account_key(account_name, name)
    except InvalidName as err:
        raise ApiError(400, f"invalid {field_name}", {field_name: [str(err)]}) from None
    try:
        raw = storage.open(key)
    except ObjectMissing:
        raise NotFound(field_name, "uploaded file") from None
    buffered = io.BufferedReader(_RawAdapter(raw), buffer_size=1 << 20)
    return io.TextIOWrapper(buffered, encoding="utf-8-sig", newline="")


def _number(value: str | None) -> str:
    text = (value or "").strip()
    if not PHONE_RE.match(text):
        raise ValidationError("must be 8 to 15 digits with an optional leading +")
    return text.lstrip("+")


def _name(value: str | None) -> str:
    text = (value or "").strip()
    if len(text) > 100 or not text.isprintable():
        raise ValidationError("must be at most 100 printable characters")
    return text


def _rows(text: io.TextIOWrapper, number_cols: tuple[str, ...], name_cols: tuple[str, ...],
          field_name: str) -> Iterator[tuple[int, dict[str, str | None], str, str, list[str]]]:
    reader = csv.DictReader(text)
    try:
        header = reader.fieldnames or []
    except UnicodeDecodeError:
        raise ApiError(400, f"{field_name} is not UTF-8 text", {field_name: ["not UTF-8"]}) from None
    header = [h.strip() for h in header]
    reader.fieldnames = header
    number_col = next((c for c in number_cols if c in header), None)
    if number_col is None:
        raise ApiError(400, f"{field_name} has no {' or '.join(number_cols)} column",
                       {field_name: [f"header must name a {number_cols[0]} column"]})
    name_col = next((c for c in name_cols if c in header), "")
    extra = [h for h in header if h and h not in (number_col, name_col) + number_cols + name_cols]
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise ApiError(400, f"{field_name} is not UTF-8 text", {field_name: ["not UTF-8"]}) from None
        except csv.Error as err:
            raise ApiError(400, f"{field_name} is not valid CSV near line {reader.line_num}",
                           {field_name: [str(err)]}) from None
        yield reader.line_num, row, number_col, name_col, extra


def _import(rows: Iterator, store_batch: Callable[[list], int], build: Callable) -> ImportResult:
    result = ImportResult()
    batch: list = []
    for line, row, number_col, name_col, extra in rows:
        if None in row or any(v is None for v in row.values()):
            result.skip(line, "wrong number of columns")
            continue
        try:
            batch.append(build(row, number_col, name_col, extra))
        except ValidationError as err:
            result.skip(line, "; ".join(str(m) for m in _flatten(err.messages)))
            continue
        if len(batch) >= BATCH:
            result.imported += store_batch(batch)
            batch = []
    if batch:
        result.imported += store_batch(batch)
    return result


def _flatten(messages: object) -> list[str]:
    if isinstance(messages, dict):
        return [f"{k}: {m}" for k, v in messages.items() for m in _flatten(v)]
    if isinstance(messages, list):
        return [str(m) for m in messages]
    return [str(messages)]


def import_contacts(storage: Storage, account_id: str, account_name: str, list_id: str,
                    csv_name: str) -> ImportResult:
    """Import ``csv_name`` (one of the account's files) into a contact list."""
    service.own_list(account_id, list_id)

    def build(row: dict, number_col: str, name_col: str, extra: list[str]):
        try:
            number = _number(row[number_col])
        except ValidationError as err:
            raise ValidationError({number_col: err.messages}) from None
        try:
            name = _name(row.get(name_col)) if name_col else ""
        except ValidationError as err:
            raise ValidationError({name_col: err.messages}) from None
        fields = clean_contact_fields({k: row[k] for k in extra if row[k] != ""})
        return number, name, fields

    def store(batch: list) -> int:
        with database.atomic():
            return service.upsert_contacts(list_id, batch)

    with _open_text(storage, account_name, csv_name, "csv_name") as text:
        rows = _rows(text, ("contact_number",), ("contact_name",), "csv_name")
        return _import(rows, store, build)


def import_dnd(storage: Storage, account_id: str, account_name: str, dnd_list_id: str,
               csv_name: str) -> ImportResult:
    """Import ``csv_name`` into a DND list (columns dnd_contact_* or contact_*)."""
    service.own_dnd_list(account_id, dnd_list_id)

    def build(row: dict, number_col: str, name_col: str, extra: list[str]):
        try:
            number = _number(row[number_col])
        except ValidationError as err:
            raise ValidationError({number_col: err.messages}) from None
        return number, (_name(row.get(name_col)) if name_col else "")

    def store(batch: list) -> int:
        with database.atomic():
            return service.upsert_dnd_contacts(dnd_list_id, batch)

    with _open_text(storage, account_name, csv_name, "dnd_csv_name") as text:
        rows = _rows(text, ("dnd_contact_number", "contact_number"),
                     ("dnd_contact_name", "contact_name"), "dnd_csv_name")
        return _import(rows, store, build)
