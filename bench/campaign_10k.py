"""A 10,000-contact campaign at 1,200 calls per minute, against the 20 OTP calls/s load
of bench/calls.py (targets: finished in <= 9.5 minutes with zero duplicates; CPU ms per
call, all processes together, at most 1.25x the OTP load's; account_2's OTP calls placed
meanwhile keep call setup p50 <= 40 ms, p99 <= 150 ms).

    .venv/bin/python bench/campaign_10k.py [--contacts 10000] [--per-minute 1200]
        [--baseline-seconds 60] [--otp-rate 2] [--engine-workers 32] [--rq-workers 3]

The whole platform (tests/launcher.py: gunicorn API, RQ workers whose scanner runs the
dialer, the events process, the PJSUA2 engine pool, the sipp sandbox carrier) over a
private PostgreSQL and Redis; every number answers and the carrier holds an answered
call ``CPAAS_SANDBOX_HOLD`` = 5 s.

1. Baseline, on the same running platform: bench/calls.py's load, 20 OTP calls/s
   (``outbound_call``, repeat 3) for ``--baseline-seconds`` on account_1; CPU of every
   process from the first request until every CDR is written, per call.
2. The campaign, account_1: a type-0 dynamic announcement of about 3 s, a different
   text per contact ("Hello {contact_name}, ticket {field1} is ready.", no two contacts
   alike), created through the API. CPU from its creation until its last CDR, per call
   (account_2's calls counted in). Meanwhile account_2 places ``--otp-rate`` OTP calls
   a second; their setup is from just before each HTTP request to the INVITE's arrival
   at the carrier's port (a raw-socket sniffer on ``lo``: root only, as bench/calls.py).
   Duplicates and missing contacts are counted by Call-ID in the carrier's INVITE log.
Every loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
import secrets
import sys
import threading
import time
from pathlib import Path

import psycopg2
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._campaigns import (CALLER_ID, answering_numbers, create_campaign, details,  # noqa: E402
                              headers, invites, load_list, pacing_report, started_at,
                              turns_report, wait_completed)
from bench._common import CpuMeter, _tree, machine_notes, percentile, print_table, rss_mb, workdir  # noqa: E402
from bench._common import paced  # noqa: E402
from bench.calls import _wait_engine_ready  # noqa: E402
from tests import launcher, servers  # noqa: E402
from tests.sniff import InviteTimes  # noqa: E402

HOLD = 5
RATIO_TARGET = 1.25
FINISH_TARGET_S = 9.5 * 60
NAMES = ["Ravi", "Asha", "Omar", "Lena", "Ivan", "Mei", "Noor", "Ken", "Ana", "Joe",
         "Sita", "Paul", "Ines", "Tom", "Zara", "Raj", "Eva", "Li", "Max", "Uma"]


def otp_number() -> str:
    """A fresh answering sandbox number for one OTP call (ends in 001)."""
    return "91" + "".join(secrets.choice("0123456789") for _ in range(7)) + "001"


def template(base: str, account: str) -> str:
    """The account's approved OTP announcement template."""
    r = requests.get(base + "/api/announce_template", headers=headers(account), timeout=10)
    return r.json()["response"]["result"][0]["announce_template_id"]


class Sampler:
    """Every 2 s: the resident memory of each named process tree (keeps the peak) and the
    call jobs waiting for an RQ worker (``rq:queue:calls``: keeps every sample)."""

    def __init__(self, pids: dict[str, int], redis_url: str) -> None:
        import redis

        self.pids, self.peak = pids, {name: 0.0 for name in pids}
        self.r, self.backlog = redis.Redis.from_url(redis_url), []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def tree_rss(pid: int) -> float:
        total = 0.0
        for p in _tree(pid):
            try:
                total += rss_mb(p)
            except OSError:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(2):
            self.backlog.append(self.r.llen("rq:queue:calls"))
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], self.tree_rss(pid))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def cdr_count(db_url: str, where: str, params: tuple) -> int:
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM cdr WHERE {where}", params)
        return cur.fetchone()[0]


def wait_cdrs(db_url: str, where: str, params: tuple, expected: int, timeout: float) -> int:
    """Poll until ``expected`` CDRs match ``where`` (or ``timeout``); how many did."""
    deadline = time.monotonic() + timeout
    found = cdr_count(db_url, where, params)
    while found < expected and time.monotonic() < deadline:
        time.sleep(1)
        found = cdr_count(db_url, where, params)
    return found


def platform_cpu(cpu: dict[str, float]) -> float:
    return sum(v for k, v in cpu.items() if k.endswith("_cpu_s") and k != "others_cpu_s")


def baseline(running: launcher.Running, db_url: str, seconds: int) -> tuple[int, dict[str, float]]:
    """bench/calls.py's load on account_1: 20 OTP calls/s; (calls, CPU meter report)."""
    base, tpl = running.base_url, template(running.base_url, "account_1")
    session = requests.Session()
    meter = CpuMeter({name: proc.pid for name, proc in running.procs.items()})

    def send(i: int) -> str | None:
        r = session.post(base + "/api/outbound_call", headers=headers("account_1"), timeout=10,
                         json={"customer_number": otp_number(), "otp": "1987", "caller_id": CALLER_ID,
                               "announce_template_id": tpl, "repeat": "3"})
        return r.json()["response"].get("request_id") if r.status_code == 200 else None

    accepted = [rid for rid in paced(20, 20 * seconds, send) if rid]
    done = wait_cdrs(db_url, "campaign_id IS NULL", (), len(accepted), 120)
    cpu = meter.stop()
    print(f"baseline: {len(accepted)} OTP calls accepted, {done} CDRs")
    return len(accepted), cpu


class OtpSender:
    """account_2's OTP calls at ``rate`` a second, in a thread, until stopped; remembers
    when each request left (monotonic, as the sniffer's stamps)."""

    def __init__(self, base: str, rate: float) -> None:
        self.base, self.rate = base, rate
        self.tpl = template(base, "account_2")
        self.sent: dict[str, float] = {}
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        session = requests.Session()
        start, i = time.monotonic(), 0
        while not self._stop.is_set() and i < 100_000:
            delay = start + i / self.rate - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            number = otp_number()
            self.sent[number] = time.monotonic()
            r = session.post(self.base + "/api/outbound_call", headers=headers("account_2"),
                             timeout=10, json={"customer_number": number, "otp": "4071",
                                               "caller_id": CALLER_ID, "announce_template_id": self.tpl})
            self.failed += r.status_code != 200
            i += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def campaign_contacts(count: int) -> list[dict]:
    """``count`` answering contacts whose announcements all differ."""
    numbers = answering_numbers(count, seed=10_000)
    return [{"contact_name": NAMES[i % len(NAMES)], "contact_number": n,
             "contact_fields": {"field1": str(100 + i // len(NAMES))}}
            for i, n in enumerate(numbers)]


def run_campaign(running: launcher.Running, db_url: str, args: argparse.Namespace,
                 sniffer: InviteTimes) -> dict:
    """The campaign with account_2's OTP calls beside it; the figures."""
    contacts = campaign_contacts(args.contacts)
    list_id = load_list(running.base_url, "account_1", "campaign 10k", contacts)
    pids = {name: proc.pid for name, proc in running.procs.items()}
    meter, sampler = CpuMeter(pids), Sampler(pids, running.settings.redis_url)
    created = time.monotonic()
    campaign_id = create_campaign(
        running.base_url, "account_1", "campaign 10k", list_id,
        calls_per_minute=str(args.per_minute),
        announcement_text="Hello {contact_name}, ticket {field1} is ready.")
    otp = OtpSender(running.base_url, args.otp_rate)
    final = wait_completed(running.base_url, "account_1", campaign_id,
                           timeout=args.contacts / (args.per_minute / 60) * 2 + 120)
    finished = time.monotonic() - created
    otp.stop()
    done = wait_cdrs(db_url, "campaign_id = %s", (campaign_id,), args.contacts, 120)
    wait_cdrs(db_url, "campaign_id IS NULL AND account_id = (SELECT id FROM account WHERE"
              " name = %s)", ("account_2",), len(otp.sent), 60)
    cpu, peak = meter.stop(), sampler.stop()
    return {"campaign_id": campaign_id, "final": final, "finished_s": finished, "cdrs": done,
            "contacts": [c["contact_number"] for c in contacts], "otp": otp, "cpu": cpu,
            "peak": peak, "setup": [(sniffer.first[n] - t) * 1000 for n, t in otp.sent.items()
                                    if n in sniffer.first],
            "billsec": billsecs(db_url, campaign_id), "backlog": sampler.backlog,
            "started": started_at(db_url, campaign_id)}


def billsecs(db_url: str, campaign_id: str) -> list[float]:
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT billsec FROM cdr WHERE campaign_id = %s AND billsec IS NOT NULL",
                    (campaign_id,))
        return [float(b) for (b,) in cur.fetchall()]


def report(running: launcher.Running, args: argparse.Namespace, base_calls: int,
           base_cpu: dict[str, float], res: dict) -> None:
    """Print the figures and the verdicts."""
    wanted = set(res["contacts"])
    calls: dict[str, set[str]] = {}
    times = []
    for user, call_id, at in invites(running.carrier_log):
        if user in wanted:
            calls.setdefault(user, set()).add(call_id)
            times.append(at)
    duplicates = sum(1 for ids in calls.values() if len(ids) > 1)
    missing = len(wanted) - len(calls)
    otp_calls = len(res["otp"].sent)
    base_ms = platform_cpu(base_cpu) * 1000 / max(1, base_calls)
    camp_ms = platform_cpu(res["cpu"]) * 1000 / max(1, args.contacts + otp_calls)
    print_table(f"campaign: {args.contacts:,} contacts at {args.per_minute}/min, hold {HOLD} s",
                ["status", "finished s", "target s", "CDRs", "contacts dialed", "missing",
                 "duplicates", "median billsec", "progress"],
                [(res["final"]["campaign_status"], res["finished_s"], FINISH_TARGET_S,
                  res["cdrs"], len(calls), missing, duplicates,
                  percentile(res["billsec"], 50), res["final"].get("progress"))])
    pacing_report("campaign INVITEs", times, args.per_minute / 60,
                  max(10, (max(times) - min(times)) // 10 * 10) if times else 10)
    started = res["started"]
    pacing_report("attempts started by the scanner", started, args.per_minute / 60,
                  max(10, (max(started) - min(started)) // 10 * 10) if started else 10)
    turns_report(started)
    backlog = res["backlog"] or [0]
    print(f"call jobs waiting for an RQ worker (every 2 s): p50 {percentile(backlog, 50):.0f},"
          f" p90 {percentile(backlog, 90):.0f}, max {max(backlog)}")
    rows = []
    for name in running.procs:
        b, c = base_cpu.get(f"{name}_cpu_s", 0.0), res["cpu"].get(f"{name}_cpu_s", 0.0)
        rows.append((name, b * 1000 / max(1, base_calls), c, c / res["cpu"]["wall_s"] * 100,
                     c * 1000 / max(1, args.contacts + otp_calls), res["peak"][name]))
    rows.append(("all", base_ms, platform_cpu(res["cpu"]), "", camp_ms, sum(res["peak"].values())))
    print_table("CPU and memory per process (campaign: its whole run, account_2's calls "
                "included; RSS: peak of the process tree)",
                ["process", "OTP load ms/call", "campaign CPU s", "cpu % of one core",
                 "campaign ms/call", "peak RSS MB"], rows)
    ratio = camp_ms / base_ms if base_ms else float("nan")
    print(f"CPU per call: campaign {camp_ms:.1f} ms, OTP load {base_ms:.1f} ms: ratio {ratio:.2f}"
          f" (target <= {RATIO_TARGET}: {'met' if ratio <= RATIO_TARGET else 'missed'}); others"
          f" on the machine used {res['cpu']['others_cpu_s']:.0f} CPU s during the campaign")
    setup = res["setup"]
    print_table(f"account_2's OTP calls during the campaign ({args.otp_rate}/s): setup HTTP -> "
                "INVITE (ms)", ["sent", "refused", "INVITEs seen", "p50", "p99", "max", "target"],
                [(otp_calls, res["otp"].failed, len(setup), percentile(setup, 50),
                  percentile(setup, 99), max(setup or [0]), "p50 <= 40, p99 <= 150")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--per-minute", type=int, default=1200)
    parser.add_argument("--baseline-seconds", type=int, default=60)
    parser.add_argument("--otp-rate", type=float, default=2.0)
    parser.add_argument("--engine-workers", type=int, default=32)
    parser.add_argument("--rq-workers", type=int, default=3)
    args = parser.parse_args()
    print(machine_notes())
    with workdir("cpaas-bench-campaign") as folder, servers.redis_server() as redis_url, \
            servers.postgres_server() as db_url, \
            launcher.platform(folder / "data", redis_url, db_url, hold=HOLD,
                              engine_workers=args.engine_workers, rq_workers=args.rq_workers,
                              web=True) as running:
        _wait_engine_ready(redis_url, args.engine_workers)
        sniffer = InviteTimes(running.carrier_port)
        base_calls, base_cpu = baseline(running, db_url, args.baseline_seconds)
        time.sleep(HOLD + 5)   # the baseline's last calls end
        res = run_campaign(running, db_url, args, sniffer)
        sniffer.stop()
        report(running, args, base_calls, base_cpu, res)
        print(f"campaign details at the end: {details(running.base_url, 'account_1', res['campaign_id'])}")
    print(machine_notes())


if __name__ == "__main__":
    main()
