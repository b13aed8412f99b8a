"""Real SIP for the embedded engine tests: a worker pool and sipp far ends on loopback.

One pool (two workers) serves the whole package; its trunk and agent URI templates
point at two fixed loopback ports on which each test starts the sipp scenario it
needs (``far_end``). The engine keys live in their own Redis database so no other
test package sees these events or plans.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest
import redis

from pjsua_engine.client import EmbeddedClient as EmbeddedEngine
from tests.engine.rig import (EventLog, PoolInfo, Sipp, free_udp_ports, start_pool,
                              stop_pool)

ENGINE_DB = 9
WORKERS = 2


@pytest.fixture(scope="package")
def engine_redis_url(redis_url: str) -> str:
    """The session Redis, on a database of its own."""
    return re.sub(r"/\d*$", "", redis_url) + f"/{ENGINE_DB}"


@pytest.fixture(scope="package")
def engine_redis(engine_redis_url: str) -> Iterator[redis.Redis]:
    """A client on the engine tests' database, emptied before use."""
    client = redis.Redis.from_url(engine_redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="package")
def engine_workdir() -> Iterator[Path]:
    """A scratch folder for the package: pool logs, storage, media, sipp logs."""
    path = Path(tempfile.mkdtemp(prefix="cpaas-engine-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package")
def pool(engine_redis: redis.Redis, engine_redis_url: str,
         engine_workdir: Path) -> Iterator[PoolInfo]:
    """The package's engine pool (two workers); stopped cleanly at the end."""
    trunk_port = free_udp_ports(1, 40000, 45000)
    agent_port = free_udp_ports(1, 45000, 50000)
    info = start_pool(engine_redis_url, engine_workdir, WORKERS, trunk_port, agent_port)
    yield info
    code = stop_pool(info)
    assert code == 0, info.log.read_text()[-3000:]


@pytest.fixture
def engine(engine_redis: redis.Redis, pool: PoolInfo) -> EmbeddedEngine:
    """The engine front end, as services use it."""
    return EmbeddedEngine(engine_redis)


@pytest.fixture
def events(engine_redis: redis.Redis) -> EventLog:
    """The engine event stream."""
    return EventLog(engine_redis)


@pytest.fixture
def far_end(pool: PoolInfo) -> Iterator[Callable[..., Sipp]]:
    """Start sipp scenarios on the pool's trunk or agent port; all stopped after the test."""
    started: list[Sipp] = []

    def start(scenario: str, where: str = "trunk", extra: list[str] | None = None,
              echo: bool = True) -> Sipp:
        port = pool.trunk_port if where == "trunk" else pool.agent_port
        sipp = Sipp(scenario, port, pool.workdir, extra or [], echo)
        started.append(sipp)
        return sipp.start()
    yield start
    for sipp in started:
        sipp.stop()
        sipp.messages.unlink(missing_ok=True)
        sipp.errors.unlink(missing_ok=True)


@pytest.fixture(scope="package")
def tone(engine_workdir: Path) -> Path:
    """A one-second 440 Hz prompt in telephone format."""
    path = engine_workdir / "media" / "tone.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
                    str(path), "synth", "1.0", "sine", "440", "vol", "0.5"], check=True)
    return path
