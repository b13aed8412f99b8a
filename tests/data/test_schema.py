"""schema.sql is the source of truth; the peewee models must mirror it on both databases."""
from __future__ import annotations

import secrets
from datetime import datetime
from urllib.parse import urlparse, urlunparse

import peewee
import pytest

from cpaas import db
from cpaas.models import ALL_MODELS, Account


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fresh_db(request, tmp_path_factory):
    """A brand-new database with schema.sql applied (not the API tests' one)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("schema") / "schema.sqlite3"
        database = db.open_database(f"sqlite:///{path}")
        db.create_schema(database)
        yield "sqlite", database
        database.close()
        return
    import psycopg2

    base = urlparse(request.getfixturevalue("postgres_url"))
    name = f"schema_{secrets.token_hex(4)}"
    admin = psycopg2.connect(urlunparse(base._replace(path="/postgres")))
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    database = db.open_database(urlunparse(base._replace(path=f"/{name}")))
    try:
        db.create_schema(database)
        yield "postgresql", database
    finally:
        database.close_all() if hasattr(database, "close_all") else database.close()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


def _model_columns(model) -> dict[str, bool]:
    return {f.column_name: f.null for f in model._meta.sorted_fields}


def _primary_key(model) -> set[str]:
    pk = model._meta.primary_key
    if isinstance(pk, peewee.CompositeKey):
        return {model._meta.fields[name].column_name for name in pk.field_names}
    return {pk.column_name}


def test_tables_are_exactly_the_models(fresh_db):
    _, database = fresh_db
    # schema_version is the migration runner's own (cpaas/migrations), not a model's.
    tables = {t for t in database.get_tables() if not t.startswith("sqlite_")} - {"schema_version"}
    assert tables == {m._meta.table_name for m in ALL_MODELS}


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m._meta.table_name)
def test_columns_and_nullability_match_the_model(fresh_db, model):
    _, database = fresh_db
    table = model._meta.table_name
    columns = database.get_columns(table)
    assert {c.name for c in columns} == set(_model_columns(model)), table
    assert set(database.get_primary_keys(table)) == _primary_key(model), table
    pk = _primary_key(model)
    expected = _model_columns(model)
    for column in columns:
        if column.name in pk:
            continue  # primary keys: see test_primary_keys_refuse_null
        assert column.null == expected[column.name], f"{table}.{column.name}: schema null={column.null}"


@pytest.mark.parametrize("model", [m for m in ALL_MODELS if not isinstance(m._meta.primary_key, peewee.AutoField)],
                         ids=lambda m: m._meta.table_name)
def test_primary_keys_refuse_null(fresh_db, model):
    # SQLite lets a non-INTEGER PRIMARY KEY column hold NULL unless it is declared NOT NULL.
    dialect, database = fresh_db
    table = model._meta.table_name
    columns = list(model._meta.sorted_fields)
    pk = _primary_key(model)
    values = []
    for field in columns:
        if field.column_name in pk:
            values.append(None)
        elif isinstance(field, peewee.DateTimeField):
            values.append(datetime(2030, 1, 1))
        elif isinstance(field, (peewee.IntegerField, peewee.FloatField)):
            values.append(0)
        else:
            values.append("x")
    names = ", ".join(f.column_name for f in columns)
    marks = ", ".join([database.param] * len(columns))
    with database.connection_context():
        database.execute_sql("PRAGMA foreign_keys = OFF" if dialect == "sqlite" else
                             "SET session_replication_role = replica")
        with database.atomic() as txn:
            try:
                database.execute_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", values)
                refused = False
            except peewee.IntegrityError:
                refused = True
            txn.rollback()  # leave the shared database as it was
    assert refused, f"{table} accepted a NULL primary key"


def test_schema_is_idempotent_and_usable_through_the_models(fresh_db):
    _, database = fresh_db
    db.create_schema(database)  # running it again changes nothing and does not fail
    with database.bind_ctx(ALL_MODELS), database.connection_context(), database.atomic() as txn:
        Account.create(id="AC0123456789", name="acme", auth_salt="s", auth_hash="h",
                       created_at=datetime(2030, 1, 1))
        assert Account.get(Account.name == "acme").id == "AC0123456789"
        with pytest.raises(peewee.IntegrityError), database.atomic():
            Account.create(id="AC9999999999", name="acme", auth_salt="s", auth_hash="h",
                           created_at=datetime(2030, 1, 1))
        txn.rollback()
