"""Real servers for the test run: a private redis-server and a PostgreSQL cluster.

Each starts on a free loopback port in a temporary folder and is stopped at the end of
the session. ``TEST_REDIS_URL`` / ``TEST_DATABASE_URL`` name external ones instead.

Most tests run them fast (no fsync, no append-only file). The kill tests use
``durable=True`` handles (:class:`RedisServer`, :class:`PostgresServer`), which persist
as ``make run`` and a production PostgreSQL do and can be SIGKILLed and started again
on the same port and folder.
"""
from __future__ import annotations

import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

import redis as redis_lib


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_port() -> int:
    """A UDP port nobody has bound right now (for SIP listeners)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_free(port: int) -> bool:
    """Whether nothing has bound UDP ``port`` on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_udp_ports(count: int, lo: int = 20000, hi: int = 29000) -> int:
    """First of ``count`` consecutive UDP ports that are free on loopback now.

    The default range lies below the kernel's ephemeral ports (32768 and up), where
    the test run's own TCP clients would otherwise take a port an engine worker is
    about to bind.
    """
    for _ in range(500):
        base = random.randrange(lo, hi - count, 2)
        if all(udp_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free UDP ports")


def free_media_port() -> int:
    """An even UDP port with the next two free as well (sipp's RTP echo uses port,
    port + 1 for the 700 recording and port + 2 for video)."""
    for _ in range(200):
        base = free_udp_port() & ~1
        socks = []
        try:
            for port in (base, base + 1, base + 2):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free even UDP port triple")


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process descended from it, all at once (a crash)."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    doomed, todo = [], [pid]
    while todo:
        current = todo.pop()
        doomed.append(current)
        todo.extend(children.get(current, []))
    for victim in doomed:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:   # our own child: reap it, or it stays a zombie that "exists"
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"process {pid} did not die")


class RedisServer:
    """A private redis-server that can be killed and started again on its port and folder.

    ``durable`` runs it as ``make run`` does (append-only file, fsync every second), so
    a restart keeps what it acknowledged; otherwise nothing is persisted (fast, and a
    restart is a flush).
    """

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="cpaas-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        """Start (or start again) and wait until it accepts connections."""
        # fsync on every write: with everysec a SIGKILL loses up to a second of writes, and
        # a campaign plan handed to the engine in that second leaves no sign of whether
        # its INVITE left (README, "what survives what").
        persistence = ["--appendonly", "yes", "--appendfsync", "always", "--save", "60 1000"] \
            if self.durable else ["--appendonly", "no", "--save", ""]
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             self.workdir, *persistence], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port)
        client = redis_lib.Redis.from_url(self.url)
        deadline = time.monotonic() + 30
        while True:   # replaying the append-only file answers LOADING until it is done
            try:
                client.ping()
                break
            except redis_lib.BusyLoadingError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is flushed or saved on the way out."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop for good and remove its folder."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def redis_server(durable: bool = False) -> Iterator[str]:
    """Yield the URL of a private redis-server."""
    if os.environ.get("TEST_REDIS_URL") and not durable:
        yield os.environ["TEST_REDIS_URL"]
        return
    server = RedisServer(durable).start()
    try:
        yield server.url
    finally:
        server.stop()


def _pg_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
    return os.path.dirname(found[-1])


class PostgresServer:
    """A throw-away PostgreSQL cluster that can be killed and started again on its port
    and data folder.

    ``durable`` keeps the defaults a production server has (``fsync`` and
    ``synchronous_commit`` on), so a commit it acknowledged survives a SIGKILL;
    otherwise both are off, for speed. initdb refuses to run as root, so as root the
    cluster belongs to the ``postgres`` system user that Debian's package creates.
    """

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.bindir = _pg_bin()
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="cpaas-pg-")
        self.datadir = os.path.join(self.workdir, "data")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/cpaas_test"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.env = {**os.environ, "LC_ALL": "C.UTF-8"}

    def _run(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.as_user + [f"{self.bindir}/{argv[0]}", *argv[1:]],
                              env=self.env, stdout=subprocess.DEVNULL, **kw)

    def create(self) -> "PostgresServer":
        """initdb, start, and create the test database."""
        self._run("initdb", "-D", self.datadir, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  *([] if self.durable else ["--no-sync"]), check=True)
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "cpaas_test", check=True)
        return self

    def start(self) -> None:
        """Start (or start again after :meth:`kill`: crash recovery replays the WAL)."""
        opts = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 " \
               "-c max_connections=200 "
        opts += "-c fsync=on -c synchronous_commit=on -c full_page_writes=on" if self.durable \
            else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", self.datadir, "-o", opts, "-l",
                  os.path.join(self.workdir, "log"), "-w", "-t", "60", "start", check=True)

    def pid(self) -> int:
        """The postmaster's pid."""
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            return int(f.readline())

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once, as a crash."""
        pid = self.pid()
        kill_tree(pid)
        _gone(pid)

    def stop(self) -> None:
        """Stop for good and remove the cluster."""
        self._run("pg_ctl", "-D", self.datadir, "-m", "immediate", "stop",
                  stderr=subprocess.DEVNULL)
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def postgres_server(durable: bool = False) -> Iterator[str]:
    """Yield the URL of a throw-away PostgreSQL database."""
    if os.environ.get("TEST_DATABASE_URL") and not durable:
        yield os.environ["TEST_DATABASE_URL"]
        return
    server = PostgresServer(durable).create()
    try:
        yield server.url
    finally:
        server.stop()
