"""Shared helpers of the benchmarks in this folder (not a benchmark itself).

Every benchmark starts its own private servers (``tests/servers.py``), works in a
temporary folder it removes, talks to 127.0.0.1 only, and bounds every loop in count
and time.
"""
from __future__ import annotations

import http.client
import json
import os
import platform as py_platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import servers  # noqa: E402  (needs ROOT on sys.path)

PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent
SECRETS = {"account_1": "bench-secret-one-0123456789", "account_2": "bench-secret-two-0123456789"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: The account cap for "Real calls"' 20 OTP calls/s of ~6 s each on one account: ~120
#: calls at once, over the platform's default cap of 100 (CPAAS_ACCOUNT_MAX_CALLS). At
#: 100 the excess waited in the account's line, which is the cap doing its job, and call
#: setup then measured that wait (p50 ~1 s) instead of the platform.
LOAD_ENV = {"CPAAS_ACCOUNT_MAX_CALLS": "300"}
BACKENDS = ("postgresql", "sqlite")


# -- reporting --------------------------------------------------------------------------

def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A small fixed-width table on stdout."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    print(f"\n{title}")
    line = "  ".join("-" * w for w in widths)
    for i, row in enumerate(cells):
        print("  ".join(c.rjust(w) if i and _numeric(c) else c.ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            print(line)
    sys.stdout.flush()


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).replace("-", "", 1).isdigit()


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(round(pct / 100 * len(ordered) + 0.5))))
    return ordered[rank - 1]


def paced(rate: float, count: int, send) -> list:
    """Call ``send(i)`` ``count`` times at ``rate`` per second from a thread pool."""
    results: list = [None] * count
    start = time.monotonic() + 0.5
    with ThreadPoolExecutor(32) as pool:
        futures = []
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(send, i))
        for i, fut in enumerate(futures):
            results[i] = fut.result()
    return results


def cpu_probe_ms() -> float:
    """CPU time of a fixed pure-Python loop: compares the speed of the (shared) cores
    between runs; about 175 ms when this machine was quiet."""
    started = time.process_time()
    total = 0
    for i in range(3_000_000):
        total += i * i
    return (time.process_time() - started) * 1000


def machine_notes() -> str:
    """One paragraph about the machine and how busy it is right now."""
    load = os.getloadavg()
    pg = ""
    try:
        out = subprocess.run([os.path.join(servers._pg_bin(), "postgres"), "--version"],
                             capture_output=True, text=True, check=True).stdout.strip()
        pg = f", {out}"
    except Exception:  # noqa: BLE001 - informational only
        pass
    sqlite_version = __import__("sqlite3").sqlite_version
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"machine: {os.cpu_count()} cores, {mem_gb:.0f} GB, {py_platform.platform()}; "
            f"Python {py_platform.python_version()}, SQLite {sqlite_version}{pg}; "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start; "
            f"CPU probe {cpu_probe_ms():.0f} ms")


# -- CPU accounting (the machine is shared: say how much of it others used) ----------------

def _busy_jiffies() -> int:
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]) - idle


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def process_cpu(pid: int) -> float:
    """CPU seconds (user+system) used so far by one process and by its children that
    exited and were waited for (the TTS programs a call job runs), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / CLK_TCK
    except OSError:
        return 0.0


def tree_cpu(pid: int) -> float:
    """CPU seconds used by a process and its descendants (those that exited without
    being waited for are lost)."""
    return sum(process_cpu(p) for p in _tree(pid))


@dataclass
class CpuSample:
    wall: float
    busy: float          # CPU seconds the whole machine was busy
    own: dict[str, float]


class CpuMeter:
    """Wall time, machine-wide busy CPU and the CPU of named process trees."""

    def __init__(self, trees: dict[str, int]) -> None:
        self.trees = trees
        self.start = self._sample()

    def _sample(self) -> CpuSample:
        own = {}
        for name, pid in self.trees.items():
            if pid == os.getpid():
                t = os.times()  # this process only (its servers are named on their own)
                own[name] = t.user + t.system
            else:
                own[name] = tree_cpu(pid)
        return CpuSample(time.perf_counter(), _busy_jiffies() / CLK_TCK, own)

    def stop(self) -> dict[str, float]:
        end = self._sample()
        report = {"wall_s": end.wall - self.start.wall}
        ours = 0.0
        for name in self.trees:
            used = end.own[name] - self.start.own[name]
            report[f"{name}_cpu_s"] = used
            ours += used
        report["others_cpu_s"] = max(0.0, (end.busy - self.start.busy) - ours)
        return report


def postmaster_pid(url: str) -> int:
    """The postmaster of the PostgreSQL server at ``url`` (its backends are its children)."""
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            backend = cur.fetchone()[0]
    finally:
        conn.close()
    with open(f"/proc/{backend}/status") as f:
        for line in f:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    raise RuntimeError("postmaster not found")


def rss_mb(pid: int | None = None, field: str = "VmRSS") -> float:
    """Resident memory (``VmRSS``) or its peak (``VmHWM``) of a process, in MB."""
    with open(f"/proc/{pid or os.getpid()}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


# -- databases, app settings -----------------------------------------------------------------

@contextmanager
def workdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary folder, removed afterwards unless ``keep`` (then its path is printed)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"logs kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def database_url(backend: str, folder: Path) -> Iterator[str]:
    """A fresh database: a SQLite file in ``folder`` or a private PostgreSQL server."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'cpaas.sqlite3'}"
    else:
        with servers.postgres_server() as url:
            yield url


def init_platform(url: str, data_dir: Path) -> dict[str, str]:
    """Create the schema and seed the two accounts; returns account name → account id."""
    from cpaas import accounts, db
    from cpaas.models import Account

    database = db.init(url)
    db.create_schema(database)
    database.connect(reuse_if_open=True)
    accounts.seed(data_dir, SECRETS, "bench-operator")
    ids = {a.name: a.id for a in Account.select()}
    database.close()
    return ids


def app_env(url: str, redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for ``cpaas`` processes (gunicorn, the CLI) on these servers."""
    env = {**os.environ, "DATABASE_URL": url,
           "REDIS_URL": redis_url, "CPAAS_DATA_DIR": str(data_dir),
           "CPAAS_STORAGE_URL": str(data_dir / "bucket"),
           "CPAAS_ACCOUNT_1_AUTH": SECRETS["account_1"], "CPAAS_ACCOUNT_2_AUTH": SECRETS["account_2"],
           "CPAAS_ADMIN_PASSWORD": "bench-operator", "CPAAS_AUTH_FAIL_LIMIT": "100000",
           "HOST": "127.0.0.1"}
    env.update(extra)
    return env


@dataclass
class Gunicorn:
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return [int(p) for p in f.read().split()]


@contextmanager
def gunicorn(env: dict[str, str], workers: int, threads: int, log_path: Path,
             startup_timeout: float = 60.0, app: str = "app:app") -> Iterator[Gunicorn]:
    """The real API server: gunicorn with ``cpaas/gunicorn_conf.py`` on a free loopback port."""
    port = servers.free_port()
    env = {**env, "PORT": str(port), "CPAAS_HTTP_PORT": str(port), "WEB_CONCURRENCY": str(workers),
           "WEB_THREADS": str(threads), "HOST": "127.0.0.1"}
    log = open(log_path, "ab")
    proc = subprocess.Popen([str(VENV_BIN / "gunicorn"), "-c", "python:cpaas.gunicorn_conf", app],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"gunicorn exited ({proc.returncode}); its log ends:\n{tail}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not become healthy; see {log_path}")
            time.sleep(0.2)
        # every worker up (the health check reached one)
        deadline = time.monotonic() + startup_timeout
        while len(Gunicorn(proc, port, log_path).workers()) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        yield Gunicorn(proc, port, log_path)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


def http_json(method: str, url: str, body: object = None, headers: dict[str, str] | None = None,
              timeout: float = 60.0) -> tuple[int, dict]:
    """One JSON request with urllib; returns (status, parsed body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


class KeptAliveSession:
    """A ``requests.Session`` that sends a request once more, on a new connection, when the
    server closed the kept-alive one it went out on before answering (gunicorn closes a
    connection idle for its ``keepalive`` seconds; one taken from the pool in that same
    instant is refused: the classic keep-alive race, which browsers also retry). Nothing
    else is retried. ``retries`` counts them, for the report."""

    def __init__(self, pool: int = 32) -> None:
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool)
        self.session.mount("http://", adapter)
        self.retries = 0

    def post(self, url: str, **kwargs):
        """POST ``url``; once more if the connection was closed before any answer."""
        try:
            return self.session.post(url, **kwargs)
        except requests.ConnectionError as err:
            # Only "closed without response" on a reused connection: the server read
            # nothing, so sending again cannot place a call twice.
            if not _closed_unanswered(err):
                raise
            self.retries += 1
            return self.session.post(url, **kwargs)


def _closed_unanswered(err: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[BaseException | None] = [err]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, http.client.RemoteDisconnected):
            return True
        stack.extend([current.__cause__, current.__context__]
                     + [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)])
    return False


def auth_headers(account: str = "account_1") -> dict[str, str]:
    return {"account": account, "auth": SECRETS[account]}


def wait_port_free(port: int) -> None:
    for _ in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.1)
