"""Callback scheduler benchmark: firing delay with 100,000 callbacks pending.

    .venv/bin/python bench/scheduler.py [--pending 100000] [--rate 2] [--seconds 300]
                                        [--baseline-seconds 60]

PostgreSQL and Redis on private ports (tests/servers.py); ``--pending`` callbacks
scheduled tomorrow (never due during the run), plus ``--rate`` per second coming due
for ``--seconds``. Their agents answer busy (sandbox numbers ending 486), so each
fired callback is one short INVITE. The firing delay is the time the INVITE reached
the sandbox carrier (its INVITE log, stamped by sipp) minus ``scheduled_at``.

Baseline, in the same script and on the same table: the bare poll loop with no
platform: a thread that every ``CPAAS_SCAN_INTERVAL`` claims the due rows with one
``UPDATE … RETURNING`` and pushes their ids on a Redis list, and a reader that pops
them: the floor any poll-based scheduler over this table pays. Then the whole platform
(tests/launcher.py: RQ workers with their scanner threads, the events process, the
PJSUA2 engine pool, the sipp carrier) on the same table. Every loop is bounded.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import psycopg2
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import CpuMeter, init_platform, machine_notes, percentile, print_table, workdir  # noqa: E402
from cpaas import config, ids  # noqa: E402
from sandbox_carrier.carrier import invite_times  # noqa: E402
from tests import launcher, servers  # noqa: E402

INTERVAL = config.Settings().scan_interval
_COLUMNS = ("id, account_id, agent_number, caller_id, destination_number, recording_option,"
            " time_zone, scheduled_at, status, fired_at, created_at")


def insert_pending(url: str, account: str, count: int) -> None:
    """``count`` callbacks scheduled from tomorrow on, one a second (never due here)."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO callback ({_COLUMNS}) SELECT substr(md5(random()::text || g), 1, 10),"
            " %s, '91' || lpad(g::text, 7, '0') || '486', '15168148111', '918000680486', 'off',"
            " 'UTC', (now() AT TIME ZONE 'utc') + interval '1 day' + g * interval '1 second',"
            " 'scheduled', NULL, now() AT TIME ZONE 'utc' FROM generate_series(1, %s) g"
            " ON CONFLICT DO NOTHING", (account, count))
        cur.execute("ANALYZE callback")


def insert_stream(url: str, account: str, rate: int, seconds: int, lead: float,
                  first_number: int) -> dict[str, float]:
    """``rate`` callbacks due at each whole second for ``seconds``, starting ``lead`` s
    from now; returns agent number → due time (epoch)."""
    start = int(time.time() + lead) + 1
    due = {f"91{first_number + i:07d}486": float(start + i // rate) for i in range(rate * seconds)}
    rows = [(ids.request_id(), account, number, "15168148111", "918000680486", "off", "UTC",
             time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)), "scheduled", None,
             time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))
            for number, at in due.items()]
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO callback ({_COLUMNS}) VALUES "
                        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    return due


def baseline(url: str, redis_url: str, account: str, rate: int, seconds: int) -> list[float]:
    """The bare poll loop's delays (pop time − scheduled_at), over its own stream."""
    due = insert_stream(url, account, rate, seconds, 3.0, 8_000_000)
    r = redis.Redis.from_url(redis_url)
    r.delete("bench:due")
    stop = threading.Event()

    def poll() -> None:
        conn = psycopg2.connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("UPDATE callback SET status = 'fired', fired_at = now() AT TIME ZONE"
                            " 'utc' WHERE id IN (SELECT id FROM callback WHERE status ="
                            " 'scheduled' AND scheduled_at <= now() AT TIME ZONE 'utc' ORDER BY"
                            " scheduled_at LIMIT 100) RETURNING agent_number")
                numbers = [n for (n,) in cur.fetchall()]
                if numbers:
                    r.rpush("bench:due", *numbers)
                stop.wait(INTERVAL)
        conn.close()

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    delays: list[float] = []
    deadline = time.time() + seconds + 15
    while len(delays) < len(due) and time.time() < deadline:
        popped = r.blpop(["bench:due"], timeout=1)
        if popped:
            delays.append(time.time() - due[popped[1].decode()])
    stop.set()
    poller.join(5)
    return delays


def platform_run(folder: Path, redis_url: str, url: str, account: str, rate: int,
                 seconds: int) -> None:
    with launcher.platform(folder / "data", redis_url, url, hold=2, engine_workers=3,
                           rq_workers=2) as running:
        time.sleep(5)           # let the workers' start settle
        meter = CpuMeter({name: proc.pid for name, proc in running.procs.items()})
        due = insert_stream(url, account, rate, seconds, 5.0, 9_000_000)
        end = max(due.values()) + 20
        while time.time() < end:
            time.sleep(2)
        cpu = meter.stop()
        log = running.carrier_log
        sent = {number: invite_times(log, number) for number in due}
        delays = [times[0] - due[number] for number, times in sent.items() if times]
        duplicates = sum(1 for times in sent.values() if len(times) > 1)
        missing = sum(1 for times in sent.values() if not times)
        report("platform (scanner → RQ job → engine → INVITE)", delays, len(due), missing,
               duplicates)
        print_table("CPU during the run", ["process", "CPU s", "% of one core"],
                    [(name, cpu[f"{name}_cpu_s"], cpu[f"{name}_cpu_s"] / cpu["wall_s"] * 100)
                     for name in running.procs] + [("others", cpu["others_cpu_s"], "")])
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT status, count(*) FROM callback GROUP BY status ORDER BY 1")
            print_table("callback rows after the run", ["status", "rows"], cur.fetchall())


def report(title: str, delays: list[float], expected: int, missing: int = 0,
           duplicates: int = 0) -> None:
    ms = sorted(d * 1000 for d in delays) or [float("nan")]
    print_table(title, ["due", "fired", "missing", "duplicates", "p50 ms", "p90 ms", "p99 ms",
                        "max ms", "min ms"],
                [(expected, len(delays), missing, duplicates, percentile(ms, 50), percentile(ms, 90),
                  percentile(ms, 99), ms[-1], ms[0])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=2, help="callbacks coming due per second")
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--baseline-seconds", type=int, default=60)
    args = parser.parse_args()
    with workdir("cpaas-bench-scheduler") as folder, servers.redis_server() as redis_url, \
            servers.postgres_server() as url:
        account = init_platform(url, folder / "data")["account_1"]
        started = time.perf_counter()
        insert_pending(url, account, args.pending)
        print(f"{args.pending} pending callbacks inserted in {time.perf_counter() - started:.1f} s;"
              f" scan interval {INTERVAL} s")
        delays = baseline(url, redis_url, account, args.rate, args.baseline_seconds)
        report("baseline: bare poll loop (UPDATE … RETURNING → Redis list)", delays,
               args.rate * args.baseline_seconds)
        platform_run(folder, redis_url, url, account, args.rate, args.seconds)
        print(machine_notes())


if __name__ == "__main__":
    main()
