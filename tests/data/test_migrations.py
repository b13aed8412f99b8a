"""Versioned schema upgrades (cpaas/migrations) on SQLite and PostgreSQL.

A database made by the first release (its schema frozen in fixtures/schema_v1.sql, the
schema.sql of that release, which had no version table) is given the rows that release
would have stored (written through today's API into a current database, then copied as
that release stored them), brought forward by ``cpaas init``, and read back: every row of
every table is what it was, and every answer of the API's reads is that of the database
the rows came from. A fresh install (schema.sql) and an upgraded database
have the same tables, columns, indexes and constraints. Upgrades are idempotent, each
migration is one transaction, and concurrent ``init`` runs wait for each other.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse, urlunparse

import peewee
import pytest

from cpaas import accounts, cli, config, db
from cpaas.app import create_app
from cpaas.cdr.writer import CdrRecord, write
from tests.api.conftest import SECRETS, Api, body
from tests.api.helpers import future_local, make_campaign, make_dnd_list, make_list, ok_body, upload

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_V1 = Path(__file__).parent / "fixtures" / "schema_v1.sql"
#: Every table of the first release; the fill below puts rows in each.
V1_TABLES = ("account", "announce_template", "contact_list", "dnd_list", "campaign", "callback",
             "call_request", "cdr_stats", "contact", "dnd_contact", "cdr")


# --- databases --------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def new_url(request, tmp_path) -> Iterator[tuple[str, Callable[[str], str]]]:
    """(dialect, make) where ``make(tag)`` returns the URL of a new, empty database."""
    dialect = request.param
    previous = db.database.obj
    made: list[str] = []
    admin = base = None
    if dialect == "postgresql":
        import psycopg2

        base = urlparse(request.getfixturevalue("postgres_url"))
        admin = psycopg2.connect(urlunparse(base._replace(path="/postgres")))
        admin.autocommit = True

    def make(tag: str) -> str:
        if dialect == "sqlite":
            return f"sqlite:///{tmp_path / tag / 'cpaas.sqlite3'}"
        name = f"mig_{tag}_{secrets.token_hex(4)}"
        admin.cursor().execute(f"CREATE DATABASE {name}")
        made.append(name)
        return urlunparse(base._replace(path=f"/{name}"))

    yield dialect, make
    db.database.initialize(previous)  # the API tests' database, as it was
    if admin is not None:
        for name in made:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def open_db(url: str) -> peewee.Database:
    """A connection of the test's own, outside the models' proxy."""
    return db.open_database(url)


def make_v1(url: str) -> None:
    """A database exactly as the first release's ``cpaas init`` left it."""
    database = open_db(url)
    with database.connection_context(), database.atomic():
        for statement in db.sql_statements(SCHEMA_V1, db.dialect_of(database)):
            database.execute_sql(statement)
    _close(database)


def _close(database: peewee.Database) -> None:
    if hasattr(database, "close_all"):
        database.close_all()
    else:
        database.close()


def versions(url: str) -> list[int]:
    database = open_db(url)
    with database.connection_context():
        ids = [r[0] for r in database.execute_sql("SELECT id FROM schema_version ORDER BY id")]
    _close(database)
    return ids


def latest() -> int:
    from cpaas import migrations

    return migrations.latest_version()


def catalog(url: str) -> dict:
    """Tables → columns, indexes, foreign keys (and, on PostgreSQL, every constraint)."""
    database = open_db(url)
    out: dict = {}
    with database.connection_context():
        for table in sorted(t for t in database.get_tables() if not t.startswith("sqlite_")):
            columns = {c.name: (c.data_type.lower(), c.null, c.primary_key, c.default)
                       for c in database.get_columns(table)}
            indexes = {i.name: (tuple(i.columns), i.unique, " ".join((i.sql or "").split()))
                       for i in database.get_indexes(table)}
            keys = sorted((k.column, k.dest_table, k.dest_column) for k in database.get_foreign_keys(table))
            out[table] = {"columns": columns, "indexes": indexes, "foreign_keys": keys}
        if db.dialect_of(database) == "postgresql":
            out["constraints"] = sorted(database.execute_sql(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE connamespace = 'public'::regnamespace").fetchall())
    _close(database)
    return out


def dump(url: str, tables: dict[str, list[str]]) -> dict[str, list[tuple]]:
    """Every row of ``tables`` (table → the columns to read), in a stable order."""
    database = open_db(url)
    with database.connection_context():
        rows = {t: [tuple(r) for r in database.execute_sql(
            f"SELECT {', '.join(cols)} FROM {t} ORDER BY {', '.join(cols)}")] for t, cols in tables.items()}
    _close(database)
    return rows


# --- the platform over one database -----------------------------------------------------

def settings_for(url: str, data_dir: Path, redis_url: str) -> config.Settings:
    return config.Settings(data_dir=data_dir, database_url=url, redis_url=redis_url,
                           storage_url=str(data_dir / "bucket"), auth_fail_limit=1000,
                           auth_fail_window=60, admin_password="operator-pass")


def clients(settings: config.Settings) -> tuple[Api, Api]:
    app = create_app(settings)
    accounts._cache.clear()
    return (Api(app.test_client(), "account_1", SECRETS["account_1"]),
            Api(app.test_client(), "account_2", SECRETS["account_2"]))


def run_init(monkeypatch, settings: config.Settings, *argv: str) -> int:
    """``cpaas init`` (or another command) as an operator runs it, on ``settings``' database."""
    monkeypatch.setenv("CPAAS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    for var in ("CPAAS_ACCOUNT_1_AUTH", "CPAAS_ACCOUNT_2_AUTH", "CPAAS_ADMIN_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    return cli.main(list(argv or ["init"]))


CONTACTS = [{"contact_name": "ankit", "contact_number": "919979270001",
             "contact_fields": {"field1": "Ankit", "field2": "Jayswal", "field3": "500"}},
            {"contact_name": "abc", "contact_number": "918000680001", "contact_fields": {"field1": "abc"}}]
CONTACTS_CSV = "contact_name,contact_number,field1,field2\nravi,919900000011,Ravi,42\nmeena,919900000012,Meena,7\n"
DND_CSV = "dnd_contact_name,dnd_contact_number\nblocked,919900000021\n"


def fill(api: Api, other: Api) -> dict[str, list[str]]:
    """Rows in every table of the first release, written through the API and the services."""
    list_id, csv_list = make_list(api, "old_list"), make_list(api, "old_csv_list")
    ok_body(api.post("/api/add_contact_to_list", {"list_id": list_id, "contacts": CONTACTS}))
    ok_body(upload(api, "old_contacts.csv", CONTACTS_CSV))
    ok_body(api.post("/api/import_broadcast_contacts_csv", {"list_id": csv_list, "csv_name": "old_contacts.csv"}))
    dnd = make_dnd_list(api, "old_dnd")
    ok_body(api.post("/api/add_dnd_contact_to_list", {"dnd_list_id": dnd, "dnd_contacts": [
        {"dnd_contact_name": "ankit", "dnd_contact_number": "919979270001"}]}))
    ok_body(upload(api, "old_dnd.csv", DND_CSV))
    ok_body(api.post("/api/import_dnd_contacts_csv", {"dnd_list_id": dnd, "dnd_csv_name": "old_dnd.csv"}))
    campaigns = [make_campaign(api, "old_campaign", list_id=list_id, dnd_list_id=dnd),
                 make_campaign(api, "stopped_campaign", list_id=csv_list),
                 make_campaign(other, "their_campaign")]
    ok_body(api.post("/api/stop_campaign", {"campaign_id": campaigns[1]}))
    later = future_local(hours=24 * 30)
    callbacks = [ok_body(api.post("/api/callback", {
        "agent_number": "919979270001", "caller_id": "15168148111", "destination_number": number,
        "recording_option": "on", "time_zone": "Asia/Kolkata", "scheduled_at": later}))["request_id"]
        for number in ("918000680001", "918000680002")]
    ok_body(api.post("/api/announce_template", {"template_text": "Code {otp}, from the old release"}))
    calls = [ok_body(api.post("/api/click2call", {
        "agent_number": "919900000101", "caller_id": "15168148111", "destination_number": "919900000102",
        "recording_option": "both", "transcript": "off"}))["request_id"]]
    template = body(api.get("/api/announce_template"))["result"][0]["announce_template_id"]
    calls.append(ok_body(api.post("/api/outbound_call", {
        "customer_number": "919900000001", "otp": "1987", "announce_template_id": template, "repeat": "1",
        "caller_id": "15168148111", "voice": "Joanna", "volume": "soft", "rate": "slow", "pitch": "medium",
        "language_code": "en-US", "tts_engine_type": "standard"}))["request_id"])
    with db.database.connection_context():
        acme, _ = accounts.create("acme")
        owner = acme.id
        for n, (status, campaign) in enumerate([("ANSWER", None), ("BUSY", None), ("DND", campaigns[0])]):
            ended = datetime(2023, 7, 7, 6, 8, 16) + timedelta(minutes=n)
            assert write(CdrRecord(
                account_id=_account_id("account_1"), request_id=calls[0], dial_status=status,
                uniqueid="" if status == "DND" else f"1688710079.{n}", call_date=ended,
                destination_context="local_call", call_direction="outbound-api", caller_id="15168148111",
                dialed_number="919979270001", customer_number="919979270001", campaign_id=campaign,
                list_id=list_id if campaign else "", is_dnd=int(status == "DND"),
                answer_at=ended - timedelta(seconds=7) if status == "ANSWER" else None,
                end_at=ended, billsec=7.26955, call_duration=17.0311, hangup_cause="normal")) is not None
    return {"campaigns": campaigns, "callbacks": callbacks, "calls": calls, "owner": [owner]}


def _account_id(name: str) -> str:
    from cpaas.models import Account

    return Account.get(Account.name == name).id


def reads(api: Api, other: Api, made: dict[str, list[str]]) -> dict[str, object]:
    """What the API answers about everything ``fill`` stored (the 200 bodies)."""
    wide = {"start_call_date": "2023-07-01", "end_call_date": "2023-07-31"}
    got: dict[str, object] = {}
    for who, client in (("api", api), ("other", other)):
        got[f"{who}/campaigns"] = ok_body(client.get("/api/get_campaign_details"))
        got[f"{who}/templates"] = ok_body(client.get("/api/announce_template"))
        got[f"{who}/cdr"] = ok_body(client.post("/api/get_cdr_by_date", wide))
        got[f"{who}/stats"] = ok_body(client.get("/api/get_cdr_statistics"))
    for request_id in made["callbacks"]:
        got[f"callback/{request_id}"] = ok_body(api.get(f"/api/callback?request_id={request_id}"))
    for request_id in made["calls"]:
        got[f"cdr/{request_id}"] = ok_body(api.post("/api/get_cdr_by_request_id", {"request_id": request_id}))
    for campaign_id in made["campaigns"][:2]:
        got[f"campaign_cdr/{campaign_id}"] = ok_body(api.post("/api/get_cdr_by_campaign_id",
                                                               {"campaign_id": campaign_id}))
        got[f"campaign_stats/{campaign_id}"] = ok_body(api.post("/api/get_campaign_cdr_statistics",
                                                                 {"campaign_id": campaign_id}))
    return got


# --- tests ------------------------------------------------------------------------------

#: CDR keys later releases added to ``api_json`` (the first release's rows lack them).
NEW_CDR_KEYS = ("transfer_to", "transcript_status")


def as_first_release_wrote(table: str, column: str, value):
    """A current row's ``value`` as the first release stored it (only api_json differs)."""
    if table == "cdr" and column == "api_json":
        shaped = json.loads("{" + value)
        return json.dumps({k: v for k, v in shaped.items() if k not in NEW_CDR_KEYS},
                          separators=(",", ":"))[1:]
    return value


def copy_as_first_release(src: str, dst: str, tables: dict[str, list[str]]) -> None:
    """Every row of ``tables`` from the current database ``src`` into the first-release
    database ``dst``, as that release would have written it (foreign keys in order)."""
    source, target = open_db(src), open_db(dst)
    with source.connection_context(), target.connection_context(), target.atomic():
        for table in V1_TABLES:
            cols = tables[table]
            marks = ", ".join([target.param] * len(cols))
            for row in source.execute_sql(f"SELECT {', '.join(cols)} FROM {table}"):
                target.execute_sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})",
                                   [as_first_release_wrote(table, c, v) for c, v in zip(cols, row)])
        if db.dialect_of(target) == "postgresql":
            for table in ("contact", "dnd_contact", "cdr"):   # ids were copied explicitly
                target.execute_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                   f"(SELECT COALESCE(MAX(id), 1) FROM {table}))")
    _close(source)
    _close(target)


def test_upgrade_from_the_first_release_keeps_every_row(new_url, tmp_path, redis_url, monkeypatch):
    """Rows a first-release database holds (made through today's API on a current database,
    then stored as that release stored them) survive the upgrade, and the upgraded database
    answers every read exactly as the database they came from."""
    dialect, make = new_url
    current, old = make("current"), make("old")
    settings = settings_for(current, tmp_path / "data", redis_url)
    assert run_init(monkeypatch, settings) == 0
    api, other = clients(settings)
    with db.database.connection_context():
        accounts.seed(settings.data_dir, SECRETS, settings.admin_password)
    made = fill(api, other)
    answers = reads(api, other, made)
    make_v1(old)
    v1_columns = {t: sorted(c["columns"]) for t, c in catalog(old).items() if t in V1_TABLES}
    assert sorted(v1_columns) == sorted(V1_TABLES)
    copy_as_first_release(current, old, v1_columns)
    kept = {t: [c for c in cols if (t, c) != ("cdr", "api_json")] for t, cols in v1_columns.items()}
    rows_before = dump(old, kept)
    assert all(rows_before[t] for t in V1_TABLES), {t: len(r) for t, r in rows_before.items()}

    settings = settings_for(old, tmp_path / "data", redis_url)
    assert run_init(monkeypatch, settings) == 0

    assert versions(old) == list(range(1, latest() + 1))
    assert dump(old, kept) == rows_before
    api, other = clients(settings)
    assert reads(api, other, made) == answers
    # still usable: new rows, and the old rows' unique names still refuse a duplicate
    ok_body(api.post("/api/create_campaign_list", {"list_name": "new_list"}))
    assert api.post("/api/create_campaign_list", {"list_name": "old_list"}).status_code == 409


def test_fresh_install_equals_an_upgraded_first_release(new_url, tmp_path, monkeypatch, redis_url):
    _, make = new_url
    fresh, old = make("fresh"), make("old")
    make_v1(old)
    for url, tag in ((fresh, "fresh"), (old, "old")):
        assert run_init(monkeypatch, settings_for(url, tmp_path / tag, redis_url)) == 0
    assert catalog(fresh) == catalog(old)
    assert versions(fresh) == versions(old) == list(range(1, latest() + 1))


def test_upgrade_is_idempotent(new_url):
    from cpaas import migrations

    _, make = new_url
    url = make("twice")
    make_v1(url)
    database = open_db(url)
    with database.connection_context():
        assert migrations.upgrade(database) == list(range(2, latest() + 1))
        before = catalog(url)
        assert migrations.upgrade(database) == []
        assert migrations.current_version(database) == latest()
    _close(database)
    assert catalog(url) == before
    assert versions(url) == list(range(1, latest() + 1))


def _migrations_dir(tmp_path: Path, extra: dict[str, str]) -> Path:
    """The real migrations plus ``extra`` (file name → SQL) after them."""
    from cpaas import migrations

    folder = tmp_path / "migrations"
    folder.mkdir()
    for path in migrations.migration_files():
        shutil.copy(path, folder / path.name)
    for name, sql in extra.items():
        (folder / name).write_text(sql)
    return folder


def test_a_failing_migration_changes_nothing_and_stops_the_run(new_url, tmp_path):
    from cpaas import migrations

    _, make = new_url
    url = make("broken")
    make_v1(url)
    nxt = latest() + 1
    name = f"{nxt:04d}_broken.sql"
    folder = _migrations_dir(tmp_path, {name: "CREATE TABLE probe (id INTEGER NOT NULL PRIMARY KEY);\n"
                                             "INSERT INTO probe (id) VALUES (1);\n"
                                             "SELECT no_such_function();\n"})
    database = open_db(url)
    with database.connection_context():
        with pytest.raises(migrations.MigrationError, match=name):
            migrations.upgrade(database, folder)
        assert migrations.current_version(database) == latest()  # the good ones before it stay
        assert "probe" not in database.get_tables()               # its first statements rolled back
        (folder / name).write_text("CREATE TABLE probe (id INTEGER NOT NULL PRIMARY KEY);\n")
        assert migrations.upgrade(database, folder) == [nxt]
        assert "probe" in database.get_tables()
    _close(database)


def _slow(dialect: str) -> str:
    """A statement that takes a moment, so concurrent runners overlap inside a migration."""
    if dialect == "postgresql":
        return "SELECT pg_sleep(0.5)"
    return ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 2000000) "
            "SELECT count(*) FROM n")


def test_concurrent_upgrades_apply_each_migration_once(new_url, tmp_path):
    from cpaas import migrations

    dialect, make = new_url
    url = make("race")
    make_v1(url)
    nxt = latest() + 1
    folder = _migrations_dir(tmp_path, {f"{nxt:04d}_slow.sql": (
        f"CREATE TABLE probe (id INTEGER NOT NULL PRIMARY KEY);\n{_slow(dialect)};\n"
        "INSERT INTO probe (id) VALUES (1);\n")})
    database = open_db(url)
    start, results, errors = threading.Barrier(3), [], []

    def runner() -> None:
        try:
            with database.connection_context():
                start.wait()
                results.append(migrations.upgrade(database, folder))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=runner) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _close(database)
    assert errors == []
    assert len(results) == 3
    assert sorted(v for r in results for v in r) == list(range(2, nxt + 1))  # each once, by someone
    assert versions(url) == list(range(1, nxt + 1))
    assert dump(url, {"probe": ["id"]}) == {"probe": [(1,)]}


def _hold_the_lock(dialect: str, url: str):
    """Take the migrations' lock as another ``init`` would; returns a release function."""
    if dialect == "postgresql":
        import psycopg2

        from cpaas import migrations

        conn = psycopg2.connect(url)
        conn.cursor().execute("SELECT pg_advisory_xact_lock(%s)", (migrations.LOCK_KEY,))
        return conn.close
    database = open_db(url)
    database.connect()
    txn = database.atomic()
    txn.__enter__()

    def release() -> None:
        txn.__exit__(None, None, None)
        database.close()
    return release


def _waiters(dialect: str, url: str) -> int:
    """How many processes wait for the lock held by :func:`_hold_the_lock`."""
    if dialect == "postgresql":
        import psycopg2

        conn = psycopg2.connect(url)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            count = cur.fetchone()[0]
        conn.close()
        return count
    inode = os.stat(url[len("sqlite:///"):] + ".writers").st_ino
    blocked = [line for line in Path("/proc/locks").read_text().splitlines() if "->" in line]
    return sum(1 for line in blocked if line.split()[6].endswith(f":{inode}"))


def test_two_init_commands_at_once(new_url, tmp_path):
    dialect, make = new_url
    url = make("twoinit")
    data_dir = tmp_path / "data"
    env = {**os.environ, "CPAAS_DATA_DIR": str(data_dir), "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    for var in ("CPAAS_ACCOUNT_1_AUTH", "CPAAS_ACCOUNT_2_AUTH", "CPAAS_ADMIN_PASSWORD"):
        env.pop(var, None)
    release = _hold_the_lock(dialect, url)
    procs = [subprocess.Popen([sys.executable, "-m", "cpaas", "init"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while _waiters(dialect, url) < 2:
            assert time.monotonic() < deadline, "the init commands never waited for the lock"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
    finally:
        release()
    outcomes = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outcomes
    assert versions(url) == list(range(1, latest() + 1))
    creds = json.loads((data_dir / "credentials").read_text())
    database = db.init(url)
    with database.connection_context():
        from cpaas.models import Account

        assert sorted(a.name for a in Account.select()) == ["account_1", "account_2"]
        accounts._cache.clear()
        for name in ("account_1", "account_2"):
            assert accounts.verify(name, creds[name]) is not None, name
    _close(database)


def test_other_commands_refuse_an_old_schema_and_leave_it(new_url, tmp_path, monkeypatch, redis_url, capsys):
    _, make = new_url
    url = make("cmds")
    make_v1(url)
    settings = settings_for(url, tmp_path / "data", redis_url)
    before = catalog(url)
    with pytest.raises(SystemExit) as exc:
        run_init(monkeypatch, settings, "accounts", "list")
    assert exc.value.code != 0
    assert "cpaas init" in capsys.readouterr().err
    assert catalog(url) == before
    assert run_init(monkeypatch, settings) == 0
    assert run_init(monkeypatch, settings, "accounts", "list") == 0


def test_init_refuses_a_newer_or_unknown_database(new_url, tmp_path, monkeypatch, redis_url):
    from cpaas import migrations

    _, make = new_url
    newer, partial = make("newer"), make("partial")
    settings = settings_for(newer, tmp_path / "newer", redis_url)
    assert run_init(monkeypatch, settings) == 0
    database = open_db(newer)
    with database.connection_context():
        database.execute_sql(f"INSERT INTO schema_version (id, applied_at) VALUES ({latest() + 1}, "
                             f"{database.param})", ("2030-01-01 00:00:00",))
        with pytest.raises(migrations.MigrationError, match="newer"):
            migrations.upgrade(database)
    _close(database)
    database = open_db(partial)  # some of the first release's tables, not all: not ours to guess
    with database.connection_context():
        database.execute_sql("CREATE TABLE account (id VARCHAR(12) NOT NULL PRIMARY KEY)")
        with pytest.raises(migrations.MigrationError, match="campaign"):
            migrations.upgrade(database)
        assert "schema_version" not in database.get_tables()
    _close(database)


@pytest.mark.parametrize("process", ["web", "worker", "events"])
def test_a_platform_process_refuses_an_old_schema_with_one_sentence(new_url, tmp_path, process):
    _, make = new_url
    url = make("old")
    make_v1(url)
    env = {**os.environ, "DATABASE_URL": url, "CPAAS_DATA_DIR": str(tmp_path),
           "REDIS_URL": "redis://127.0.0.1:1/0"}  # never reached: the schema check comes first
    run = subprocess.run([sys.executable, "-m", "cpaas.procs", process], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "run `python -m cpaas init`" in run.stderr + run.stdout
    assert "Traceback" not in run.stderr + run.stdout
    database = open_db(url)  # refused, not upgraded behind the operator's back:
    with database.connection_context():
        assert not database.table_exists("schema_version")
    _close(database)
