"""Parsing FreeSWITCH events: our ``text/event-plain`` parser against greenswitch's own.

    .venv/bin/python bench/esl_parse.py [--rounds 50]

The events are the ones captured from a real FreeSWITCH 1.10 (tests/freeswitch/captures,
every ``text/event-plain`` frame of them). Each round parses every event and reads what
the node driver reads of one (its name, ``Unique-ID``, ``Job-UUID``, ``Hangup-Cause``).
The baseline is greenswitch's ``ESLEvent`` on the same bodies: it decodes the whole body
before splitting it into lines, which is why a newline in a variable forges headers
there (GUIDE §6), and it drops event bodies; ours splits first and decodes a value only
when it is read. Prints microseconds per event for both and their ratio.
"""
from __future__ import annotations

import argparse
import glob
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from greenswitch.esl import ESLEvent  # noqa: E402

from bench._common import machine_notes, print_table  # noqa: E402
from freeswitch.esl import parse_event_plain, read_frame  # noqa: E402
from tests.freeswitch.capture import load  # noqa: E402

READ = ("Unique-ID", "Job-UUID", "Hangup-Cause")


def captured_bodies() -> list[bytes]:
    """Every event body in the committed captures."""
    bodies = []
    for path in sorted(glob.glob(str(Path(__file__).resolve().parent.parent
                                     / "tests/freeswitch/captures/*.jsonl"))):
        for _, raw in load(path).frames(conn=1):
            frame = read_frame(io.BytesIO(raw))
            if frame is not None and frame.content_type == "text/event-plain":
                bodies.append(frame.body)
    return bodies


def ours(bodies: list[bytes]) -> None:
    for body in bodies:
        event = parse_event_plain(body)
        _ = event.name, [event.get(key) for key in READ]


def greenswitch(bodies: list[bytes]) -> None:
    for body in bodies:
        event = ESLEvent(body.decode("utf-8", errors="replace"))
        _ = event.headers.get("Event-Name"), [event.headers.get(key) for key in READ]


def per_event_us(fn, bodies: list[bytes], rounds: int) -> float:
    """Best of three timings of ``rounds`` rounds, in microseconds per event."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(rounds):
            fn(bodies)
        best = min(best, time.process_time() - started)
    return best / (rounds * len(bodies)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    print(machine_notes())
    bodies = captured_bodies()
    sizes = sorted(len(b) for b in bodies)
    print(f"{len(bodies)} captured events, median {sizes[len(sizes) // 2]} bytes")
    base = per_event_us(greenswitch, bodies, args.rounds)
    mine = per_event_us(ours, bodies, args.rounds)
    print_table("parse one event and read what the driver reads (CPU µs per event)",
                ["parser", "µs/event", "ratio to greenswitch"],
                [["greenswitch ESLEvent (baseline)", f"{base:.1f}", "1.00"],
                 ["freeswitch.esl.parse_event_plain", f"{mine:.1f}", f"{mine / base:.2f}"]])


if __name__ == "__main__":
    main()
