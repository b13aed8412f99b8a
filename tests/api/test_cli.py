"""The operator CLI (accounts, templates, init) and the seeding of the spec's accounts."""
from __future__ import annotations

import base64
import dataclasses
import json
import logging
import stat
from datetime import datetime

import pytest

from cpaas import accounts, cli
from cpaas import app as app_module
from cpaas.db import database
from cpaas.models import ALL_MODELS, Account, AnnounceTemplate
from tests.api.conftest import SECRETS
from tests.api.helpers import error_body, ok_body


@pytest.fixture
def run(settings, tmp_path, monkeypatch, capsys):
    """Run ``cpaas …`` against the test database; returns (exit status, parsed stdout)."""
    monkeypatch.setenv("CPAAS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    for var in ("CPAAS_ACCOUNT_1_AUTH", "CPAAS_ACCOUNT_2_AUTH", "CPAAS_ADMIN_PASSWORD"):
        monkeypatch.delenv(var, raising=False)

    def invoke(*argv: str):
        capsys.readouterr()
        status = cli.main(list(argv))
        out = capsys.readouterr().out
        return status, (json.loads(out) if out.strip() else None)

    return invoke


def _get(client, name: str, secret: str):
    return client.get("/api/files", headers={"account": name, "auth": secret})


def test_accounts_create_and_use(app, run):
    status, out = run("accounts", "create", "acme")
    assert status == 0
    assert out["account"] == "acme"
    assert out["account_id"].startswith("AC") and len(out["account_id"]) == 12
    ok_body(_get(app.test_client(), "acme", out["auth"]))
    error_body(_get(app.test_client(), "acme", SECRETS["account_1"]), 401)
    with database.connection_context():
        row = Account.get(Account.name == "acme")
        assert out["auth"] not in (row.auth_hash, row.auth_salt)
        # a new account gets the default (approved) OTP template
        assert AnnounceTemplate.select().where(AnnounceTemplate.account_id == row.id).count() == 1


def test_accounts_create_duplicate_fails(app, run):
    with pytest.raises(SystemExit) as exc:
        run("accounts", "create", "account_1")
    assert exc.value.code == 2
    ok_body(_get(app.test_client(), "account_1", SECRETS["account_1"]))


def test_accounts_create_refuses_bad_names(app, run, subtests):
    for name in ["", "bad name", "x" * 65, "a/b", ".", "..", "../x", ".hidden", "ümlaut", "ok\n"]:
        with subtests.test(name=name):
            with pytest.raises(SystemExit) as exc:
                run("accounts", "create", name)
            assert exc.value.code == 2
    with database.connection_context():
        assert Account.select().count() == 2


def test_accounts_list_has_no_secrets(app, run):
    run("accounts", "create", "acme")
    status, out = run("accounts", "list")
    assert status == 0
    assert {a["account"] for a in out} == {"account_1", "account_2", "acme"}
    for entry in out:
        assert set(entry) == {"account", "account_id", "created_at"}
    assert SECRETS["account_1"] not in json.dumps(out)


def test_rotate_auth(app, run):
    client = app.test_client()
    ok_body(_get(client, "account_1", SECRETS["account_1"]))   # cached in this process
    status, out = run("accounts", "rotate-auth", "account_1")
    assert status == 0 and out["account"] == "account_1"
    new = out["auth"]
    assert new != SECRETS["account_1"]
    ok_body(_get(client, "account_1", new))
    error_body(_get(client, "account_1", SECRETS["account_1"]), 401)
    ok_body(_get(client, "account_2", SECRETS["account_2"]))    # the other account is unchanged


def test_rotate_auth_unknown_account(app, run):
    with pytest.raises(SystemExit) as exc:
        run("accounts", "rotate-auth", "nobody")
    assert exc.value.code == 2


def test_templates_list_approve_reject(app, run):
    with database.connection_context():
        acc = Account.get(Account.name == "account_1")
        AnnounceTemplate.create(id="AN0123456789", account_id=acc.id, template_text="Code {otp}",
                                status="pending", created_at=datetime(2030, 1, 1))
    status, out = run("templates", "list")
    assert status == 0
    by_id = {t["announce_template_id"]: t for t in out}
    assert by_id["AN0123456789"]["status"] == "pending"
    assert by_id["AN0123456789"]["template_text"] == "Code {otp}"
    assert sum(1 for t in out if t["status"] == "approved") == 2   # the seeded defaults

    status, out = run("templates", "approve", "AN0123456789")
    assert (status, out) == (0, {"announce_template_id": "AN0123456789", "status": "approved"})
    with database.connection_context():
        assert AnnounceTemplate.get_by_id("AN0123456789").status == "approved"

    run("templates", "reject", "AN0123456789")
    with database.connection_context():
        assert AnnounceTemplate.get_by_id("AN0123456789").status == "rejected"

    with pytest.raises(SystemExit) as exc:
        run("templates", "approve", "AN9999999999")
    assert exc.value.code == 2


def test_init_with_env_secret_replaces_the_stored_one(app, run, monkeypatch, tmp_path):
    monkeypatch.setenv("CPAAS_ACCOUNT_1_AUTH", "from-env-0123456789")
    status, _ = run("init")
    assert status == 0
    client = app.test_client()
    accounts._cache.clear()
    ok_body(_get(client, "account_1", "from-env-0123456789"))
    error_body(_get(client, "account_1", SECRETS["account_1"]), 401)
    ok_body(_get(client, "account_2", SECRETS["account_2"]))   # existing, not regenerated
    creds = json.loads((tmp_path / "credentials").read_text())
    assert set(creds) == {"admin"}                              # the operator password was generated
    assert stat.S_IMODE((tmp_path / "credentials").stat().st_mode) == 0o600


def test_unknown_command_fails(run):
    with pytest.raises(SystemExit) as exc:
        run("frobnicate")
    assert exc.value.code == 2


# --- seeding ------------------------------------------------------------------------------

@pytest.fixture
def empty_db(app):
    with database.connection_context():
        with database.atomic():
            for model in reversed(ALL_MODELS):
                model.delete().execute()
    accounts._cache.clear()
    return app


def test_seed_generates_secrets_once(empty_db, tmp_path, caplog):
    app = empty_db
    with caplog.at_level(logging.WARNING):
        generated = accounts.seed(tmp_path, {}, None)
    assert set(generated) == {"account_1", "account_2", "admin"}
    path = tmp_path / "credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == generated
    shown = [r for r in caplog.records if getattr(r, "credentials", None)]
    assert len(shown) == 1 and shown[0].credentials == generated

    client = app.test_client()
    ok_body(_get(client, "account_1", generated["account_1"]))
    ok_body(_get(client, "account_2", generated["account_2"]))
    error_body(_get(client, "account_1", generated["account_2"]), 401)

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert accounts.seed(tmp_path, {}, None) == {}
    assert not [r for r in caplog.records if getattr(r, "credentials", None)]
    assert json.loads(path.read_text()) == generated
    accounts._cache.clear()
    ok_body(_get(client, "account_1", generated["account_1"]))
    with database.connection_context():
        assert Account.select().count() == 2


def test_seed_env_secret_wins_and_replaces_stored(empty_db, tmp_path):
    app = empty_db
    generated = accounts.seed(tmp_path, {}, None)
    accounts.seed(tmp_path, {"account_1": "env-secret-1-abcdef"}, None)
    accounts._cache.clear()
    client = app.test_client()
    ok_body(_get(client, "account_1", "env-secret-1-abcdef"))
    error_body(_get(client, "account_1", generated["account_1"]), 401)
    ok_body(_get(client, "account_2", generated["account_2"]))
    creds = json.loads((tmp_path / "credentials").read_text())
    assert set(creds) == {"account_2", "admin"}       # the replaced secret is no longer stored
    assert stat.S_IMODE((tmp_path / "credentials").stat().st_mode) == 0o600


def test_seed_with_env_secrets_creates_accounts(empty_db, tmp_path):
    generated = accounts.seed(tmp_path, {"account_1": "one-0123456789", "account_2": "two-0123456789"},
                              "operator")
    assert generated == {}
    creds_path = tmp_path / "credentials"
    assert not creds_path.exists() or json.loads(creds_path.read_text()) == {}
    client = empty_db.test_client()
    ok_body(_get(client, "account_1", "one-0123456789"))
    ok_body(_get(client, "account_2", "two-0123456789"))
    with database.connection_context():
        ids = [a.id for a in Account.select()]
    assert len(set(ids)) == 2 and all(i.startswith("AC") and len(i) == 12 for i in ids)


def test_generated_operator_password_opens_the_dashboard(empty_db, settings, tmp_path):
    generated = accounts.seed(tmp_path, {}, None)
    dashboard = app_module.create_app(dataclasses.replace(settings, data_dir=tmp_path, admin_password=None))
    token = base64.b64encode(f"admin:{generated['admin']}".encode()).decode()
    client = dashboard.test_client()
    assert client.get("/rq/", headers={"Authorization": f"Basic {token}"},
                      follow_redirects=True).status_code == 200
    bad = base64.b64encode(b"admin:operator-pass").decode()
    assert client.get("/rq/", headers={"Authorization": f"Basic {bad}"}).status_code == 401
