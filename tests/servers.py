"""Real servers for the test run: a private redis-server and a PostgreSQL cluster.

Each starts on a free loopback port in a temporary folder and is stopped at the end of
the session. ``TEST_REDIS_URL`` / ``TEST_DATABASE_URL`` name external ones instead.
"""
from __future__ import annotations

import glob
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator


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


@contextmanager
def redis_server() -> Iterator[str]:
    """Yield the URL of a private redis-server."""
    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="cpaas-redis-")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def _pg_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
    return os.path.dirname(found[-1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the URL of a throw-away PostgreSQL database.

    initdb refuses to run as root, so as root the cluster belongs to the ``postgres``
    system user that Debian's package creates.
    """
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    bindir = _pg_bin()
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="cpaas-pg-")
    datadir = os.path.join(workdir, "data")
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run(as_user + [f"{bindir}/initdb", "-D", datadir, "-U", "postgres",
                              "--auth=trust", "-E", "UTF8", "--no-sync"],
                   check=True, stdout=subprocess.DEVNULL, env=env)
    opts = (f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", datadir, "-o", opts, "-l",
                              os.path.join(workdir, "log"), "-w", "start"],
                   check=True, stdout=subprocess.DEVNULL, env=env)
    try:
        subprocess.run(as_user + [f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port),
                                  "-U", "postgres", "cpaas_test"], check=True, env=env)
        yield f"postgresql://postgres@127.0.0.1:{port}/cpaas_test"
    finally:
        subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", datadir, "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        shutil.rmtree(workdir, ignore_errors=True)
