"""How long after its answer each call's prompt started, read from a FreeSWITCH log.

    .venv/bin/python bench/fs_prompt_lag.py FROM TO LOG [LOG ...]

FROM and TO are ``HH:MM`` (the window of a ``bench/freeswitch.py load`` run's platform
phase); LOG the node's ``freeswitch.log`` (and its rotated ``.1`` when the run spans a
rotation), with the console log level at DEBUG as GUIDE §5's configuration sets it.

For every channel answered in the window it pairs ``Channel [...] has been answered``
(sofia.c) with the first ``Command Execute [depth=1] playback(...)`` (the platform's
``uuid_broadcast`` reaching the parked leg) and prints the lag's p50/p90/p99/max. The
driver's share is the lag above the node's own floor (about 0.2 s here, seen at one
call at a time too). A bare ``originate … &playback()`` plays as its own application, so
the bare loop has no such lag to compare with. FreeSWITCH stamps its log lines on a
20 ms timer: the figures are that coarse.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import percentile  # noqa: E402

_LINE = re.compile(r"^(\S{36}) \S+ (\d\d):(\d\d):([\d.]+) ")


def lags(logs: list[Path], start: str, end: str) -> list[float]:
    """Seconds from answer to the first broadcast playback, per channel answered in
    [start, end] (``HH:MM``)."""
    answered: dict[str, float] = {}
    played: dict[str, float] = {}
    for path in logs:
        with open(path, "rb") as log:
            for raw in log:
                line = raw.decode("latin-1")
                match = _LINE.match(line)
                if not match or not start <= f"{match.group(2)}:{match.group(3)}" <= end:
                    continue
                uuid = match.group(1)
                at = int(match.group(2)) * 3600 + int(match.group(3)) * 60 + float(match.group(4))
                if "has been answered" in line:
                    answered[uuid] = at
                elif "Command Execute [depth=1] playback" in line and uuid not in played:
                    played[uuid] = at
    return sorted(played[u] - answered[u] for u in played if u in answered)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("start")
    parser.add_argument("end")
    parser.add_argument("logs", nargs="+", type=Path)
    args = parser.parse_args()
    found = lags(args.logs, args.start, args.end)
    if not found:
        raise SystemExit("no answered channel with a broadcast playback in that window")
    print(f"{args.start}-{args.end}: {len(found)} calls; answer -> prompt start (s): "
          f"p50 {percentile(found, 50):.2f}, p90 {percentile(found, 90):.2f}, "
          f"p99 {percentile(found, 99):.2f}, max {found[-1]:.2f}")


if __name__ == "__main__":
    main()
