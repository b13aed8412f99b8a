"""Pacing accuracy of the campaign dialer, from the INVITE times at the carrier (target:
at ``calls_per_minute`` 600 over 3 minutes, every 10-second window within ±5% of 100
calls, and the whole run within ±1%).

    .venv/bin/python bench/pacing.py [--per-minute 600] [--seconds 180]
                                     [--baseline-seconds 60] [--engine-workers 8] [--rq-workers 3]

The whole platform (tests/launcher.py: gunicorn API, RQ workers whose scanner runs the
dialer, the events process, the PJSUA2 engine pool, the sipp sandbox carrier) over a
private PostgreSQL and Redis. One type-0 campaign (a short dynamic announcement, a
different name per contact) over enough answering contacts to dial for ``--seconds``
plus 30 s, created through the API; the carrier holds each answered call
``CPAAS_SANDBOX_HOLD`` (1 s). Every INVITE's arrival is sipp's own stamp in the carrier's
INVITE log; windows start at the first INVITE.

Baseline, in the same script and against the same carrier first: sipp itself as the
caller (its built-in ``uac`` scenario, ``-r`` at the same rate), whose call-rate pacer
is the reference for "evenly spread" and whose INVITEs go through the same stamping.
The ideal schedule (first INVITE + i / rate) is printed beside both as each INVITE's
offset from it. Every loop is bounded.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._campaigns import (answering_numbers, create_campaign, invites, load_list,  # noqa: E402
                             pacing_report, started_at, turns_report, wait_completed)
from bench._common import CpuMeter, machine_notes, print_table, workdir  # noqa: E402
from tests import launcher, servers  # noqa: E402

HOLD = 1.0
BASELINE_NUMBER = "919000000111"


def sipp_baseline(running: launcher.Running, rate: float, seconds: int) -> list[float]:
    """sipp's ``uac`` at ``rate`` calls/s for ``seconds`` into the carrier; its INVITE times.

    The caller hangs up 0.2 s after the answer, before the carrier's hold runs out."""
    folder = running.logs / "sipp-uac"
    folder.mkdir(exist_ok=True)
    calls = int(rate * seconds)
    cmd = ["sipp", "-sn", "uac", "-s", BASELINE_NUMBER, f"127.0.0.1:{running.carrier_port}",
           "-i", "127.0.0.1", "-p", str(servers.free_udp_port()), "-mp", str(servers.free_media_port()),
           "-r", f"{rate:g}", "-rp", "1000", "-m", str(calls), "-d", "200", "-l", "200",
           "-nostdin", "-timeout", f"{seconds + 60}s", "-trace_err", "-error_file",
           str(folder / "errors.log")]
    result = subprocess.run(cmd, cwd=folder, capture_output=True, timeout=seconds + 90)
    if result.returncode not in (0, 1):   # 1: some calls failed, still a rate
        print(f"sipp uac exited {result.returncode}: {result.stderr[-500:]!r}")
    return [at for user, _, at in invites(running.carrier_log) if user == BASELINE_NUMBER]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-minute", type=int, default=600)
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--baseline-seconds", type=int, default=60)
    parser.add_argument("--engine-workers", type=int, default=8)
    parser.add_argument("--rq-workers", type=int, default=3)
    args = parser.parse_args()
    rate = args.per_minute / 60
    print(machine_notes())
    with workdir("cpaas-bench-pacing") as folder, servers.redis_server() as redis_url, \
            servers.postgres_server() as db_url, \
            launcher.platform(folder / "data", redis_url, db_url, hold=HOLD, ring_timeout=8,
                              engine_workers=args.engine_workers, rq_workers=args.rq_workers,
                              web=True) as running:
        launcher.wait_for(lambda: all(p.poll() is None for p in running.procs.values()), 5, "up")
        time.sleep(10)   # the engine processes finish importing pjsua2 before any load
        if args.baseline_seconds:
            base_times = sipp_baseline(running, rate, args.baseline_seconds)
            pacing_report("baseline: sipp uac -r", base_times, rate, args.baseline_seconds)
        count = int(rate * (args.seconds + 30))
        numbers = answering_numbers(count, seed=600)
        contacts = [{"contact_name": f"contact {i}", "contact_number": n,
                     "contact_fields": {"field1": f"customer {i}"}} for i, n in enumerate(numbers)]
        list_id = load_list(running.base_url, "account_1", "pacing", contacts)
        meter = CpuMeter({name: proc.pid for name, proc in running.procs.items()})
        campaign_id = create_campaign(running.base_url, "account_1", "pacing", list_id,
                                      calls_per_minute=str(args.per_minute))
        final = wait_completed(running.base_url, "account_1", campaign_id,
                               timeout=count / rate * 1.5 + 60)
        cpu = meter.stop()
        wanted = set(numbers)
        sent = [(user, at) for user, _, at in invites(running.carrier_log) if user in wanted]
        pacing_report(f"campaign at {args.per_minute}/min", [at for _, at in sent], rate,
                      args.seconds)
        # Where the time went: when the scanner started each attempt (its row's
        # created_at, the turn's clock), apart from when its INVITE reached the carrier.
        starts = started_at(db_url, campaign_id)
        pacing_report("attempts started by the scanner", starts, rate, args.seconds)
        turns_report(starts)
        dialed = {user for user, _ in sent}
        print(f"campaign {campaign_id}: status {final['campaign_status']}, progress "
              f"{final.get('progress')}; {len(sent)} INVITEs for {len(dialed)} of {count} "
              f"contacts ({len(sent) - len(dialed)} repeated)")
        print_table("CPU during the campaign", ["process", "CPU s", "% of one core"],
                    [(name, cpu[f"{name}_cpu_s"], cpu[f"{name}_cpu_s"] / cpu["wall_s"] * 100)
                     for name in running.procs] + [("others", cpu["others_cpu_s"], "")])
    print(machine_notes())


if __name__ == "__main__":
    main()
