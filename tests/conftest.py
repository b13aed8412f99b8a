"""Session-wide real servers shared by every test package."""
from __future__ import annotations

import pytest

from tests import servers


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a private redis-server for this test session."""
    with servers.redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a private PostgreSQL database for this test session."""
    with servers.postgres_server() as url:
        yield url
