"""The private redis-server of `make run`, which stops after everything that uses it.

honcho sends SIGTERM to every process at once. Had redis-server received it too, it would
go while the workers, the engine and the events writer still talk to it on their way
out (tracebacks, lost de-registrations). So redis-server runs in a process group of its
own, out of honcho's reach, and this process, on SIGTERM, waits until no other client is
connected, then shuts it down (writing its data).
"""
from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import threading
import time

import redis

from cpaas import config

log = logging.getLogger(__name__)
#: Longest wait for the other processes to let go of Redis (under the supervisor's KILL_WAIT).
STOP_WAIT = 25.0
#: How long no other client must be connected before Redis is shut down.
QUIET = 0.5
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child before exec: should we be SIGKILLed (honcho's last resort), the
    # kernel sends redis-server SIGTERM, which still shuts it down cleanly.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _command(settings: config.Settings) -> list[str]:
    folder = settings.redis_socket.parent.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return ["/usr/bin/redis-server", "--port", "0", "--unixsocket", str(settings.redis_socket.resolve()),
            "--unixsocketperm", "700", "--dir", str(folder), "--appendonly", "yes",
            "--save", "60 1000"]


def _others_connected(client: redis.Redis) -> int:
    try:
        return int(client.info("clients")["connected_clients"]) - 1  # minus this client
    except redis.RedisError:
        return 0


def _wait_until_alone(client: redis.Redis) -> None:
    deadline, alone_since = time.monotonic() + STOP_WAIT, None
    while time.monotonic() < deadline:
        if _others_connected(client) > 0:
            alone_since = None
        elif alone_since is None:
            alone_since = time.monotonic()
        elif time.monotonic() - alone_since >= QUIET:
            return
        time.sleep(0.1)
    log.warning("clients still connected; stopping redis anyway",
                extra={"clients": _others_connected(client)})


def run(settings: config.Settings) -> int:
    """Run redis-server until SIGTERM/SIGINT, then stop it last; its exit status."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server = subprocess.Popen(_command(settings), process_group=0, preexec_fn=_die_with_parent)
    while server.poll() is None and not stopping.wait(0.5):
        pass
    if server.poll() is not None:
        log.error("redis-server exited", extra={"exit_code": server.returncode})
        return server.returncode or 1
    client = redis.Redis.from_url(settings.effective_redis_url, socket_timeout=5)
    _wait_until_alone(client)
    try:
        client.shutdown()
    except redis.RedisError:
        log.exception("SHUTDOWN refused; terminating redis-server")
        server.terminate()
    return server.wait(30)
