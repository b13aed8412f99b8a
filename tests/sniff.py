"""Watch UDP datagrams arriving at one loopback port, for tests and benchmarks.

A raw AF_PACKET socket on ``lo`` (root only, as CI is) sees what is sent to a port
without being in the path: what the sandbox carrier received (INVITEs, RTP) and when.
Nothing here sends a packet. A socket filter in the kernel passes only UDP to that port:
without it this thread woke for every loopback packet (the engine's RTP, Redis,
PostgreSQL), a quarter of a core under a benchmark's load taken from what it measures.
"""
from __future__ import annotations

import ctypes
import socket
import struct
import threading
import time
from typing import Callable

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26


def udp_port_filter(port: int) -> list[tuple[int, int, int, int]]:
    """A classic BPF program (``tcpdump -dd 'ip and udp dst port N'`` for unfragmented
    IPv4 on an Ethernet-framed link, as ``lo`` is): keep the frame or drop it."""
    return [
        (0x28, 0, 0, 12),          # ldh [12]           ethertype
        (0x15, 0, 8, 0x0800),      # jeq IPv4, else drop
        (0x30, 0, 0, 23),          # ldb [23]           IP protocol
        (0x15, 0, 6, 17),          # jeq UDP, else drop
        (0x28, 0, 0, 20),          # ldh [20]           flags and fragment offset
        (0x45, 4, 0, 0x1FFF),      # jset: a later fragment has no UDP header: drop
        (0xB1, 0, 0, 14),          # ldxb 4*([14]&0xf)  IP header length
        (0x48, 0, 0, 16),          # ldh [x+16]         UDP destination port
        (0x15, 0, 1, port),        # jeq port, else drop
        (0x06, 0, 0, 0x40000),     # ret: keep (up to 256 KiB)
        (0x06, 0, 0, 0),           # ret: drop
    ]


def _attach(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def open_filtered(program: list[tuple[int, int, int, int]]) -> socket.socket:
    """A raw socket on ``lo`` that has seen no frame its filter would drop.

    It is opened for protocol 0, which receives nothing, and only starts receiving when
    bound to ``ETH_P_ALL`` after the filter is attached: a socket opened for ``ETH_P_ALL``
    queues every frame on every interface in the moment before its filter is in place,
    and CI's loopback is busy enough to fill that moment (one run read 12 stray frames).
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        _attach(sock, program)
        sock.bind(("lo", ETH_P_ALL))
    except BaseException:
        sock.close()
        raise
    return sock


class LoopbackSniffer:
    """Calls ``handle(arrival_monotonic, payload)`` for each UDP datagram to ``port``."""

    def __init__(self, port: int, handle: Callable[[float, bytes], None]) -> None:
        self.port, self.handle = port, handle
        self._sock = open_filtered(udp_port_filter(port))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, addr = self._sock.recvfrom(65535)
            except socket.timeout:
                continue
            now = time.monotonic()
            if addr[2] == socket.PACKET_OUTGOING:
                continue  # loopback frames appear twice; keep the incoming copy
            ip = frame[14:]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            header = (ip[0] & 0x0F) * 4
            _, dport, length, _ = struct.unpack("!HHHH", ip[header:header + 8])
            if dport == self.port:
                self.handle(now, ip[header + 8:header + length])

    def stop(self) -> None:
        """Stop watching and release the socket."""
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


class InviteTimes:
    """When the first INVITE for each dialed number reached the carrier."""

    def __init__(self, port: int) -> None:
        self.first: dict[str, float] = {}
        self._sniffer = LoopbackSniffer(port, self._on)

    def _on(self, at: float, payload: bytes) -> None:
        if payload.startswith(b"INVITE sip:"):
            user = payload[11:payload.find(b"@", 11)].decode(errors="replace")
            self.first.setdefault(user, at)

    def stop(self) -> None:
        self._sniffer.stop()
