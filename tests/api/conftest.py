"""API test fixtures: the real app on SQLite and on PostgreSQL, with real Redis and storage."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
import redis as redis_lib

from cpaas import accounts, config, db
from cpaas.app import create_app
from cpaas.models import ALL_MODELS
from tests.launcher import SECRETS


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request, tmp_path_factory, redis_url) -> Iterator[tuple[str, config.Settings]]:
    """Settings for one database backend (the API tests run once per backend)."""
    data_dir = tmp_path_factory.mktemp(f"data-{request.param}")
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else \
        f"sqlite:///{data_dir / 'cpaas.sqlite3'}"
    settings = config.Settings(data_dir=data_dir, database_url=url, redis_url=redis_url,
                               storage_url=str(data_dir / "bucket"), auth_fail_limit=1000,
                               auth_fail_window=60, admin_password="operator-pass")
    database = db.init(url)
    db.create_schema(database)
    yield request.param, settings


@pytest.fixture
def settings(backend) -> config.Settings:
    return backend[1]


@pytest.fixture
def app(settings):
    """A fresh app over emptied tables with the two seeded accounts."""
    application = create_app(settings)
    database = db.database.obj
    database.connect(reuse_if_open=True)
    with database.atomic():
        for model in reversed(ALL_MODELS):
            model.delete().execute()
    accounts.seed(settings.data_dir, SECRETS, settings.admin_password)
    database.close()
    redis_lib.Redis.from_url(settings.redis_url).flushdb()
    yield application


class Api:
    """A test client that sends one account's headers."""

    def __init__(self, client, account: str, secret: str) -> None:
        self.client, self.headers = client, {"account": account, "auth": secret}

    def post(self, path: str, body: Any = None, **kw):
        return self.client.post(path, json=body, headers=self.headers, **kw)

    def patch(self, path: str, body: Any = None):
        return self.client.patch(path, json=body, headers=self.headers)

    def delete(self, path: str, body: Any = None):
        return self.client.delete(path, json=body, headers=self.headers)

    def get(self, path: str, **kw):
        return self.client.get(path, headers=self.headers, **kw)


@pytest.fixture
def api(app) -> Api:
    """account_1's client."""
    return Api(app.test_client(), "account_1", SECRETS["account_1"])


@pytest.fixture
def other(app) -> Api:
    """account_2's client (for tenancy checks)."""
    return Api(app.test_client(), "account_2", SECRETS["account_2"])


def body(resp) -> dict:
    """The envelope's inner object, checking it is JSON."""
    assert resp.mimetype == "application/json", resp.data[:200]
    return resp.get_json()["response"]
