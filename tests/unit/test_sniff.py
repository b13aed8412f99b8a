"""The loopback sniffer's kernel filter: only UDP to the watched port reaches Python."""
from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest

from tests.sniff import LoopbackSniffer, open_filtered, udp_port_filter

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="raw sockets need root")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_filter_drops_every_other_packet_in_the_kernel():
    watched, other = _free_udp_port(), _free_udp_port()
    # Noise flows while the socket opens, as CI's busy loopback does: a socket that could
    # queue a frame before its filter is attached shows it here.
    flooding = threading.Event()
    flooding.set()

    def flood() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            i = 0
            while flooding.is_set():
                tx.sendto(b"noise %d" % i, ("127.0.0.1", other))
                i += 1

    noise = threading.Thread(target=flood, daemon=True)
    noise.start()
    try:
        time.sleep(0.05)
        raw = open_filtered(udp_port_filter(watched))
        time.sleep(0.05)
    finally:
        flooding.clear()
        noise.join(2)
    raw.settimeout(0.5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(b"wanted", ("127.0.0.1", watched))
    ports = []
    try:
        while True:
            frame = raw.recv(65535)
            ip = frame[14:]
            ports.append(struct.unpack("!H", ip[(ip[0] & 0x0F) * 4 + 2:][:2])[0])
    except socket.timeout:
        pass
    finally:
        raw.close()
    # Loopback shows each datagram twice (sent and received): both copies, nothing else.
    assert ports == [watched, watched]


def test_the_sniffer_hands_over_the_watched_port_s_datagrams():
    watched = _free_udp_port()
    got: list[bytes] = []
    sniffer = LoopbackSniffer(watched, lambda at, payload: got.append(payload))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.sendto(b"elsewhere", ("127.0.0.1", _free_udp_port()))
            for i in range(3):
                tx.sendto(b"INVITE sip:%d@x" % i, ("127.0.0.1", watched))
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sniffer.stop()
    assert got == [b"INVITE sip:0@x", b"INVITE sip:1@x", b"INVITE sip:2@x"]
