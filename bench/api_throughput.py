"""Benchmark: ``add_contact_to_list`` and ``create_campaign_list`` under concurrent clients.

Targets (1-contact body, 2 cores): >= 800 req/s at saturation; p99 <= 30 ms at an offered
500 req/s.

    .venv/bin/python bench/api_throughput.py [--backends postgresql,sqlite]
        [--configs 2x4,3x2,4x1,4x4] [--duration 10] [--rate 500] [--rate-duration 20]
        [--py-spy /path/to/py-spy]

The server is the real one: gunicorn with ``cpaas/gunicorn_conf.py`` (WEB_CONCURRENCY
workers x WEB_THREADS threads) on a private PostgreSQL or SQLite database and a private
redis-server. Saturation: ``wrk`` (one thread, closed loop, a Lua script giving every
request its own number / list name) for --duration seconds per endpoint and config.
Fixed rate: an open-loop asyncio client on keep-alive connections sends --rate req/s
for --rate-duration seconds on the best config; latency is measured from each request's
scheduled send time, so a server that falls behind is charged for the queueing.
The load generators run on the same 2 cores as the server (and take CPU from it).
With --py-spy, one worker is sampled during an extra saturation run and the time is
summed by area (Flask/Werkzeug, marshmallow, peewee, driver, redis, ...).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

SATURATION_TARGET = 800.0
P99_TARGET_MS = 30.0
ENDPOINTS = ("add_contact_to_list", "create_campaign_list")

LUA = r"""
local counter = 0
local endpoint = os.getenv("BENCH_ENDPOINT")
local list_id = os.getenv("BENCH_LIST_ID")
local base = tonumber(os.getenv("BENCH_BASE"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["account"] = "account_1"
wrk.headers["auth"] = os.getenv("BENCH_AUTH")
request = function()
  counter = counter + 1
  local body
  if endpoint == "add_contact_to_list" then
    body = string.format('{"list_id":"%s","contacts":[{"contact_name":"Bench %d","contact_number":"+91%d"}]}',
                         list_id, counter, 7000000000 + base + counter)
  else
    body = string.format('{"list_name":"bench-%d-%d"}', base, counter)
  end
  return wrk.format(nil, "/api/" .. endpoint, nil, body)
end
"""


def body_for(endpoint: str, list_id: str, base: int, n: int) -> bytes:
    if endpoint == "add_contact_to_list":
        return json.dumps({"list_id": list_id, "contacts": [
            {"contact_name": f"Bench {n}", "contact_number": f"+91{7000000000 + base + n}"}]}).encode()
    return json.dumps({"list_name": f"bench-{base}-{n}"}).encode()


# -- saturation with wrk ---------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def run_wrk(port: int, endpoint: str, list_id: str, base: int, connections: int, duration: int,
            script: Path) -> dict:
    env = {**os.environ, "BENCH_ENDPOINT": endpoint, "BENCH_LIST_ID": list_id,
           "BENCH_BASE": str(base), "BENCH_AUTH": c.SECRETS["account_1"]}
    proc = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
                           "--latency", "-s", str(script), f"http://127.0.0.1:{port}"],
                          capture_output=True, text=True, env=env, timeout=duration + 60)
    out = proc.stdout
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr}\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "requests": total, "p50": _ms(lat.get("50", "nan")), "p99": _ms(lat.get("99", "nan")),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else ""}


# -- fixed rate, open loop -------------------------------------------------------------------

async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> tuple[int, bool]:
    writer.write(payload)
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length, close = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"connection" and value.strip().lower() == b"close":
            close = True
    await reader.readexactly(length)
    return status, close


async def _fixed_rate(port: int, endpoint: str, list_id: str, base: int, rate: float, duration: float,
                      max_connections: int = 256) -> dict:
    total = int(rate * duration)
    head = (f"POST /api/{endpoint} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"account: account_1\r\nauth: {c.SECRETS['account_1']}\r\n").encode()
    payloads = []
    for n in range(1, total + 1):
        body = body_for(endpoint, list_id, base, n)
        payloads.append(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    # (reader, writer, when it went idle); gunicorn drops a keep-alive connection idle for
    # 5 s (keepalive in gunicorn_conf.py), so one idle for 4 s is closed here first.
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    opened = 0
    waiters: collections.deque[asyncio.Future] = collections.deque()
    latencies: list[float] = []
    statuses: collections.Counter = collections.Counter()
    errors: list[str] = []

    async def get_conn():
        nonlocal opened
        while idle:
            reader, writer, since = idle.pop()
            if time.perf_counter() - since < 4.0:
                return reader, writer
            writer.close()
            opened -= 1
        if opened < max_connections:
            opened += 1
            return await asyncio.open_connection("127.0.0.1", port)
        fut = asyncio.get_running_loop().create_future()
        waiters.append(fut)
        return await fut

    def put_conn(conn) -> None:
        if waiters:
            waiters.popleft().set_result(conn)
        else:
            idle.append((*conn, time.perf_counter()))

    async def send(payload: bytes, scheduled: float) -> None:
        nonlocal opened
        try:
            conn = await get_conn()
            status, close = await asyncio.wait_for(_one(*conn, payload), 30)
            latencies.append((time.perf_counter() - scheduled) * 1000)
            statuses[status] += 1
            if close:
                conn[1].close()
                opened -= 1
            else:
                put_conn(conn)
        except Exception as err:  # noqa: BLE001 - counted and reported
            errors.append(type(err).__name__)
            opened -= 1
            if len(errors) <= 3:
                print(f"    request error: {err!r}", flush=True)

    loop_start = time.perf_counter() + 0.2
    tasks = []
    for i, payload in enumerate(payloads):
        scheduled = loop_start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(payload, scheduled)))
    send_end = time.perf_counter()
    await asyncio.wait(tasks, timeout=60)
    for _, w, _ in idle:
        w.close()
    achieved = len(latencies) / max(1e-9, (max(send_end, time.perf_counter()) - loop_start))
    return {"offered": rate, "sent": total, "achieved": len(latencies) / (send_end - loop_start) if latencies else 0,
            "completed": len(latencies), "p50": c.percentile(latencies, 50), "p99": c.percentile(latencies, 99),
            "max": max(latencies) if latencies else 0.0, "statuses": dict(statuses), "errors": len(errors),
            "connections": opened, "rate_incl_drain": achieved}


def fixed_rate(port: int, endpoint: str, list_id: str, base: int, rate: float, duration: float) -> dict:
    return asyncio.run(asyncio.wait_for(_fixed_rate(port, endpoint, list_id, base, rate, duration),
                                        duration + 120))


# -- profile ----------------------------------------------------------------------------------

#: (label, substrings of a frame): a sample counts for a label when any frame of its
#: stack matches (inclusive time; labels overlap, e.g. peewee includes the driver).
AREAS = [
    ("inside the Flask app (wsgi_app)", ("flask/app.py",)),
    ("  before_request: auth + db connect", ("_begin (cpaas/app.py",)),
    ("    auth failure limiter (Redis GET)", ("blocked (",)),
    ("    pool checkout (incl. SELECT 1 ping)", ("PooledDatabase._connect", "is_connection_closed")),
    ("  json_body: JSON parse + marshmallow", ("json_body (cpaas/http.py",)),
    ("    marshmallow", ("marshmallow/",)),
    ("  service call (own_list + upsert, or create)", ("add_contacts (", "create_list (")),
    ("    peewee SQL building", ("__sql__ (", "Context.sql (", "Context.query (")),
    ("    statements + commit (driver, round trips)", ("_execute_cursor (", "Database.commit (",
                                                     "Database.begin (", "executemany")),
    ("  teardown: db close (pool check-in)", ("_end (cpaas/app.py",)),
    ("  response envelope (JSON)", ("_respond (cpaas/envelope.py",)),
    ("logging", ("logging/",)),
]
#: Samples outside the app: gunicorn accepting, parsing HTTP, writing the response.
OUTSIDE = "outside the app (gunicorn: accept, HTTP parse, write)"


def summarize_profile(raw: Path) -> list[tuple[str, float]]:
    """Inclusive share of py-spy samples per area (see AREAS), from --format raw."""
    counts: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        for label, needles in AREAS:
            if any(needle in stack for needle in needles):
                counts[label] += int(n)
        if "flask/app.py" not in stack:
            counts[OUTSIDE] += int(n)
    labels = [label for label, _ in AREAS] + [OUTSIDE]
    return [(label, 100.0 * counts[label] / total) for label in labels] if total else []


def profile_worker(py_spy: str, server: c.Gunicorn, port: int, list_id: str, base: int, seconds: int,
                   out: Path, script: Path, connections: int) -> list[tuple[str, float]]:
    worker = server.workers()[0]
    spy = subprocess.Popen([py_spy, "record", "--pid", str(worker), "--duration", str(seconds),
                            "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    run_wrk(port, "add_contact_to_list", list_id, base, connections, seconds, script)
    spy.wait(seconds + 30)
    return summarize_profile(out) if out.exists() else []


# -- the benchmark ---------------------------------------------------------------------------

def create_list(port: int, name: str) -> str:
    status, body = c.http_json("POST", f"http://127.0.0.1:{port}/api/create_campaign_list",
                               {"list_name": name}, c.auth_headers())
    assert status == 200, body
    return body["response"]["list_id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(c.BACKENDS))
    parser.add_argument("--configs", default="2x4,3x2,4x1,4x4",
                        help="gunicorn WORKERSxTHREADS to try (comma-separated)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=0, help="wrk connections (0: 2 x slots, 8..64)")
    parser.add_argument("--rate", type=float, default=500.0, help="offered req/s for the fixed-rate run")
    parser.add_argument("--rate-duration", type=float, default=20.0)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "", help="py-spy binary (optional)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    configs = [tuple(int(x) for x in cfg.split("x")) for cfg in args.configs.split(",") if cfg]
    print(c.machine_notes())
    print("load generators (wrk, the asyncio client) share the 2 cores with the server")

    saturation, rated, profiles = [], [], {}
    counter = [0]

    def next_base() -> int:
        counter[0] += 10_000_000
        return counter[0]

    def saturate(backend: str, label: str, server: c.Gunicorn, workers: int, threads: int,
                 trees: dict[str, int], script: Path) -> float:
        connections = args.connections or max(8, min(64, 2 * workers * threads))
        list_id = create_list(server.port, f"target-{label}-{workers}x{threads}")
        run_wrk(server.port, "add_contact_to_list", list_id, next_base(), connections, 2, script)  # warm-up
        total = 0.0
        for endpoint in ENDPOINTS:
            meter = c.CpuMeter({"server": server.proc.pid, **trees})
            r = run_wrk(server.port, endpoint, list_id, next_base(), connections, args.duration, script)
            cpu = meter.stop()
            r["server_cpu"] = cpu["server_cpu_s"] / cpu["wall_s"]
            r["db_cpu"] = cpu.get("db_cpu_s", 0.0) / cpu["wall_s"]
            r["rest_cpu"] = cpu["others_cpu_s"] / cpu["wall_s"]
            saturation.append((backend, label, f"{workers}x{threads}", connections, endpoint, r))
            total += r["rps"] * (1 - r["non2xx"] / max(1, r["requests"]))  # successful req/s
            print(f"  {backend} {label} {workers}x{threads} c={connections} {endpoint}: {r['rps']:.0f} req/s, "
                  f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, non-2xx {r['non2xx']}", flush=True)
        return total

    def at_rate(backend: str, label: str, server: c.Gunicorn, workers: int, threads: int,
                trees: dict[str, int]) -> None:
        list_id = create_list(server.port, f"fixed-rate-{label}")
        for endpoint in ENDPOINTS:
            meter = c.CpuMeter({"server": server.proc.pid, **trees})
            r = fixed_rate(server.port, endpoint, list_id, next_base(), args.rate, args.rate_duration)
            cpu = meter.stop()
            r["server_cpu"] = cpu["server_cpu_s"] / cpu["wall_s"]
            r["db_cpu"] = cpu.get("db_cpu_s", 0.0) / cpu["wall_s"]
            rated.append((backend, label, f"{workers}x{threads}", endpoint, r))
            print(f"  {backend} {label} {workers}x{threads} {endpoint} at {args.rate:.0f} req/s: "
                  f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms", flush=True)

    with c.workdir("cpaas-bench-api-") as work, c.servers.redis_server() as redis_url:
        script = work / "bench.lua"
        script.write_text(LUA)
        for backend in [b for b in args.backends.split(",") if b]:
            folder = work / backend
            folder.mkdir()
            with c.database_url(backend, folder) as url:
                c.init_platform(url, folder)
                env = c.app_env(url, redis_url, folder)
                trees = {"db": c.postmaster_pid(url)} if backend == "postgresql" else {}
                best: tuple[float, tuple[int, int]] | None = None
                for workers, threads in configs:
                    with c.gunicorn(env, workers, threads, work / f"gunicorn-{backend}.log") as server:
                        total = saturate(backend, "product", server, workers, threads, trees, script)
                    if best is None or total > best[0]:
                        best = (total, (workers, threads))
                assert best is not None
                workers, threads = best[1]
                with c.gunicorn(env, workers, threads, work / f"gunicorn-{backend}.log") as server:
                    at_rate(backend, "product", server, workers, threads, trees)
                    if args.py_spy:
                        connections = args.connections or max(8, min(64, 2 * workers * threads))
                        list_id = create_list(server.port, "profiled")
                        profiles[backend] = profile_worker(args.py_spy, server, server.port, list_id, next_base(),
                                                           args.duration, work / f"profile-{backend}.txt",
                                                           script, connections)

    c.print_table(f"Saturation (wrk, {args.duration} s per row; closed loop; latency at that concurrency)",
                  ["backend", "server", "workers x threads", "conns", "endpoint", "req/s", "p50 ms", "p99 ms",
                   "non-2xx", "app CPU", "DB CPU", "rest CPU", "target", "verdict"],
                  [[b, label, cfg, conns, ep, r["rps"], r["p50"], r["p99"], r["non2xx"], r["server_cpu"],
                    r["db_cpu"], r["rest_cpu"], f">= {SATURATION_TARGET:.0f}",
                    "met" if r["rps"] >= SATURATION_TARGET and not r["non2xx"] else "MISSED"]
                   for b, label, cfg, conns, ep, r in saturation])
    c.print_table(f"Fixed rate (open loop, {args.rate:.0f} req/s offered for {args.rate_duration:.0f} s, "
                  "best config; latency from the scheduled send time)",
                  ["backend", "server", "workers x threads", "endpoint", "sent", "achieved req/s", "p50 ms",
                   "p99 ms", "max ms", "statuses", "errors", "app CPU", "DB CPU", "target p99", "verdict"],
                  [[b, label, cfg, ep, r["sent"], r["achieved"], r["p50"], r["p99"], r["max"],
                    " ".join(f"{k}:{v}" for k, v in sorted(r["statuses"].items())), r["errors"],
                    r["server_cpu"], r["db_cpu"], f"{P99_TARGET_MS:.0f}",
                    "met" if r["p99"] <= P99_TARGET_MS and not r["errors"]
                    and set(r["statuses"]) == {200} else "MISSED"]
                   for b, label, cfg, ep, r in rated])
    for backend, summary in profiles.items():
        c.print_table(f"Where a worker's time goes ({backend}, add_contact_to_list at saturation; "
                      "py-spy: % of the worker's non-idle samples inside each area)",
                      ["area", "% of samples"], [[a, p] for a, p in summary])
    print("CPU columns are in cores (2 = the whole machine): app = gunicorn master + workers, "
          "DB = the PostgreSQL server (SQLite runs inside the app), rest = everything else "
          "(the load generator, Redis, other users of this machine).")


if __name__ == "__main__":
    main()
