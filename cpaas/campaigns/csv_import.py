"""Streaming CSV import of contacts and DND numbers from object storage.

Memory stays flat whatever the file size: rows are read one by one and written in
batches, each batch in its own transaction. Bad rows are skipped and reported.

Speed (bench/csv_import.py): rows are parsed with the C ``csv.reader`` (not
``DictReader``), the per-file work (column positions, header-name checks) is done once,
and a batch is written without peewee's per-value SQL building (see :class:`_Table`:
``COPY`` on PostgreSQL, on a helper thread so that parsing and the database overlap; one
``executemany`` upsert on SQLite). Duplicates are merged by the service's own rules
(:func:`cpaas.campaigns.service.merge_contacts` / ``merge_dnd``), as the API's
``add_contact_to_list`` merges them, and a number already in the list is updated.
"""
from __future__ import annotations

import csv
import io
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import IO, Callable, Iterator

import peewee
from marshmallow import ValidationError

from cpaas.campaigns import service
from cpaas.campaigns.schemas import clean_contact_fields
from cpaas.db import database, dialect_of
from cpaas.envelope import ApiError, NotFound
from cpaas.storage import InvalidName, NotFound as ObjectMissing, Storage, account_key
from cpaas.validation import PHONE_RE

BATCH = 5000
MAX_REPORTED_ERRORS = 20
csv.field_size_limit(64 * 1024)

_NUMBER_ERROR = "must be 8 to 15 digits with an optional leading +"
_NAME_ERROR = "must be at most 100 printable characters"
#: json's own string quoting (the C one when available), as json.dumps uses it.
_quote = encode_basestring_ascii


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
    if not PHONE_RE.fullmatch(text):
        raise ValidationError(_NUMBER_ERROR)
    return text.lstrip("+")


def _name(value: str | None) -> str:
    text = (value or "").strip()
    if len(text) > 100 or not text.isprintable():
        raise ValidationError(_NAME_ERROR)
    return text


@dataclass
class _Layout:
    """Where the columns of one file are (resolved once from its header)."""

    width: int                         # columns a well-formed row has
    number_col: str
    number_at: int
    name_col: str                      # "" when the file has no name column
    name_at: int                       # -1 when the file has no name column
    extra: list[tuple[str, int]]       # (field name, column) of every other named column


def _rows(text: io.TextIOWrapper, number_cols: tuple[str, ...], name_cols: tuple[str, ...],
          field_name: str) -> tuple[_Layout, Iterator[tuple[int, list[str]]]]:
    """The file's layout and its (line, cells) rows.

    Same reading rules as ``csv.DictReader``: blank lines are skipped, a header name
    that appears twice means its last column, and ``line`` is ``DictReader.line_num``
    (also in the "not valid CSV near line N" error, where it is the last line read
    successfully).
    """
    reader = csv.reader(text)
    try:
        header = next(reader, None) or []
    except UnicodeDecodeError:
        raise ApiError(400, f"{field_name} is not UTF-8 text", {field_name: ["not UTF-8"]}) from None
    header = [h.strip() for h in header]
    number_col = next((c for c in number_cols if c in header), None)
    if number_col is None:
        raise ApiError(400, f"{field_name} has no {' or '.join(number_cols)} column",
                       {field_name: [f"header must name a {number_cols[0]} column"]})
    name_col = next((c for c in name_cols if c in header), "")
    position = {name: i for i, name in enumerate(header)}  # the last one of a repeated name
    extra = [h for h in header if h and h not in (number_col, name_col) + number_cols + name_cols]
    layout = _Layout(len(header), number_col, position[number_col], name_col,
                     position[name_col] if name_col else -1, [(h, position[h]) for h in extra])

    def rows() -> Iterator[tuple[int, list[str]]]:
        line = reader.line_num
        while True:
            try:
                row = next(reader)
                if not row:
                    line = reader.line_num
                    row = next(reader)
                    while not row:
                        row = next(reader)
                line = reader.line_num
            except StopIteration:
                return
            except UnicodeDecodeError:
                raise ApiError(400, f"{field_name} is not UTF-8 text",
                               {field_name: ["not UTF-8"]}) from None
            except csv.Error as err:
                raise ApiError(400, f"{field_name} is not valid CSV near line {line}",
                               {field_name: [str(err)]}) from None
            yield line, row

    return layout, rows()


def _import(layout: _Layout, rows: Iterator[tuple[int, list[str]]], build: Callable[[list[str]], tuple],
            writer: "_Writer") -> ImportResult:
    result = ImportResult()
    batch: list = []
    append = batch.append
    width = layout.width
    try:
        for line, row in rows:
            if len(row) != width:
                result.skip(line, "wrong number of columns")
                continue
            try:
                append(build(row))
            except ValidationError as err:
                result.skip(line, "; ".join(str(m) for m in _flatten(err.messages)))
                continue
            if len(batch) >= BATCH:
                result.imported += writer.put(batch)
                batch = []
                append = batch.append
        if batch:
            result.imported += writer.put(batch)
        result.imported += writer.drain()
    finally:
        # Waits for a batch still being written; its error, had there been one, would
        # have stopped the import before the rows read since, so it wins.
        writer.close()
    return result


def _flatten(messages: object) -> list[str]:
    if isinstance(messages, dict):
        return [f"{k}: {m}" for k, v in messages.items() for m in _flatten(v)]
    if isinstance(messages, list):
        return [str(m) for m in messages]
    return [str(messages)]


def _number_and_name(layout: _Layout,
                     name_error_names_column: bool) -> Callable[[list[str]], tuple[str, str]]:
    """Validates a row's number then its name, with the messages of ``_number`` / ``_name``
    (a contact import prefixes a bad name's message with its column, a DND import not)."""
    number_at, name_at = layout.number_at, layout.name_at
    number_error = {layout.number_col: [_NUMBER_ERROR]}
    name_error = {layout.name_col: [_NAME_ERROR]} if name_error_names_column else _NAME_ERROR
    match = PHONE_RE.match

    def check(row: list[str]) -> tuple[str, str]:
        number = row[number_at].strip()
        if not match(number):
            raise ValidationError(number_error)
        if name_at < 0:
            return number.lstrip("+"), ""
        name = row[name_at].strip()
        if len(name) > 100 or not name.isprintable():
            raise ValidationError(name_error)
        return number.lstrip("+"), name

    return check


# -- writing batches ----------------------------------------------------------------------

def _fields_json(fields: dict[str, str], keys: dict[str, str]) -> str:
    """``json.dumps(fields, separators=(",", ":"))`` for a map of strings to strings;
    ``keys`` caches each key's quoted form and colon."""
    if not fields:
        return "{}"
    parts = []
    for k, v in fields.items():
        quoted = keys.get(k)
        if quoted is None:
            quoted = keys[k] = _quote(k) + ":"
        parts.append(quoted + _quote(v))
    return "{" + ",".join(parts) + "}"


def _merge_contacts(contacts: list[tuple[str, str, dict[str, str]]]) -> list[tuple[str, str, str]]:
    """(number, name, fields JSON) rows, merged by ``service.merge_contacts``."""
    merged = service.merge_contacts(contacts)
    keys: dict[str, str] = {}
    return [(number, name, _fields_json(fields, keys)) for number, (name, fields) in merged.items()]


def _merge_dnd(contacts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(number, name) rows, merged by ``service.merge_dnd``."""
    return list(service.merge_dnd(contacts).items())


def _copy_payload(owner: str, rows: list[tuple[str, ...]]) -> tuple[str, str]:
    """COPY format ("" for text, "csv") and data for ``rows``, each prefixed with ``owner``.

    Text format (tab-separated, backslash escapes): cheaper to build than CSV. Values
    never hold a tab or a line break (names must be printable, field values are JSON),
    which the counts below verify; if one ever did, the batch goes as quoted CSV.
    """
    prefix = owner + "\t"
    text = "".join([prefix + "\t".join(row) + "\n" for row in rows])
    if "\\" in text:
        text = text.replace("\\", "\\\\")  # COPY's escape character; no separator holds one
    width = len(rows[0]) if rows else 0
    if "\r" not in text and text.count("\n") == len(rows) and text.count("\t") == width * len(rows):
        return "", text
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([(owner, *row) for row in rows])
    return "csv", buffer.getvalue()


def _sqlstate(err: BaseException) -> str | None:
    """The PostgreSQL error code behind a (peewee-wrapped) driver error."""
    for candidate in (err, getattr(err, "orig", None), err.__cause__):
        code = getattr(candidate, "pgcode", None) or getattr(candidate, "sqlstate", None)
        if code:
            return code
    return None


class _Table:
    """How one kind of import writes a batch of merged rows into its table.

    PostgreSQL: while no row of the import has met an existing one, a batch is COPYed
    straight into the table (a plain insert: no staging, no conflict arbitration), as its
    own transaction, or inside a savepoint when the caller holds a transaction. The first
    unique violation undoes that attempt, and from then on every
    batch is COPYed into a temporary table and upserted with ``ON CONFLICT … DO UPDATE``
    in file order. Both store exactly what the upsert of the original rows would.
    SQLite: one prepared upsert run for every row.
    """

    def __init__(self, table: str, owner_col: str, owner: str, columns: tuple[str, ...]) -> None:
        self.table, self.owner_col, self.owner, self.columns = table, owner_col, owner, columns
        self.kind = "sqlite"  # or "postgresql": set by _writer from the database
        self.direct = True
        self.nested = False  # batches are savepoints of a transaction of the caller's
        names = ", ".join(columns)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "number")
        self.staged = f"{table}_import"
        self.create_staged = (f"CREATE TEMPORARY TABLE IF NOT EXISTS {self.staged} (ord BIGSERIAL, "
                              + ", ".join(f"{c} TEXT NOT NULL" for c in (owner_col, *columns))
                              + ") ON COMMIT DELETE ROWS")
        self.upsert_staged = (f"INSERT INTO {table} ({owner_col}, {names}) "
                              f"SELECT {owner_col}, {names} FROM {self.staged} ORDER BY ord "
                              f"ON CONFLICT ({owner_col}, number) DO UPDATE SET {updates}")
        self.sqlite_upsert = (f"INSERT INTO {table} ({owner_col}, {names}) "
                              f"VALUES (?, {', '.join('?' for _ in columns)}) "
                              f"ON CONFLICT ({owner_col}, number) DO UPDATE SET {updates}")

    def payload(self, rows: list[tuple[str, ...]]) -> object:
        """What :meth:`write` needs for these merged rows (built by the parsing thread)."""
        if self.kind == "postgresql":
            return _copy_payload(self.owner, rows)
        return [(self.owner, *row) for row in rows]

    def write(self, payload: object) -> None:
        """Store one batch; the caller holds its transaction."""
        if self.kind == "postgresql":
            self._write_postgresql(payload)  # type: ignore[arg-type]
        else:
            with peewee.__exception_wrapper__:
                database.cursor().executemany(self.sqlite_upsert, payload)  # type: ignore[arg-type]

    def copy(self, cursor: object, table: str, payload: tuple[str, str]) -> None:
        form, text = payload
        names = ", ".join((self.owner_col, *self.columns))
        # CSV: FORCE_NOT_NULL keeps an empty name an empty string, never NULL.
        options = f" WITH (FORMAT csv, FORCE_NOT_NULL ({names}))" if form == "csv" else ""
        # One read of the whole batch: psycopg2 takes the GIL back for every read, and the
        # parsing thread holds it most of the time.
        cursor.copy_expert(f"COPY {table} ({names}) FROM STDIN{options}",  # type: ignore[attr-defined]
                           io.StringIO(text), size=len(text) + 1)

    def _write_postgresql(self, payload: tuple[str, str]) -> None:
        cursor = database.cursor()
        if self.direct:
            try:
                with database.atomic():  # a savepoint inside the batch's transaction
                    with peewee.__exception_wrapper__:
                        self.copy(cursor, self.table, payload)
                return
            except peewee.IntegrityError as err:
                if _sqlstate(err) != "23505":  # unique_violation: a row meets an existing one
                    raise
                self.direct = False
        with peewee.__exception_wrapper__:
            cursor.execute(self.create_staged)
            self.copy(cursor, self.staged, payload)
            cursor.execute(self.upsert_staged)
            if self.nested:
                # The batch is a savepoint of the caller's transaction: no commit empties
                # the staging table before the next batch, so empty it now.
                cursor.execute(f"DELETE FROM {self.staged}")


class _Writer:
    """Stores batches in order, each in its own transaction.

    ``put`` prepares a batch in the calling thread (merging, building the COPY data) and
    hands it over; it returns how many contacts the batches finished since the last call
    stored. On PostgreSQL, when the caller is not inside a transaction of its own, the
    batches are written by one helper thread on its own pooled connection, so the
    database works on batch N while this thread parses batch N+1; order, transactions
    and results are those of writing them inline.
    """

    def __init__(self, prepare: Callable[[list], object], store: Callable[[object], int],
                 pipelined: bool) -> None:
        self.prepare, self.store = prepare, store
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="csv-import") if pipelined else None
        self.pending: Future | None = None

    def put(self, batch: list) -> int:
        prepared = self.prepare(batch)
        if self.pool is None:
            return self.store(prepared)
        done = self.drain()
        self.pending = self.pool.submit(self.store, prepared)
        return done

    def drain(self) -> int:
        pending, self.pending = self.pending, None
        return pending.result() if pending is not None else 0

    def close(self) -> None:
        if self.pool is None:
            return
        try:
            self.drain()
        finally:
            # Give the helper thread's connection back to the pool.
            self.pool.submit(_close_connection).result()
            self.pool.shutdown()


def _close_connection() -> None:
    if not database.is_closed():
        database.close()


def _writer(table: _Table, merge: Callable[[list], list]) -> _Writer:
    table.kind = dialect_of(database.obj)
    table.nested = database.in_transaction()

    def prepare(batch: list) -> object:
        rows = merge(batch)
        return len(rows), (table.payload(rows) if rows else None)

    def store(prepared: object) -> int:
        count, payload = prepared  # type: ignore[misc]
        if count and table.kind == "postgresql" and table.direct and not table.nested:
            # One COPY in autocommit mode (peewee's) is the batch's whole transaction: a
            # single round trip. A row that meets an existing one aborts it, as it would
            # in a transaction of its own, and the batch goes the staged way below.
            try:
                with peewee.__exception_wrapper__:
                    table.copy(database.cursor(), table.table, payload)
                return count
            except peewee.IntegrityError as err:
                if _sqlstate(err) != "23505":  # unique_violation
                    raise
                table.direct = False
        with database.atomic():
            if count:
                table.write(payload)
            return count

    return _Writer(prepare, store, pipelined=table.kind == "postgresql" and not table.nested)


# -- the two imports ----------------------------------------------------------------------

def import_contacts(storage: Storage, account_id: str, account_name: str, list_id: str,
                    csv_name: str) -> ImportResult:
    """Import ``csv_name`` (one of the account's files) into a contact list."""
    service.own_list(account_id, list_id)

    with _open_text(storage, account_name, csv_name, "csv_name") as text:
        layout, rows = _rows(text, ("contact_number",), ("contact_name",), "csv_name")
        number_and_name = _number_and_name(layout, True)
        number_at, name_at, extra = layout.number_at, layout.name_at, layout.extra
        number_error = {layout.number_col: [_NUMBER_ERROR]}
        match, join = PHONE_RE.match, "".join

        def build(row: list[str]) -> tuple[str, str, dict[str, str]]:
            cells = join(row)
            if len(cells) <= 100 and cells.isprintable():
                # Every cell is short and printable, so the name is valid: only the
                # number needs checking (the usual row takes this path).
                number = row[number_at].strip()
                if not match(number):
                    raise ValidationError(number_error)
                number = number.lstrip("+")
                name = row[name_at].strip() if name_at >= 0 else ""
            else:
                number, name = number_and_name(row)
            fields = {k: row[i] for k, i in extra if row[i] != ""}
            return number, name, clean_contact_fields(fields) if fields else fields

        writer = _writer(_Table("contact", "list_id", list_id, ("number", "name", "fields")),
                         _merge_contacts)
        return _import(layout, rows, build, writer)


def import_dnd(storage: Storage, account_id: str, account_name: str, dnd_list_id: str,
               csv_name: str) -> ImportResult:
    """Import ``csv_name`` into a DND list (columns dnd_contact_* or contact_*)."""
    service.own_dnd_list(account_id, dnd_list_id)

    with _open_text(storage, account_name, csv_name, "dnd_csv_name") as text:
        layout, rows = _rows(text, ("dnd_contact_number", "contact_number"),
                             ("dnd_contact_name", "contact_name"), "dnd_csv_name")
        writer = _writer(_Table("dnd_contact", "dnd_list_id", dnd_list_id, ("number", "name")),
                         _merge_dnd)
        return _import(layout, rows, _number_and_name(layout, False), writer)
