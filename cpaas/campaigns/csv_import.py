"""Streaming CSV import of contacts and DND numbers from object storage.

Memory stays flat whatever the file size: rows are read one by one (no row longer than
:data:`MAX_ROW_CHARS`) and written in batches, all in one transaction: a file refused
anywhere (not UTF-8, not CSV, a cell or row too long, more fields than the API allows)
leaves the list exactly as it was. Bad rows are skipped and reported.

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
from cpaas.campaigns.schemas import MAX_CONTACT_FIELDS, clean_contact_fields
from cpaas.db import database, dialect_of
from cpaas.envelope import ApiError, NotFound
from cpaas.storage import InvalidName, NotFound as ObjectMissing, Storage, account_key
from cpaas.validation import PHONE_RE

BATCH = 5000
MAX_REPORTED_ERRORS = 20
MAX_CELL_CHARS = 64 * 1024
#: A record longer than this refuses the file, as a cell over MAX_CELL_CHARS does. The
#: longest importable contact is about 26 K characters (50 fields of 500, the name and
#: the number; quoting may double it), and it bounds what one row can cost in memory.
MAX_ROW_CHARS = 4 * MAX_CELL_CHARS
csv.field_size_limit(MAX_CELL_CHARS)

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


class _RowTooLong(Exception):
    """A record longer than :data:`MAX_ROW_CHARS` (raised from inside the CSV reader)."""


def _bounded_lines(text: io.TextIOWrapper) -> tuple[Iterator[str], Callable[[], None]]:
    """The file's lines for ``csv.reader``, and the call that marks a record's end.

    A record may span lines (a quoted field holds newlines) and a line may be endless;
    either way no more than :data:`MAX_ROW_CHARS` characters of one record are read,
    so a hostile file (one row of millions of commas) costs bounded memory: the reader
    builds a row's cells only as it reads them.
    """
    fed = 0

    def lines() -> Iterator[str]:
        nonlocal fed
        readline = text.readline
        while line := readline(MAX_ROW_CHARS + 1):
            fed += len(line)
            if fed > MAX_ROW_CHARS:
                raise _RowTooLong
            yield line

    def record_ended() -> None:
        nonlocal fed
        fed = 0

    return lines(), record_ended


def _refusal(err: Exception, field_name: str, line: int) -> ApiError:
    """The 400 for a file that cannot be read past ``line`` (the last one read whole)."""
    if isinstance(err, UnicodeDecodeError):
        return ApiError(400, f"{field_name} is not UTF-8 text", {field_name: ["not UTF-8"]})
    if isinstance(err, _RowTooLong):
        return ApiError(400, f"{field_name} has a row longer than {MAX_ROW_CHARS // 1024} KiB "
                             f"after line {line}",
                        {field_name: [f"rows must be at most {MAX_ROW_CHARS // 1024} KiB"]})
    return ApiError(400, f"{field_name} is not valid CSV near line {line}", {field_name: [str(err)]})


def _rows(text: io.TextIOWrapper, number_cols: tuple[str, ...], name_cols: tuple[str, ...],
          field_name: str) -> tuple[_Layout, Iterator[tuple[int, list[str]]]]:
    """The file's layout and its (line, cells) rows.

    Same reading rules as ``csv.DictReader``: blank lines are skipped, a header name
    that appears twice means its last column, and ``line`` is ``DictReader.line_num``
    (also in the "not valid CSV near line N" error, where it is the last line read
    successfully). A file that cannot be read (not UTF-8, not CSV, a cell over 64 KiB,
    a row over :data:`MAX_ROW_CHARS`) raises a 400 wherever that happens.
    """
    lines, record_ended = _bounded_lines(text)
    reader = csv.reader(lines)
    try:
        header = next(reader, None) or []
    except (UnicodeDecodeError, csv.Error, _RowTooLong) as err:
        raise _refusal(err, field_name, 0) from None
    record_ended()
    header = [h.strip() for h in header]
    number_col = next((c for c in number_cols if c in header), None)
    if number_col is None:
        raise ApiError(400, f"{field_name} has no {' or '.join(number_cols)} column",
                       {field_name: [f"header must name a {number_cols[0]} column"]})
    name_col = next((c for c in name_cols if c in header), "")
    position = {name: i for i, name in enumerate(header)}  # the last one of a repeated name
    extra = dict.fromkeys(h for h in header
                          if h and h not in (number_col, name_col) + number_cols + name_cols)
    layout = _Layout(len(header), number_col, position[number_col], name_col,
                     position[name_col] if name_col else -1, [(h, position[h]) for h in extra])

    def rows() -> Iterator[tuple[int, list[str]]]:
        line = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (UnicodeDecodeError, csv.Error, _RowTooLong) as err:
                raise _refusal(err, field_name, line) from None
            record_ended()
            line = reader.line_num
            if row:  # blank lines are skipped
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
        result.imported += writer.commit()
    except BaseException:
        # A refused file (or a failed write) stores nothing: the batches written so far
        # go with the import's one transaction.
        writer.abort()
        raise
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


class _Aborted(Exception):
    """Handed to a transaction's ``__exit__`` so that it rolls back."""


class _Table:
    """How one kind of import writes a batch of merged rows, and how the import begins,
    ends and is undone (:meth:`begin`, :meth:`finish`, :meth:`discard`).

    PostgreSQL: one transaction holds the whole import. While no row of the import has
    met an existing one, a batch is COPYed straight into the table (a plain insert: no
    staging, no conflict arbitration) inside a savepoint. The first unique violation
    undoes that savepoint, and from then on every batch is COPYed into a temporary table
    and upserted with ``ON CONFLICT … DO UPDATE`` in file order. Both store exactly what
    the upsert of the original rows would.
    SQLite: batches go into a temporary table (the temp database: no lock on the main
    one, so other writers go on meanwhile), merged into the list by one upsert in file
    order at the end, in a transaction of its own; a refused file just drops it.
    """

    def __init__(self, table: str, owner_col: str, owner: str, columns: tuple[str, ...]) -> None:
        self.table, self.owner_col, self.owner, self.columns = table, owner_col, owner, columns
        self.kind = "sqlite"  # or "postgresql": set by _writer from the database
        self.direct = True
        changed = [c for c in columns if c != "number"]
        # A row already stored as the file has it is left alone: re-importing a list
        # rewrites (and logs) only the contacts that changed. The columns are NOT NULL.
        updates = (", ".join(f"{c} = EXCLUDED.{c}" for c in changed) + " WHERE "
                   + " OR ".join(f"{table}.{c} <> EXCLUDED.{c}" for c in changed))
        self.staged = f"{table}_import"
        self.staged_columns = ", ".join((owner_col, *columns))
        self.staged_ddl = ", ".join(f"{c} TEXT NOT NULL" for c in (owner_col, *columns))
        self.create_staged = (f"CREATE TEMPORARY TABLE IF NOT EXISTS {self.staged} (ord BIGSERIAL, "
                              f"{self.staged_ddl}) ON COMMIT DELETE ROWS")
        upsert = (f"INSERT INTO {table} ({self.staged_columns}) SELECT {self.staged_columns} "
                  "FROM {staged} WHERE true ORDER BY ord "
                  f"ON CONFLICT ({owner_col}, number) DO UPDATE SET {updates}")
        # (WHERE true: SQLite's grammar needs it between a SELECT and ON CONFLICT.)
        self.upsert_staged = upsert.format(staged=self.staged)
        self.transaction = database.atomic()
        self.sqlite_stage = (f"INSERT INTO temp.{self.staged} ({self.staged_columns}) "
                             f"VALUES (?, {', '.join('?' for _ in columns)})")
        self.sqlite_merge = upsert.format(staged=f"temp.{self.staged}")

    def payload(self, rows: list[tuple[str, ...]]) -> object:
        """What :meth:`write` needs for these merged rows (built by the parsing thread)."""
        if self.kind == "postgresql":
            return _copy_payload(self.owner, rows)
        return [(self.owner, *row) for row in rows]

    def begin(self) -> None:
        """Start the import (on the thread that writes its batches)."""
        if self.kind == "postgresql":
            self.transaction.__enter__()
            return
        self._drop_staged()
        with peewee.__exception_wrapper__:
            database.cursor().execute(
                f"CREATE TEMPORARY TABLE {self.staged} (ord INTEGER PRIMARY KEY, {self.staged_ddl})")

    def finish(self) -> None:
        """Make the whole import visible at once."""
        if self.kind == "postgresql":
            self.transaction.__exit__(None, None, None)
            return
        try:
            with database.atomic(), peewee.__exception_wrapper__:
                database.cursor().execute(self.sqlite_merge)
        finally:
            self._drop_staged()

    def discard(self) -> None:
        """Undo everything the import wrote."""
        if self.kind == "postgresql":
            self.transaction.__exit__(_Aborted, _Aborted(), None)
        else:
            self._drop_staged()

    def _drop_staged(self) -> None:
        with peewee.__exception_wrapper__:
            database.cursor().execute(f"DROP TABLE IF EXISTS temp.{self.staged}")

    def write(self, payload: object) -> None:
        """Store one batch (PostgreSQL: inside the import's transaction)."""
        if self.kind == "postgresql":
            self._write_postgresql(payload)  # type: ignore[arg-type]
            return
        cursor = database.cursor()
        with peewee.__exception_wrapper__:
            # A savepoint outside any transaction is a deferred one: it locks only the
            # temp database it writes, and makes the batch one commit instead of one a row.
            cursor.execute("SAVEPOINT csv_stage")
            try:
                cursor.executemany(self.sqlite_stage, payload)  # type: ignore[arg-type]
            except BaseException:
                cursor.execute("ROLLBACK TO csv_stage")
                raise
            finally:
                cursor.execute("RELEASE csv_stage")

    def copy(self, cursor: object, table: str, payload: tuple[str, str]) -> None:
        form, text = payload
        names = self.staged_columns
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
                with database.atomic():  # a savepoint: a violation undoes this batch only
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
            # No commit empties the staging table before the next batch: empty it now.
            # TRUNCATE, not DELETE: deleted rows stay until the transaction ends, and every
            # later batch's scan would read them again.
            cursor.execute(f"TRUNCATE {self.staged}")


class _Writer:
    """Stores batches in order as one unit: :meth:`commit` makes them all visible at once,
    :meth:`abort` undoes them (:class:`_Table` says how; inside a caller's transaction,
    a savepoint of it).

    ``put`` prepares a batch in the calling thread (merging, building the COPY data) and
    hands it over; it returns how many contacts the batches finished since the last call
    stored. On PostgreSQL, when the caller is not inside a transaction of its own, the
    transaction and its batches live on one helper thread with its own pooled
    connection, so the database works on batch N while this thread parses batch N+1;
    order, transaction and results are those of writing them inline.
    """

    def __init__(self, table: _Table, prepare: Callable[[list], object],
                 store: Callable[[object], int], pipelined: bool) -> None:
        self.table, self.prepare, self.store = table, prepare, store
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="csv-import") if pipelined else None
        self.pending: Future | None = None
        try:
            self._run(table.begin)
        except BaseException:
            self._release()
            raise
        self.open = True

    def _run(self, call: Callable[..., object], *args: object) -> object:
        """``call(*args)`` on the thread that holds the transaction."""
        if self.pool is None:
            return call(*args)
        return self.pool.submit(call, *args).result()

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

    def commit(self) -> int:
        """Wait for the last batch and commit; returns what the batches since the last
        ``put`` stored."""
        done = self.drain()
        self.open = False  # peewee ends the transaction even when COMMIT fails
        self._run(self.table.finish)
        self._release()
        return done

    def abort(self) -> None:
        """Wait for a batch still being written (its outcome no longer matters) and roll
        everything back."""
        try:
            self.drain()
        except Exception:  # noqa: BLE001 - the rollback below undoes it, whatever it was
            pass
        try:
            if self.open:
                self.open = False
                self._run(self.table.discard)
        finally:
            self._release()

    def _release(self) -> None:
        if self.pool is None:
            return
        try:
            # Give the helper thread's connection back to the pool.
            self.pool.submit(_close_connection).result()
        finally:
            self.pool.shutdown()
            self.pool = None


def _close_connection() -> None:
    if not database.is_closed():
        database.close()


def _writer(table: _Table, merge: Callable[[list], list]) -> _Writer:
    table.kind = dialect_of(database.obj)

    def prepare(batch: list) -> object:
        rows = merge(batch)
        return len(rows), (table.payload(rows) if rows else None)

    def store(prepared: object) -> int:
        count, payload = prepared  # type: ignore[misc]
        if count:
            table.write(payload)
        return count

    return _Writer(table, prepare, store,
                   pipelined=table.kind == "postgresql" and not database.in_transaction())


# -- the two imports ----------------------------------------------------------------------

def import_contacts(storage: Storage, account_id: str, account_name: str, list_id: str,
                    csv_name: str) -> ImportResult:
    """Import ``csv_name`` (one of the account's files) into a contact list."""
    service.own_list(account_id, list_id)

    with _open_text(storage, account_name, csv_name, "csv_name") as text:
        layout, rows = _rows(text, ("contact_number",), ("contact_name",), "csv_name")
        if len(layout.extra) > MAX_CONTACT_FIELDS:
            # Every named column is a contact field: as over the API, a contact may
            # carry at most MAX_CONTACT_FIELDS of them.
            raise ApiError(400, f"csv_name has more than {MAX_CONTACT_FIELDS} contact fields",
                           {"csv_name": [f"at most {MAX_CONTACT_FIELDS} fields (columns besides "
                                         "contact_number and contact_name)"]})
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
