"""Header auth on every /api route (and /stop_campaign), the failure limiter, public routes."""
from __future__ import annotations

import dataclasses

import peewee
import pytest

from cpaas import accounts, app as app_module, config, db
from cpaas.campaigns import service
from cpaas.db import database
from cpaas.models import Account, ContactList
from tests.api.conftest import SECRETS, body
from tests.api.helpers import all_routes, error_body, ok_body

PROTECTED = sorted({(r.method.upper(), r.path) for r in all_routes()})
BAD_HEADERS = {
    "no headers": {},
    "account only": {"account": "account_1"},
    "auth only": {"auth": SECRETS["account_1"]},
    "wrong auth": {"account": "account_1", "auth": "not-the-secret"},
    "other account's auth": {"account": "account_1", "auth": SECRETS["account_2"]},
    "unknown account": {"account": "account_9", "auth": SECRETS["account_1"]},
    "empty values": {"account": "", "auth": ""},
    "very long auth": {"account": "account_1", "auth": "x" * 5000},
}


def test_route_list_covers_both_stop_campaign_paths():
    paths = {p for _, p in PROTECTED}
    assert {"/api/stop_campaign", "/stop_campaign", "/api/create_campaign_list",
            "/api/get_cdr_by_date", "/api/upload_file", "/api/files"} <= paths


def test_every_api_rule_of_the_app_is_documented(app):
    """ROUTES (used for the OpenAPI document and these tests) lists every /api rule."""
    documented = set(PROTECTED)
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/") or rule.rule == "/stop_campaign"):
            continue
        if rule.rule == "/api/openapi.json":
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, rule.rule) in documented, (method, rule.rule)


@pytest.mark.parametrize("method,path", PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_every_protected_route_needs_valid_credentials(app, method, path):
    client = app.test_client()
    for label, headers in BAD_HEADERS.items():
        resp = client.open(path, method=method, headers=headers, json={})
        inner = error_body(resp, 401)
        assert inner["errors"], (label, inner)
    # With good headers the route is reached (whatever the empty body then earns).
    resp = client.open(path, method=method, json={},
                       headers={"account": "account_2", "auth": SECRETS["account_2"]})
    assert resp.status_code not in (401, 429), resp.data[:300]
    assert resp.status_code < 500, resp.data[:300]
    assert body(resp)["success"] in ("true", "false")


def test_missing_header_names_the_header(app):
    client = app.test_client()
    inner = error_body(client.get("/api/files"), 401, "account")
    assert inner["message"] == "missing account or auth header"
    inner = error_body(client.get("/api/files", headers={"account": "account_1"}), 401, "auth")


def test_wrong_secret_message(app):
    resp = app.test_client().get("/api/files", headers={"account": "account_1", "auth": "nope"})
    inner = error_body(resp, 401, "auth")
    assert inner["message"] == "invalid account or auth"


def test_each_account_authenticates_with_its_own_secret(api, other):
    ok_body(api.get("/api/get_cdr_statistics"))
    ok_body(other.get("/api/get_cdr_statistics"))


def test_public_routes_need_no_auth(app):
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


def test_unknown_api_path_needs_auth_then_is_404(app):
    client = app.test_client()
    error_body(client.get("/api/no_such_thing"), 401)
    resp = client.get("/api/no_such_thing", headers={"account": "account_1", "auth": SECRETS["account_1"]})
    error_body(resp, 404)


def _limited_app(settings, limit: int = 3):
    return app_module.create_app(dataclasses.replace(settings, auth_fail_limit=limit,
                                                     auth_fail_window=60))


def test_repeated_failures_are_refused_with_429(app, settings):
    limited = _limited_app(settings, 3)
    client = limited.test_client()
    bad = {"account": "account_1", "auth": "wrong"}
    statuses = [client.get("/api/files", headers=bad).status_code for _ in range(6)]
    # More than 3 failures within the window: the 5th attempt onwards is refused.
    assert statuses[:4] == [401, 401, 401, 401]
    assert statuses[4:] == [429, 429]
    inner = error_body(client.get("/api/files", headers=bad), 429)
    assert "too many" in inner["message"]
    # The address is blocked even for good credentials while the window lasts.
    good = {"account": "account_1", "auth": SECRETS["account_1"]}
    error_body(client.get("/api/files", headers=good), 429)


def test_missing_headers_count_as_failures(app, settings):
    client = _limited_app(settings, 2).test_client()
    statuses = [client.post("/stop_campaign", json={}).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_limit_is_per_address(app, settings):
    client = _limited_app(settings, 2).test_client()
    bad = {"account": "account_1", "auth": "wrong"}
    for _ in range(4):
        client.get("/api/files", headers=bad, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    error_body(client.get("/api/files", headers=bad, environ_base={"REMOTE_ADDR": "10.0.0.1"}), 429)
    good = {"account": "account_1", "auth": SECRETS["account_1"]}
    ok_body(client.get("/api/files", headers=good, environ_base={"REMOTE_ADDR": "10.0.0.2"}))


def test_successful_requests_do_not_count(app, settings):
    client = _limited_app(settings, 2).test_client()
    good = {"account": "account_1", "auth": SECRETS["account_1"]}
    for _ in range(6):
        ok_body(client.get("/api/files", headers=good))


def test_public_routes_stay_open_when_blocked(app, settings):
    client = _limited_app(settings, 1).test_client()
    for _ in range(3):
        client.get("/api/files")
    error_body(client.get("/api/files"), 429)
    assert client.get("/healthz").status_code == 200


def test_rotated_secret_replaces_old_one(api, app):
    new = accounts.set_secret("account_1")
    client = app.test_client()
    ok_body(client.get("/api/files", headers={"account": "account_1", "auth": new}))
    error_body(client.get("/api/files", headers={"account": "account_1", "auth": SECRETS["account_1"]}), 401)


def test_secrets_are_not_stored_in_clear(app):
    with database.connection_context():
        row = Account.get(Account.name == "account_1")
    assert SECRETS["account_1"] not in (row.auth_hash, row.auth_salt)
    assert row.auth_hash == accounts.digest(row.auth_salt, SECRETS["account_1"])
    assert row.id.startswith("AC") and len(row.id) == 12 and row.id[2:].isalnum()


def test_unknown_account_and_wrong_secret_look_the_same(app):
    client = app.test_client()
    unknown = client.get("/api/files", headers={"account": "nobody", "auth": "x" * 20})
    wrong = client.get("/api/files", headers={"account": "account_1", "auth": "x" * 20})
    assert (unknown.status_code, body(unknown)) == (wrong.status_code, body(wrong))


# A reverse proxy sits in front of gunicorn (which binds 127.0.0.1), so every client
# arrives from the proxy's address; X-Forwarded-For names the real one.
PROXY = "127.0.0.1"
ATTACKER, CLIENT = "203.0.113.9", "198.51.100.7"
GOOD_1 = {"account": "account_1", "auth": SECRETS["account_1"]}
BAD_1 = {"account": "account_1", "auth": "wrong"}


def _proxied_app(settings, limit: int = 2, proxies: tuple[str, ...] = ("127.0.0.0/8",)):
    return app_module.create_app(dataclasses.replace(
        settings, auth_fail_limit=limit, auth_fail_window=60, trusted_proxies=proxies))


def _via(client, headers: dict[str, str], xff: str, peer: str = PROXY):
    return client.get("/api/files", headers={**headers, "X-Forwarded-For": xff},
                      environ_base={"REMOTE_ADDR": peer})


def test_failures_on_one_account_do_not_lock_out_another_account(app, settings):
    client = _limited_app(settings, 2).test_client()
    for _ in range(4):
        client.get("/api/files", headers=BAD_1)
    error_body(client.get("/api/files", headers=BAD_1), 429)
    ok_body(client.get("/api/files", headers={"account": "account_2", "auth": SECRETS["account_2"]}))


def test_another_clients_failures_through_the_proxy_never_refuse_good_credentials(app, settings):
    client = _proxied_app(settings, 2).test_client()
    for _ in range(10):
        _via(client, BAD_1, ATTACKER)
    # The attacker's (address, account) is throttled, even with the right secret:
    # otherwise the throttle would not slow down guessing.
    error_body(_via(client, BAD_1, ATTACKER), 429)
    error_body(_via(client, GOOD_1, ATTACKER), 429)
    # Another client of the same proxy, same account, right secret: let in, every time.
    for _ in range(3):
        ok_body(_via(client, GOOD_1, CLIENT))
    # A client that puts its own X-Forwarded-For in front cannot pose as another one:
    # the proxy appends the real address, and the walk starts from the right.
    for fake in ("10.1.1.1", "10.1.1.2", CLIENT):
        error_body(_via(client, BAD_1, f"{fake}, {ATTACKER}"), 429)
    ok_body(_via(client, GOOD_1, CLIENT))


def test_forwarded_for_from_an_untrusted_peer_is_ignored(app, settings):
    client = _proxied_app(settings, 2, proxies=("192.0.2.0/24",)).test_client()
    statuses = [_via(client, BAD_1, f"10.9.9.{i}", peer="10.0.0.5").status_code for i in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    # The peer itself is the client: its own good credentials on that account are refused...
    error_body(_via(client, GOOD_1, "10.9.9.77", peer="10.0.0.5"), 429)
    # ...while another peer is not affected.
    ok_body(_via(client, GOOD_1, "10.9.9.77", peer="10.0.0.6"))


def test_forwarded_for_is_ignored_when_no_proxy_is_trusted(app, settings):
    client = _limited_app(settings, 2).test_client()
    statuses = [_via(client, BAD_1, f"10.9.9.{i}").status_code for i in range(5)]
    assert statuses == [401, 401, 401, 429, 429]



def test_an_app_on_another_database_never_acts_as_an_id_cached_from_the_first(
        api, tmp_path, redis_url):
    """The auth cache is per process; a second app bound to another database (as the
    end-to-end tests build) must not run requests as the first one's account ids, which
    the new database lacks (a foreign key then refused the insert)."""
    ok_body(api.post("/api/create_campaign_list", {"list_name": "first"}))   # caches account_1
    settings = config.Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/b.db",
                               redis_url=redis_url, storage_url=str(tmp_path / "bucket"),
                               auth_fail_limit=1000, admin_password="operator-pass")
    first_db = database.obj
    try:
        second_db = db.init(settings.database_url)
        db.create_schema(second_db)
        with second_db.connection_context():
            accounts.seed(tmp_path, SECRETS, settings.admin_password)
            second_id = Account.get(Account.name == "account_1").id
        second = app_module.create_app(settings).test_client()
        created = ok_body(second.post("/api/create_campaign_list", json={"list_name": "first"},
                                      headers={"account": "account_1",
                                               "auth": SECRETS["account_1"]}))
        with second_db.connection_context():
            assert ContactList.get(ContactList.id == created["list_id"]).account_id == second_id
    finally:
        database.initialize(first_db)   # later tests of the session use the first one,
        accounts.forget_cached()        # and its account ids


def test_a_foreign_key_refusal_is_not_answered_as_a_taken_name(app):
    """Only a name the account really holds is a 409; any other refusal of the insert
    (here an account that does not exist) is the server's fault, not the caller's."""
    with database.connection_context():
        with pytest.raises(peewee.IntegrityError):
            service.create_list("ACnoSuchAcct", "orphan")
