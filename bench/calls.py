"""Call benchmarks through the whole platform (real SIP to the sandbox carrier).

    .venv/bin/python bench/calls.py setup   [--requests 300]   call setup latency at 10 req/s
    .venv/bin/python bench/calls.py load    [--seconds 60]     20 new calls/s, each ~5 s
    .venv/bin/python bench/calls.py hold    [--calls 100]      N answered calls held 60 s

Everything runs as the Procfile starts it (tests/launcher.py): gunicorn API, RQ workers,
the events process, the PJSUA2 engine pool and the sipp carrier, with PostgreSQL and
Redis on private ports. Call setup time is measured from just before the HTTP request
is sent to the moment the INVITE reaches the carrier's port on the loopback interface
(a raw-socket sniffer; needs root). Every loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
from email.utils import parsedate_to_datetime
import secrets
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (LOAD_ENV, CpuMeter, machine_notes, paced, percentile, print_table,  # noqa: E402
                           rss_mb, workdir)
from tests import launcher, servers  # noqa: E402
from tests.sniff import InviteTimes  # noqa: E402

CALLER_ID = "15168148111"


def _number(suffix: str) -> str:
    return "91" + "".join(secrets.choice("0123456789") for _ in range(7)) + suffix


def _headers() -> dict[str, str]:
    return {"account": "account_1", "auth": launcher.SECRETS["account_1"]}


def _template(base: str) -> str:
    r = requests.get(base + "/api/announce_template", headers=_headers(), timeout=10)
    return r.json()["response"]["result"][0]["announce_template_id"]


def _wait_cdrs(base: str, request_ids: list[str], timeout: float) -> dict[str, dict]:
    found: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    session = requests.Session()
    while len(found) < len(request_ids) and time.monotonic() < deadline:
        for rid in request_ids:
            if rid in found:
                continue
            rows = session.post(base + "/api/get_cdr_by_request_id", json={"request_id": rid},
                                headers=_headers(), timeout=10).json()["response"]["result"]
            if rows:
                found[rid] = rows[0]
        time.sleep(1)
    return found


def _wait_engine_ready(redis_url: str, workers: int, timeout: float = 120) -> None:
    """Wait until every engine worker has its SIP stack up, then let the start settle.

    The pool registers a worker when it spawns it; the worker says ``ready_at`` once
    pjsua is up. Sixty interpreters importing pjsua2 keep 2 cores busy for half a
    minute or more, and load offered meanwhile measures the start, not the platform.
    A worker whose SIP port is taken (the launcher's ports lie in the ephemeral range)
    keeps restarting; after ``timeout`` the run goes on with the workers that are up.
    """
    import json

    import redis

    client = redis.Redis.from_url(redis_url)
    started = time.monotonic()

    def count_ready() -> int:
        entries = [json.loads(v) for v in client.hgetall("cpaas:engine:workers").values()]
        return sum(1 for e in entries if "ready_at" in e)

    while count_ready() < workers and time.monotonic() - started < timeout:
        time.sleep(0.5)
    time.sleep(5)
    print(f"engine: {count_ready()} of {workers} workers ready after "
          f"{time.monotonic() - started - 5:.0f} s (+5 s settling)")


def _processes(running: launcher.Running) -> dict[str, int]:
    return {name: proc.pid for name, proc in running.procs.items()}


def _report_resources(running: launcher.Running, cpu: dict[str, float], calls: int = 0) -> None:
    """CPU and RSS per Procfile process; with ``calls``, also its CPU ms per call."""
    rows = []
    for name, proc in running.procs.items():
        tree = [proc.pid] + _children(proc.pid)
        used = cpu.get(f"{name}_cpu_s", 0.0)
        row = [name, len(tree), used / cpu["wall_s"] * 100]
        if calls:
            row.append(used * 1000 / calls)
        rows.append((*row, sum(_rss(p) for p in tree)))
    print_table("resources (CPU % of one core, averaged over the run; RSS now)",
                ["process", "pids", "cpu %", *(["cpu ms/call"] if calls else []), "rss MB"], rows)


def _rss(pid: int) -> float:
    try:
        return rss_mb(pid)
    except OSError:
        return 0.0


def _children(pid: int) -> list[int]:
    from bench._common import _tree

    return _tree(pid)[1:]


def setup(args: argparse.Namespace) -> None:
    """Latency from HTTP request to INVITE at the carrier, click2call and OTP, at 10 req/s."""
    with workdir("cpaas-bench-calls") as folder, servers.redis_server() as redis_url, \
            servers.postgres_server() as db_url, \
            launcher.platform(folder / "data", redis_url, db_url, hold=2, engine_workers=12,
                              rq_workers=3, web=True) as running:
        _wait_engine_ready(redis_url, 12)
        invites = InviteTimes(running.carrier_port)
        base = running.base_url
        template = _template(base)
        session = requests.Session()
        results = {}
        for kind in ("click2call", "otp"):
            sent: dict[str, float] = {}

            def send(i: int) -> str:
                if kind == "click2call":
                    # A busy agent ends the call at once, so the run measures setup only.
                    number, path = _number("486"), "/api/click2call"
                    body = {"agent_number": number, "caller_id": CALLER_ID,
                            "destination_number": _number("101")}
                else:
                    number, path = _number("001"), "/api/outbound_call"
                    body = {"customer_number": number, "otp": "1987", "caller_id": CALLER_ID,
                            "announce_template_id": template}
                sent[number] = time.monotonic()
                r = session.post(base + path, json=body, headers=_headers(), timeout=10)
                r.raise_for_status()
                return number

            # The first requests warm each gunicorn, RQ and engine process; they are sent
            # at the same pace and left out of the figures.
            paced(10, args.warmup, send)
            numbers = paced(10, args.requests, send)
            time.sleep(3)
            latencies = [(invites.first[n] - sent[n]) * 1000 for n in numbers if n in invites.first]
            results[kind] = (len(numbers), len(latencies), percentile(latencies, 50),
                             percentile(latencies, 99), max(latencies or [0]))
            time.sleep(5)
        invites.stop()
        print_table("call setup: HTTP request -> INVITE at the carrier (ms), 10 requests/s",
                    ["call", "sent", "INVITEs seen", "p50", "p99", "max"],
                    [(k, *v) for k, v in results.items()])
        print(machine_notes())


def load(args: argparse.Namespace) -> None:
    """20 new OTP calls per second for ``--seconds``; the carrier ends each after 5 s."""
    rate, count = 20, 20 * args.seconds
    with workdir("cpaas-bench-calls", keep=args.keep) as folder, \
            servers.redis_server() as redis_url, servers.postgres_server() as db_url, \
            launcher.platform(folder / "data", redis_url, db_url, hold=5, engine_workers=args.engine_workers,
                              rq_workers=args.rq_workers, web=True, extra_env=LOAD_ENV) as running:
        _wait_engine_ready(redis_url, args.engine_workers)
        base = running.base_url
        template = _template(base)
        session = requests.Session()
        meter = CpuMeter(_processes(running))

        sent_at: dict[str, float] = {}

        def send(i: int) -> str | None:
            t0 = time.time()
            r = session.post(base + "/api/outbound_call", headers=_headers(), timeout=10, json={
                "customer_number": _number("001"), "otp": "1987", "caller_id": CALLER_ID,
                "announce_template_id": template, "repeat": "3"})
            rid = r.json()["response"].get("request_id") if r.status_code == 200 else None
            if rid:
                sent_at[rid] = t0
            return rid

        peak = {"legs": 0, "backlog": 0}
        stop = threading.Event()

        def watch() -> None:
            import redis
            client = redis.Redis.from_url(redis_url)
            queues = ["rq:queue:calls"] + [f"cpaas:engine:plans:{n}" for n in range(1, 5)]
            while not stop.wait(0.5):
                peak["legs"] = max(peak["legs"], client.hlen("cpaas:live:legs"))
                # Calls accepted but not dialed yet: jobs waiting for an RQ worker and
                # plans waiting for an engine slot. It stays small only if the platform
                # really places 20 calls/s rather than queueing them.
                pipe = client.pipeline()
                for queue in queues:
                    pipe.llen(queue)
                peak["backlog"] = max(peak["backlog"], sum(pipe.execute()))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.monotonic()
        request_ids = paced(rate, count, send)
        offered = time.monotonic() - started
        accepted = [r for r in request_ids if r]
        cdrs = _wait_cdrs(base, accepted, timeout=120)
        stop.set()
        cpu = meter.stop()
        answered = sum(1 for c in cdrs.values() if c["dial_status"] == "ANSWER")
        durations = [c["call_duration"] for c in cdrs.values() if c["call_duration"]]
        print_table(f"sustained load: {rate} OTP calls/s for {args.seconds} s (hold 5 s)",
                    ["requests", "offered s", "accepted", "CDRs", "answered", "failed",
                     "peak live legs", "peak backlog", "median call s"],
                    [(count, offered, len(accepted), len(cdrs), answered, count - answered,
                      peak["legs"], peak["backlog"], percentile(durations, 50))])
        outcomes: dict[tuple[str, str], int] = {}
        for c in cdrs.values():
            key = (c["dial_status"], c["hangup_cause"])
            outcomes[key] = outcomes.get(key, 0) + 1
        print_table("outcomes", ["dial_status", "hangup_cause", "calls"],
                    [(*k, v) for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1])])
        # How far behind the requests the calls were answered: the CDR's answer time has
        # whole seconds, so each lag is up to 1 s short.
        answers = {rid: parsedate_to_datetime(c["answer"]).timestamp()
                   for rid, c in cdrs.items() if c["dial_status"] == "ANSWER"}
        lags = [answers[rid] - sent_at[rid] for rid in answers if rid in sent_at]
        if answers:
            print(f"answered {min(answers.values()) - min(sent_at.values()):.0f} s to "
                  f"{max(answers.values()) - min(sent_at.values()):.0f} s after the first "
                  f"request; answer lag after its request (s, 1 s resolution): "
                  f"p50 {percentile(lags, 50):.1f}, p99 {percentile(lags, 99):.1f}, "
                  f"max {max(lags):.1f}")
        _report_resources(running, cpu, calls=len(accepted))
        platform_cpu = sum(v for k, v in cpu.items()
                           if k.endswith("_cpu_s") and k != "others_cpu_s")
        print(f"platform CPU: {platform_cpu / cpu['wall_s'] / 2 * 100:.0f}% of the 2 cores; "
              f"everything else on the machine: {cpu['others_cpu_s'] / cpu['wall_s'] / 2 * 100:.0f}%")
        print(machine_notes())


def hold(args: argparse.Namespace) -> None:
    """``--calls`` answered click2call calls (two legs each, bridged) held for 60 s."""
    # A click2call plan reserves three slots (agent, customer, a transfer target), so a
    # process of four slots holds one: a process per call, and two to spare.
    engine_workers = args.calls + 2
    with workdir("cpaas-bench-calls") as folder, servers.redis_server() as redis_url, \
            servers.postgres_server() as db_url, \
            launcher.platform(folder / "data", redis_url, db_url, hold=60,
                              engine_workers=engine_workers, rq_workers=3, web=True) as running:
        _wait_engine_ready(redis_url, engine_workers)
        base = running.base_url
        session = requests.Session()

        def send(i: int) -> str | None:
            r = session.post(base + "/api/click2call", headers=_headers(), timeout=10, json={
                "agent_number": _number("101"), "caller_id": CALLER_ID,
                "destination_number": _number("102")})
            return r.json()["response"].get("request_id") if r.status_code == 200 else None

        import redis
        client = redis.Redis.from_url(redis_url)
        request_ids = paced(10, args.calls, send)
        launcher.wait_for(lambda: client.hlen("cpaas:live:legs") >= 2 * args.calls, 60,
                          "every call bridged")
        meter = CpuMeter(_processes(running))
        samples = []
        for _ in range(12):
            time.sleep(5)
            samples.append(client.hlen("cpaas:live:legs"))
        cpu = meter.stop()
        cdrs = _wait_cdrs(base, [r for r in request_ids if r], timeout=120)
        answered = sum(1 for c in cdrs.values() if c["dial_status"] == "ANSWER")
        print_table(f"{args.calls} concurrent answered click2call calls held 60 s",
                    ["calls", "live legs min", "live legs max", "CDRs", "answered",
                     "median billsec"],
                    [(args.calls, min(samples), max(samples), len(cdrs), answered,
                      percentile([c["billsec"] for c in cdrs.values()], 50))])
        _report_resources(running, cpu)
        print(machine_notes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    setup_parser = sub.add_parser("setup")
    setup_parser.add_argument("--requests", type=int, default=300)
    setup_parser.add_argument("--warmup", type=int, default=30)
    load_parser = sub.add_parser("load")
    load_parser.add_argument("--seconds", type=int, default=60)
    # ~100 calls at once need 25 processes of 4 slots; a few more absorb slots still
    # held for BYEs. Not many more: every engine process wakes ~200 times a second
    # (SIP poll, media and clock threads) whether it has 1 call or 4, and on this VM a
    # wake-up costs ~100 us of CPU. 60 processes cost the engine 0.2 core more (run G).
    load_parser.add_argument("--engine-workers", type=int, default=32)
    load_parser.add_argument("--rq-workers", type=int, default=3)
    load_parser.add_argument("--keep", action="store_true",
                             help="keep the logs (engine, carrier trace) for a post-mortem")
    sub.add_parser("hold").add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    {"setup": setup, "load": load, "hold": hold}[args.mode](args)


if __name__ == "__main__":
    main()
