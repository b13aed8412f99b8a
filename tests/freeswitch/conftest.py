"""The FreeSWITCH engine against ESL doubles: real Redis, real TCP, real node drivers.

Each test gets its own Redis database content (flushed), one or two ESL doubles, the
node drivers of the ``events`` process (:func:`freeswitch.listener.start`) and the
engine client the platform would pick (:func:`engine_client`).
"""
from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from cpaas.config import Settings
from cpaas.telephony.engine_client import EngineClient, engine_client
from tests.engine.rig import EventLog
from tests.freeswitch.esl_double import EslDouble
from tests.launcher import wait_for

FS_DB = 11


@dataclass
class Rig:
    """What a test drives: the doubles, settings, client, event log, listener."""

    doubles: list[EslDouble]
    settings: Settings
    r: redis.Redis
    events: EventLog
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    _client: EngineClient | None = None

    @property
    def double(self) -> EslDouble:
        """The first (often only) node."""
        return self.doubles[0]

    @property
    def client(self) -> EngineClient:
        """The engine client the platform builds from these settings."""
        if self._client is None:
            self._client = engine_client(self.settings, self.r)
        return self._client

    def start_listener(self) -> None:
        """Start (again) the events process's node drivers."""
        from freeswitch import listener

        self.stop = threading.Event()
        self.threads = listener.start(self.settings, self.stop)

    def stop_listener(self) -> None:
        """Stop the node drivers as a process exit would (their calls stay up)."""
        self.stop.set()
        for thread in self.threads:
            thread.join(15)
            assert not thread.is_alive(), "driver did not stop"

    def nodes_up(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` nodes beat."""
        wait_for(lambda: self.client.health().get("engine_nodes") == f"{count}/{len(self.doubles)}",
                 timeout, f"{count} nodes up")


@pytest.fixture
def fs_redis(redis_url: str) -> Iterator[redis.Redis]:
    """The session Redis, on a database of its own, emptied."""
    client = redis.Redis.from_url(re.sub(r"/\d*$", "", redis_url) + f"/{FS_DB}")
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def workdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Data folder (media, recordings, bucket) of one test."""
    from cpaas.storage import get_storage

    path = Path(tempfile.mkdtemp(prefix="cpaas-fs-"))
    monkeypatch.setenv("CPAAS_STORAGE_URL", str(path / "bucket"))
    get_storage.cache_clear()   # the process's storage is read once: this test's bucket
    (path / "media").mkdir()
    yield path
    get_storage.cache_clear()
    shutil.rmtree(path, ignore_errors=True)


def make_rig(r: redis.Redis, workdir: Path, nodes: int = 1, **overrides) -> Rig:
    """Doubles started, settings pointing at them, the listener running."""
    doubles = [EslDouble().start() for _ in range(nodes)]
    url = r.connection_pool.connection_kwargs
    settings = Settings(
        data_dir=workdir, redis_url=f"redis://{url['host']}:{url['port']}/{url['db']}",
        freeswitch_esl=",".join(d.address for d in doubles), freeswitch_gateway="trunk",
        freeswitch_agent_dial="user/{ext}", ring_timeout=5, **overrides)
    rig = Rig(doubles, settings, r, EventLog(r))
    rig.start_listener()
    return rig


@pytest.fixture
def rig(fs_redis: redis.Redis, workdir: Path) -> Iterator[Rig]:
    """One node and its driver."""
    rig = make_rig(fs_redis, workdir)
    yield rig
    rig.stop_listener()
    for double in rig.doubles:
        double.stop()
