"""Sandbox carriers for the carrier tests, each on its own free port."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

import sandbox_carrier
from tests.carrier.calling import free_udp_port


def _carrier(log_dir: Path, **options: Any) -> Iterator[sandbox_carrier.CarrierProcess]:
    proc = sandbox_carrier.start("127.0.0.1", free_udp_port(), log_dir=log_dir, **options)
    try:
        yield proc
    finally:
        sandbox_carrier.stop(proc)


@pytest.fixture(scope="session")
def carrier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sandbox_carrier.CarrierProcess]:
    """A carrier with a 30 s hold, logging into a temporary directory."""
    yield from _carrier(tmp_path_factory.mktemp("carrier"), hold=30)


@pytest.fixture(scope="session")
def short_carrier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sandbox_carrier.CarrierProcess]:
    """A carrier that hangs up answered calls after 2 s and rings ...480 for 2 s."""
    yield from _carrier(tmp_path_factory.mktemp("short-carrier"), hold=2, ring_timeout=2)
