"""A database or Redis that is down is a 503 in the envelope, never a 500 or a trace.

Nothing listens on the ports these apps are given: the connections really fail.
"""
from __future__ import annotations

import pytest

from cpaas import accounts, config, db
from cpaas.app import create_app
from tests import servers
from tests.api.test_call_safety import CLICK2CALL
from tests.launcher import SECRETS


def _envelope_503(resp) -> dict:
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.is_json
    inner = resp.get_json()["response"]
    assert inner["success"] == "false" and inner["message"]
    assert "Traceback" not in resp.get_data(as_text=True)
    return inner


@pytest.fixture
def restore_database(settings):
    """These apps rebind the models; the next test's app binds them back."""
    yield
    db.init(settings.effective_database_url)


@pytest.mark.parametrize("down", ["database", "redis"])
def test_a_backing_store_that_is_down_answers_503(tmp_path, redis_url, settings,
                                                  restore_database, down):
    dead_port = servers.free_port()
    broken = config.Settings(
        data_dir=tmp_path, storage_url=str(tmp_path / "bucket"), admin_password="x",
        database_url=(f"postgresql://postgres@127.0.0.1:{dead_port}/nothing" if down == "database"
                      else f"sqlite:///{tmp_path / 'cpaas.sqlite3'}"),
        redis_url=redis_url if down == "database" else f"redis://127.0.0.1:{dead_port}/0")
    if down == "redis":
        db.create_schema(db.init(broken.effective_database_url))
        accounts._cache.clear()  # names cached from the other apps of this session
        accounts.seed(tmp_path, SECRETS, "x")
    client = create_app(broken).test_client()

    health = _envelope_503(client.get("/healthz"))
    assert health[down] == "down"
    headers = {"account": "account_1", "auth": SECRETS["account_1"]}
    if down == "database":
        _envelope_503(client.post("/api/create_campaign_list", json={"list_name": "l"},
                                  headers=headers))
    else:  # the data API works without Redis; a call cannot be queued
        _envelope_503(client.post("/api/click2call", json=CLICK2CALL, headers=headers))
