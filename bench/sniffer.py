"""What the loopback sniffer costs the machine it measures, with and without its filter.

    .venv/bin/python bench/sniffer.py [--frames 50000]    (root: raw sockets)

Sends ``--frames`` 172-byte UDP datagrams to a port nobody watches (the kind of traffic
a call load puts on ``lo``: RTP, Redis, PostgreSQL), three ways, and counts this
process's CPU: no sniffer (the baseline: the sending alone), tests.sniff's
:class:`LoopbackSniffer` with an accept-all socket filter (as it was: every frame woke
its thread), and with its UDP-port filter (as it is). Prints CPU µs per datagram that the
sniffer adds over the baseline, and checks that the watched port's datagrams still
arrive.
"""
from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine_notes, print_table  # noqa: E402
from tests import sniff  # noqa: E402

ACCEPT_ALL = [(0x06, 0, 0, 0x40000)]


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(frames: int, sniffer_kind: str) -> tuple[float, int]:
    """CPU seconds of sending ``frames`` of noise (and 10 watched datagrams) with no
    sniffer (``none``), an unfiltered one (``all``) or the real one (``port``), and how
    many watched datagrams it saw."""
    watched, noise = _port(), _port()
    seen: list[bytes] = []
    sniffer = None
    if sniffer_kind != "none":
        original = sniff.udp_port_filter
        if sniffer_kind == "all":
            sniff.udp_port_filter = lambda port: ACCEPT_ALL
        try:
            sniffer = sniff.LoopbackSniffer(watched, lambda at, payload: seen.append(payload))
        finally:
            sniff.udp_port_filter = original
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", noise))   # so the noise is delivered, not refused
    sink.setblocking(False)
    time.sleep(0.3)
    started = time.process_time()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for i in range(frames):
            tx.sendto(b"\x80" * 172, ("127.0.0.1", noise))
            if i % 1000 == 0:   # keep the sink's buffer from filling
                try:
                    while sink.recv(2048):
                        pass
                except BlockingIOError:
                    pass
        for i in range(10):
            tx.sendto(b"INVITE sip:%d@x" % i, ("127.0.0.1", watched))
        time.sleep(1.0)   # the sniffer's thread catches up (counted: it is this process)
    cpu = time.process_time() - started
    if sniffer is not None:
        sniffer.stop()
    sink.close()
    return cpu, len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--frames", type=int, default=50_000)
    args = parser.parse_args()
    print(machine_notes())
    base, _ = run(args.frames, "none")
    unfiltered, seen_all = run(args.frames, "all")
    filtered, seen_port = run(args.frames, "port")
    per = lambda cpu: max(0.0, cpu - base) / args.frames * 1e6  # noqa: E731
    print_table(f"{args.frames} noise datagrams on lo (CPU of this process)",
                ["run", "CPU s", "µs per datagram over baseline", "watched seen"],
                [["no sniffer (baseline)", f"{base:.3f}", "0", "-"],
                 ["sniffer, accept-all filter (before)", f"{unfiltered:.3f}",
                  f"{per(unfiltered):.2f}", seen_all],
                 ["sniffer, UDP-port filter (now)", f"{filtered:.3f}", f"{per(filtered):.2f}",
                  seen_port]])


if __name__ == "__main__":
    main()
