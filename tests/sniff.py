"""Watch UDP datagrams arriving at one loopback port, for tests and benchmarks.

A raw AF_PACKET socket on ``lo`` (root only, as CI is) sees what is sent to a port
without being in the path: what the sandbox carrier received (INVITEs, RTP) and when.
Nothing here sends a packet.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Callable

ETH_P_ALL = 0x0003


class LoopbackSniffer:
    """Calls ``handle(arrival_monotonic, payload)`` for each UDP datagram to ``port``."""

    def __init__(self, port: int, handle: Callable[[float, bytes], None]) -> None:
        self.port, self.handle = port, handle
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.bind(("lo", 0))
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
