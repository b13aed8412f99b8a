"""The whole platform for end-to-end call tests, every part real and separate.

PostgreSQL, Redis, the sandbox carrier (sipp), the embedded engine pool (PJSUA2), RQ
workers and the events process run as the Procfile starts them (tests/launcher.py);
the API runs in-process through Flask's test client. End-to-end tests run on
PostgreSQL only (the data-layer tests cover SQLite).
"""
from __future__ import annotations

from typing import Iterator

import pytest
import redis as redis_lib

from cpaas.app import create_app
from tests import launcher
from tests.api.conftest import Api, body
from tests.launcher import SECRETS, wait_for

#: Seconds an answered sandbox call lasts unless we hang up (short keeps tests fast).
HOLD = 12
#: 40 single-leg calls at once need 10 processes of 4 calls.
ENGINE_WORKERS = 10


class Platform:
    """The running platform plus the API client and polling helpers tests use."""

    def __init__(self, running: launcher.Running) -> None:
        self.running = running
        self.settings = running.settings
        self.media_port = running.media_port
        self.redis = redis_lib.Redis.from_url(running.settings.redis_url)
        self.app = create_app(running.settings)

    def client(self, account: str = "account_1") -> Api:
        return Api(self.app.test_client(), account, SECRETS[account])

    def invites(self, number: str) -> int:
        return self.running.invites(number)

    def cdr(self, api: Api, request_id: str, timeout: float = 60) -> dict:
        """Wait for the request's CDR and return it."""
        def fetch():
            rows = body(api.post("/api/get_cdr_by_request_id", {"request_id": request_id}))["result"]
            return rows[0] if rows else None
        return wait_for(fetch, timeout, f"the CDR of {request_id}", 0.25)

    def live(self, api: Api, request_id: str, role: str, state: str | None = None,
             timeout: float = 30) -> dict:
        """Wait for a live leg of the request in a role (and state) and return it."""
        def find():
            for leg in body(api.get("/api/live_calls"))["result"]:
                if leg["request_id"] == request_id and leg["role"] == role and \
                        (state is None or leg["state"] == state):
                    return leg
            return None
        return wait_for(find, timeout, f"{role} leg of {request_id} in state {state}", 0.1)


@pytest.fixture(scope="session")
def platform(tmp_path_factory, redis_url, postgres_url) -> Iterator[Platform]:
    with launcher.platform(tmp_path_factory.mktemp("platform"), redis_url, postgres_url,
                           hold=HOLD, engine_workers=ENGINE_WORKERS) as running:
        yield Platform(running)


@pytest.fixture
def api(platform) -> Api:
    return platform.client("account_1")


@pytest.fixture
def other(platform) -> Api:
    return platform.client("account_2")
