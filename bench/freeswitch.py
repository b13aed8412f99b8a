"""FreeSWITCH engine benchmarks, against a real local FreeSWITCH (GUIDE §5).

    FREESWITCH_ESL=127.0.0.1:8021 FREESWITCH_ESL_PASSWORD=… \\
        .venv/bin/python bench/freeswitch.py setup [--requests 300]
        .venv/bin/python bench/freeswitch.py load  [--rate 30] [--seconds 60]
                                                   [--ceiling 30,45,60,90] [--step-seconds 20]

The node's gateway (``FREESWITCH_GATEWAY``, default ``trunk``) must point at the sandbox
carrier on 127.0.0.1:5070; the script starts that carrier itself (nothing may listen
there). The node runs on this machine and reads prompts from the data folder (the
shared-folder mode). The script raises the node's sessions-per-second limit
(``fsctl sps``, FreeSWITCH's default is 30) before it offers load.

``setup``: call setup time from just before the HTTP request to the INVITE on the
wire at the carrier's port (a raw-socket sniffer on ``lo``; root), click2call and OTP at
10 requests/s, through the whole platform (tests/launcher.py: gunicorn, RQ workers, the
events process that drives the node). Baseline in the same script: a bare greenswitch
connection sends ``bgapi originate`` at the same pace, timed from the command to its
INVITE: what the switch itself takes.

``load``: ``--rate`` new single-leg calls per second for ``--seconds``, each playing a
5-second announcement (a cached prompt, the same file every call) and hanging up.
First the baseline: a bare greenswitch ``bgapi originate … &playback(<file>)`` loop, in
a process of its own whose CPU is counted over the loop (not its interpreter's start),
with no platform around it. Then the
platform: a broadcast campaign over as many contacts at ``rate × 60`` calls per minute.
Reported: failed calls (not answered, or not ended by the playback's normal clearing
before the carrier's hold ran out: a call the carrier hung up may have been silent;
for the platform every CDR that is not a whole answered call, a redialed one included),
the INVITE rate reached, CPU milliseconds per call of the loop and of the platform's
processes (and of FreeSWITCH under each), and their ratio. ``--ceiling`` then runs both
at each rate for ``--step-seconds``: the highest rate each sustains with no failed call
and at least 95% of the offered INVITE rate, and the ratio of the two.
Every loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sandbox_carrier  # noqa: E402
from bench._campaigns import (create_campaign, headers, invites, load_list,  # noqa: E402
                             wait_completed)
from bench._common import (CpuMeter, machine_notes, paced, percentile,  # noqa: E402
                           print_table, process_cpu, workdir)
from tests import launcher, servers  # noqa: E402
from tests.sniff import InviteTimes  # noqa: E402

CARRIER_PORT = 5070
CALLER_ID = "15168148111"
PROMPT_SECONDS = 5.0
#: How long the carrier keeps an answered call up unless it is hung up first. A call
#: that lasts this long was ended by the carrier, not by our hangup after the prompt: it
#: may have been silent (a dropped broadcast), so it never counts as heard.
CARRIER_HOLD = PROMPT_SECONDS + 10
SPS = 1000
#: A rate counts as sustained when every call succeeded and the INVITEs reached at
#: least this share of it.
SUSTAINED = 0.95


def _node() -> tuple[str, int, str, str]:
    esl = os.environ.get("FREESWITCH_ESL", "")
    if not esl:
        sys.exit("set FREESWITCH_ESL (host:port of the local node) and FREESWITCH_ESL_PASSWORD")
    host, port = esl.split(",")[0].rsplit(":", 1)
    return (host, int(port), os.environ.get("FREESWITCH_ESL_PASSWORD", "ClueCon"),
            os.environ.get("FREESWITCH_GATEWAY", "trunk"))


def _run_numbers(count: int, run: int) -> list[str]:
    """``count`` answering numbers no other run of this script dials (its INVITEs are
    told apart by number in the carrier's log)."""
    if not 0 <= run <= 999 or count > 10_000:
        raise ValueError("run 0..999, at most 10,000 numbers")
    return [f"91{run:03d}{i:04d}111" for i in range(count)]


def _number(suffix: str) -> str:
    return "91" + "".join(secrets.choice("0123456789") for _ in range(7)) + suffix


def _fs_pid() -> int:
    """The node's process (it runs here: the benchmark needs its CPU)."""
    out = subprocess.run(["pgrep", "-x", "freeswitch"], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    if len(pids) != 1:
        sys.exit(f"expected one local freeswitch process, found {pids}")
    return pids[0]


def _api(line: str) -> str:
    """One ``api`` command on a short-lived greenswitch connection."""
    from greenswitch import InboundESL

    host, port, password, _ = _node()
    esl = InboundESL(host, port, password)
    esl.connect()
    try:
        return str(esl.send(f"api {line}").data).strip()
    finally:
        esl.stop()


def _tone(path: Path, seconds: float) -> None:
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path), "synth",
                    str(seconds), "sine", "440", "vol", "0.3"], check=True)


def _carrier_free() -> None:
    if sandbox_carrier.probe("127.0.0.1", CARRIER_PORT, timeout=0.5):
        sys.exit(f"something answers SIP on 127.0.0.1:{CARRIER_PORT}: stop it, the benchmark "
                 "starts its own carrier there")


# -- the baseline: bare greenswitch, no platform ----------------------------------------------

def bare_originate(numbers: list[str], rate: float, app: str, wait: float,
                   sent_at: dict[str, float] | None = None) -> dict:
    """``bgapi originate`` of each number at ``rate``/s on one greenswitch connection, then
    wait up to ``wait`` s for every channel's hangup; outcomes by number."""
    import gevent
    from greenswitch import InboundESL

    host, port, password, gateway = _node()
    esl = InboundESL(host, port, password)
    esl.connect()
    by_uuid = {str(uuid.uuid4()): n for n in numbers}
    ended: dict[str, dict] = {}

    def on_hangup(event) -> None:
        h = event.headers
        number = by_uuid.get(h.get("Unique-ID", ""))
        if number:
            ended[number] = {"cause": h.get("Hangup-Cause", ""),
                             "answered": h.get("Caller-Channel-Answered-Time", "0") != "0",
                             "billmsec": int(h.get("variable_billmsec") or 0)}

    esl.register_handle("CHANNEL_HANGUP_COMPLETE", on_hangup)
    esl.send("events plain CHANNEL_HANGUP_COMPLETE")
    refused = 0
    start = time.monotonic() + 0.5
    try:
        for i, (leg, number) in enumerate(by_uuid.items()):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            if sent_at is not None:
                sent_at[number] = time.monotonic()
            reply = esl.send(
                f"bgapi originate {{origination_uuid={leg},origination_caller_id_number={CALLER_ID},"
                f"ignore_early_media=true,originate_timeout=20}}sofia/gateway/{gateway}/{number} "
                f"{app}")
            refused += not str(reply.data).startswith("+OK")
        offered = time.monotonic() - start
        deadline = time.monotonic() + wait
        while len(ended) < len(numbers) and time.monotonic() < deadline:
            gevent.sleep(0.2)
    finally:
        esl.stop()
    return {"ended": ended, "refused": refused, "offered_s": offered}


def _bare_main(args: argparse.Namespace) -> None:
    """The baseline loop as a process of its own (``bare`` mode): prints its results."""
    numbers = _run_numbers(int(args.rate * args.seconds), args.run)
    before = os.times()   # the loop's own CPU, not the interpreter's start-up
    result = bare_originate(numbers, args.rate, f"&playback({args.prompt})", wait=60)
    after = os.times()
    failed = sum(1 for n in numbers if not _succeeded(result["ended"].get(n)))
    print(json.dumps({"calls": len(numbers), "failed": failed, "refused": result["refused"],
                      "offered_s": result["offered_s"], "numbers": numbers,
                      "loop_cpu_s": (after.user - before.user) + (after.system - before.system)}))


def _succeeded(outcome: dict | None) -> bool:
    """Answered, heard the whole prompt, ended by the playback's normal clearing before
    the carrier's hold ran out (the same test as the platform's)."""
    return (bool(outcome) and outcome["answered"] and outcome["cause"] == "NORMAL_CLEARING"
            and (PROMPT_SECONDS - 0.5) * 1000 <= outcome["billmsec"] < (CARRIER_HOLD - 1) * 1000)


def bare_run(folder: Path, prompt: Path, rate: float, seconds: int, run: int) -> dict:
    """The baseline at ``rate`` for ``seconds`` with a carrier of its own: failures, INVITE
    rate, the loop's CPU and FreeSWITCH's."""
    carrier_log = folder / f"carrier-bare-{rate:g}"
    carrier = sandbox_carrier.start("127.0.0.1", CARRIER_PORT, hold=CARRIER_HOLD,
                                    log_dir=carrier_log)
    try:
        fs_pid = _fs_pid()
        fs_before = process_cpu(fs_pid)
        started = time.monotonic()
        out = subprocess.run([sys.executable, __file__, "bare", "--rate", str(rate), "--seconds",
                              str(seconds), "--prompt", str(prompt), "--run", str(run)],
                             capture_output=True, text=True, timeout=seconds + 120)
        wall = time.monotonic() - started
        fs_cpu = process_cpu(fs_pid) - fs_before
        if out.returncode:
            raise RuntimeError(f"bare loop failed: {out.stderr[-2000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        wanted = set(result.pop("numbers"))
        times = _first_invites(carrier_log / "invites.log", wanted)
    finally:
        sandbox_carrier.stop(carrier)
    result = {**result, "wall_s": wall, "fs_cpu_s": fs_cpu, "invite_rate": _rate(times)}
    print(f"bare loop at {rate:g}/s for {seconds} s: {json.dumps(result)}", flush=True)
    return result


def _first_invites(log: Path, wanted: set[str]) -> list[float]:
    """When each of ``wanted`` was first INVITEd (a retransmission is not a new call)."""
    first: dict[str, float] = {}
    for user, _, at in invites(log):
        if user in wanted:
            first[user] = min(at, first.get(user, at))
    return sorted(first.values())


def _rate(times: list[float]) -> float:
    times = sorted(times)
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


# -- the platform ------------------------------------------------------------------------------

def _platform(folder: Path, redis_url: str, db_url: str, rq_workers: int = 3):
    """The whole platform on the node, its carrier on 5070 (the gateway's address)."""
    host, port, password, gateway = _node()
    return launcher.platform(folder / "data", redis_url, db_url, hold=CARRIER_HOLD,
                             engine_workers=1, rq_workers=rq_workers, web=True, extra_env={
                                 "FREESWITCH_ESL": f"{host}:{port}",
                                 "FREESWITCH_ESL_PASSWORD": password,
                                 "FREESWITCH_GATEWAY": gateway, "CPAAS_SANDBOX_CARRIER": "1",
                                 "CPAAS_SANDBOX_PORT": str(CARRIER_PORT),
                                 "CPAAS_ACCOUNT_MAX_CALLS": "5000"})


def _upload(base: str, path: Path) -> str:
    with open(path, "rb") as f:
        r = requests.post(base + "/api/upload_file", headers=headers("account_1"), timeout=60,
                          files={"file": (path.name, f, "audio/wav")})
    r.raise_for_status()
    return path.name


def _outcomes(db_url: str, campaign_id: str) -> tuple[int, dict[str, int]]:
    """Calls answered that heard the whole prompt and were hung up by us after it (not by
    the carrier's hold), and every (status, cause) counted."""
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM cdr WHERE campaign_id = %s AND dial_status = 'ANSWER'"
                    " AND billsec >= %s AND billsec < %s",
                    (campaign_id, PROMPT_SECONDS - 0.5, CARRIER_HOLD - 1))
        whole = cur.fetchone()[0]
        cur.execute("SELECT dial_status || ' ' || hangup_cause, count(*) FROM cdr"
                    " WHERE campaign_id = %s GROUP BY 1", (campaign_id,))
        return whole, dict(cur.fetchall())


def platform_run(running: launcher.Running, db_url: str, recorded: str, rate: float,
                 seconds: int, run: int) -> dict:
    """A broadcast campaign at ``rate``/s over ``rate × seconds`` contacts: failures,
    INVITE rate, the platform's CPU and FreeSWITCH's."""
    base = running.base_url
    count = int(rate * seconds)
    numbers = _run_numbers(count, run)
    list_id = load_list(base, "account_1", f"fs-{rate:g}-{run}",
                        [{"contact_name": f"c{i}", "contact_number": n}
                         for i, n in enumerate(numbers)])
    fs_pid = _fs_pid()
    meter = CpuMeter({**{name: proc.pid for name, proc in running.procs.items()},
                      "freeswitch": fs_pid})
    campaign_id = create_campaign(base, "account_1", f"fs {rate:g}/s {run}", list_id,
                                  dynamic_announcement="0", recorded_filename=recorded,
                                  announcement_text="", repeat="1", max_retries="0",
                                  calls_per_minute=str(int(rate * 60)))
    final = wait_completed(base, "account_1", campaign_id, timeout=seconds * 3 + 120)
    cpu = meter.stop()
    succeeded, outcomes = _outcomes(db_url, campaign_id)
    wanted = set(numbers)
    times = _first_invites(running.carrier_log, wanted)
    platform_cpu = sum(v for k, v in cpu.items() if k.endswith("_cpu_s")
                       and k not in ("carrier_cpu_s", "freeswitch_cpu_s", "others_cpu_s"))
    # Failed: every call that did not answer and hear the prompt (a contact dialed again
    # after one counts it), and every contact with no call at all.
    failed = sum(outcomes.values()) - succeeded + max(0, count - sum(outcomes.values()))
    result = {"calls": count, "failed": failed, "outcomes": outcomes,
              "status": final["campaign_status"], "invite_rate": _rate(times),
              "platform_cpu_s": platform_cpu, "fs_cpu_s": cpu["freeswitch_cpu_s"], "cpu": cpu}
    print(f"platform at {rate:g}/s for {seconds} s: {json.dumps(result)}", flush=True)
    return result


# -- modes -------------------------------------------------------------------------------------

def setup(args: argparse.Namespace) -> None:
    """HTTP request → INVITE at the carrier, click2call and OTP at 10 req/s; bare ESL beside."""
    _carrier_free()
    print(machine_notes())
    _api(f"fsctl sps {SPS}")
    rows = []
    with workdir("cpaas-bench-fs") as folder:
        # Baseline: bgapi originate → INVITE, the switch alone (busy numbers end at once).
        carrier = sandbox_carrier.start("127.0.0.1", CARRIER_PORT, hold=2, log_dir=folder / "c0")
        try:
            sniffer = InviteTimes(CARRIER_PORT)
            sent: dict[str, float] = {}
            numbers = [_number("486") for _ in range(args.warmup + args.requests)]
            bare_originate(numbers, 10, "&park()", wait=20, sent_at=sent)
            time.sleep(1)
            sniffer.stop()
            lat = [(sniffer.first[n] - sent[n]) * 1000 for n in numbers[args.warmup:]
                   if n in sniffer.first]
            rows.append(("bare ESL bgapi originate", args.requests, len(lat),
                         percentile(lat, 50), percentile(lat, 99), max(lat or [0])))
            bare_p50, bare_p99 = percentile(lat, 50), percentile(lat, 99)
        finally:
            sandbox_carrier.stop(carrier)
        with servers.redis_server() as redis_url, servers.postgres_server() as db_url, \
                _platform(folder, redis_url, db_url) as running:
            base = running.base_url
            template = requests.get(base + "/api/announce_template", headers=headers("account_1"),
                                    timeout=10).json()["response"]["result"][0][
                                        "announce_template_id"]
            sniffer = InviteTimes(CARRIER_PORT)
            session = requests.Session()
            for kind in ("click2call", "otp"):
                sent = {}

                def send(i: int, kind: str = kind) -> str:
                    if kind == "click2call":   # a busy agent ends the call at once
                        number, path = _number("486"), "/api/click2call"
                        body = {"agent_number": number, "caller_id": CALLER_ID,
                                "destination_number": _number("101")}
                    else:
                        number, path = _number("001"), "/api/outbound_call"
                        body = {"customer_number": number, "otp": "1987", "caller_id": CALLER_ID,
                                "announce_template_id": template}
                    sent[number] = time.monotonic()
                    r = session.post(base + path, json=body, headers=headers("account_1"),
                                     timeout=10)
                    r.raise_for_status()
                    return number

                paced(10, args.warmup, send)   # warms every process; left out
                numbers = paced(10, args.requests, send)
                time.sleep(3)
                lat = [(sniffer.first[n] - sent[n]) * 1000 for n in numbers if n in sniffer.first]
                rows.append((f"platform {kind}", len(numbers), len(lat), percentile(lat, 50),
                             percentile(lat, 99), max(lat or [0])))
                time.sleep(5)
            sniffer.stop()
    print_table("call setup on FreeSWITCH: request -> INVITE at the carrier (ms), 10/s "
                "(target p50 <= 40, p99 <= 150)",
                ["path", "sent", "INVITEs seen", "p50", "p99", "max"], rows)
    for name, _, _, p50, p99, _ in rows[1:]:
        print(f"{name}: p50 {p50:.1f} ms ({p50 / bare_p50:.1f}x the bare originate's "
              f"{bare_p50:.1f}), p99 {p99:.1f} ms ({p99 / bare_p99:.1f}x); targets "
              f"{'met' if p50 <= 40 and p99 <= 150 else 'missed'}")
    print(machine_notes())


def load(args: argparse.Namespace) -> None:
    """``--rate`` calls/s for ``--seconds``: bare loop, then the platform; then the ceiling."""
    _carrier_free()
    print(machine_notes())
    _api(f"fsctl sps {SPS}")
    print(f"FreeSWITCH sessions-per-second raised: fsctl sps {SPS}")
    ceiling = [float(r) for r in args.ceiling.split(",") if r] if args.ceiling else []
    with workdir("cpaas-bench-fs") as folder:
        prompt = folder / "announcement.wav"
        _tone(prompt, PROMPT_SECONDS)
        bare = bare_run(folder, prompt, args.rate, args.seconds, run=30)
        bare_steps = {r: bare_run(folder, prompt, r, args.step_seconds, run=int(r) + 100)
                      for r in ceiling}
        with servers.redis_server() as redis_url, servers.postgres_server() as db_url, \
                _platform(folder, redis_url, db_url, rq_workers=args.rq_workers) as running:
            time.sleep(5)
            recorded = _upload(running.base_url, prompt)
            plat = platform_run(running, db_url, recorded, args.rate, args.seconds, run=31)
            plat_steps = {r: platform_run(running, db_url, recorded, r, args.step_seconds,
                                          run=int(r) + 200) for r in ceiling}
            cpu = plat["cpu"]
            print_table("platform processes during the main run (CPU ms per call)",
                        ["process", "CPU s", "ms/call"],
                        [(k[:-6], v, v * 1000 / plat["calls"]) for k, v in cpu.items()
                         if k.endswith("_cpu_s")])
            print(f"outcomes of the platform's main run: {plat['outcomes']}")
            # A prompt whose PLAYBACK_START comes late under load is sent again
            # (freeswitch.runner): how often that happened, all runs together.
            resent = (running.logs / "events.out").read_text(errors="replace").count(
                "playback did not start")
            print(f"broadcasts sent again for want of a PLAYBACK_START: {resent}")
    rows = []
    for name, run, own in (("bare ESL loop", bare, bare["loop_cpu_s"]),
                           ("platform (campaign)", plat, plat["platform_cpu_s"])):
        rows.append((name, run["calls"], run["failed"], run["invite_rate"],
                     own * 1000 / run["calls"], run["fs_cpu_s"] * 1000 / run["calls"]))
    print_table(f"{args.rate:g} calls/s for {args.seconds} s, {PROMPT_SECONDS:g}-s cached prompt",
                ["driver", "calls", "failed", "INVITEs/s", "driver CPU ms/call",
                 "FreeSWITCH CPU ms/call"], rows)
    ratio = rows[1][4] / rows[0][4] if rows[0][4] else float("inf")
    print(f"platform CPU per call over the bare loop's: {ratio:.1f}x "
          f"({rows[1][4]:.2f} / {rows[0][4]:.2f} ms); failed calls: platform {plat['failed']}, "
          f"bare {bare['failed']}")
    if ceiling:
        def sustained(run: dict, rate: float) -> bool:
            return run["failed"] == 0 and run["invite_rate"] >= rate * SUSTAINED

        steps = [(f"{r:g}/s", bare_steps[r]["failed"], bare_steps[r]["invite_rate"],
                  "yes" if sustained(bare_steps[r], r) else "no", plat_steps[r]["failed"],
                  plat_steps[r]["invite_rate"], "yes" if sustained(plat_steps[r], r) else "no")
                 for r in ceiling]
        print_table(f"ceiling: each rate for {args.step_seconds} s",
                    ["rate", "bare failed", "bare INVITEs/s", "bare ok", "platform failed",
                     "platform INVITEs/s", "platform ok"], steps)
        best_bare = max([r for r in ceiling if sustained(bare_steps[r], r)], default=0)
        best_plat = max([r for r in ceiling if sustained(plat_steps[r], r)], default=0)
        print(f"highest rate sustained with no failure: bare {best_bare:g}/s, platform "
              f"{best_plat:g}/s, ratio {best_plat / best_bare if best_bare else 0:.2f}")
    print(machine_notes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--requests", type=int, default=300)
    s.add_argument("--warmup", type=int, default=30)
    lo = sub.add_parser("load")
    lo.add_argument("--rate", type=float, default=30)
    lo.add_argument("--seconds", type=int, default=60)
    lo.add_argument("--ceiling", default="", help="rates to try, comma-separated")
    lo.add_argument("--step-seconds", type=int, default=20)
    lo.add_argument("--rq-workers", type=int, default=3)
    b = sub.add_parser("bare")   # the baseline loop, run by ``load`` as its own process
    b.add_argument("--rate", type=float, required=True)
    b.add_argument("--seconds", type=int, required=True)
    b.add_argument("--prompt", required=True)
    b.add_argument("--run", type=int, default=30)
    args = parser.parse_args()
    {"setup": setup, "load": load, "bare": _bare_main}[args.mode](args)


if __name__ == "__main__":
    main()
