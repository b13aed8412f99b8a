"""How long a woken process waits for a core that a background hog holds.

    .venv/bin/python bench/background_priority.py [--seconds 6] [--rounds 2]

Why the transcriber lowers itself with nice 19 and its session's autogroup at nice 19
(``cpaas.procs.lower_priority``) and not with ``SCHED_IDLE``: the call path is a chain of
wake-ups (an RQ worker waits for Redis, Redis for the worker, the engine for its socket),
so what a background job costs the calls is the delay it adds to each wake-up, more
than its share of CPU.

A probe process (leading its own session, as each platform process does) sleeps 1 ms,
then works 0.2 ms, for ``--seconds``, and records how late each sleep ends. Beside it, one busy loop per core in its own session (as honcho and
tests/launcher.py start the transcriber), in turn:

- ``none``: no hog (the baseline: the machine's own wake-up latency);
- ``nice19+autogroup19``: nice 19, and its autogroup's nice 19 (what the platform does);
- ``sched_idle+autogroup19``: the same with the ``SCHED_IDLE`` policy as well.

Prints p50/p90/p99/max lateness per mode and each p99 over the baseline's. Bounded in
time; leaves no process behind.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine_notes, percentile, print_table  # noqa: E402
from cpaas.procs import lower_priority  # noqa: E402

MODES = ("none", "nice19+autogroup19", "sched_idle+autogroup19")
SLEEP_S = 0.001
WORK_S = 0.0002


def _hog(mode: str) -> None:
    """A busy loop at the background priority ``mode`` names (never returns): the
    transcriber's own (``cpaas.procs.lower_priority``, as its session's leader)."""
    os.setsid()
    lower_priority()
    if mode.startswith("sched_idle"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    count = 0
    while True:
        count += 1


def _probe(seconds: float) -> list[float]:
    """Lateness of each 1 ms sleep, in microseconds."""
    late = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        time.sleep(SLEEP_S)
        late.append((time.monotonic() - started - SLEEP_S) * 1e6)
        busy_until = time.monotonic() + WORK_S
        while time.monotonic() < busy_until:
            pass
    return late


def _probe_in_own_session(seconds: float) -> list[float]:
    """:func:`_probe` in a child that leads its own session, as every platform process
    does under honcho or tests/launcher.py (so it has an autogroup of its own)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setsid()
            with os.fdopen(write_end, "w") as out:
                json.dump(_probe(seconds), out)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        late = json.load(answer)
    os.waitpid(pid, 0)
    return late


def run(mode: str, seconds: float) -> list[float]:
    """One mode: its hogs (one per core), the probe, then the hogs killed."""
    hogs = []
    if mode != "none":
        for _ in range(os.cpu_count() or 1):
            pid = os.fork()
            if pid == 0:
                try:
                    _hog(mode)
                finally:
                    os._exit(0)
            hogs.append(pid)
    try:
        time.sleep(0.3)
        return _probe_in_own_session(seconds)
    finally:
        for pid in hogs:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(machine_notes())
    rows = []
    for round_no in range(1, args.rounds + 1):
        base_p99 = None
        for mode in MODES:
            late = run(mode, args.seconds)
            p99 = percentile(late, 99)
            base_p99 = p99 if mode == "none" else base_p99
            rows.append([round_no, mode, len(late), percentile(late, 50), percentile(late, 90),
                         p99, max(late), f"{p99 / base_p99:.2f}" if base_p99 else "-"])
    print_table("lateness of a 1 ms sleep beside one busy loop per core (µs)",
                ["round", "hog", "wake-ups", "p50", "p90", "p99", "max", "p99 / none"], rows)


if __name__ == "__main__":
    main()
