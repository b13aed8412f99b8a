"""Watch RTP arriving at the sandbox carrier, to prove what the far end heard.

A raw AF_PACKET socket on the loopback interface (root only, as CI is) sees every UDP
datagram sent to the carrier's media port; payloads are G.711 A-law (the carrier
answers PCMA only). Nothing here sends a packet.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003


def _alaw_to_linear(byte: int) -> int:
    byte ^= 0x55
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 0x07, byte & 0x0F
    sample = (mantissa << 4) + 8
    if exponent:
        sample = (sample + 0x100) << (exponent - 1)
    return sample if sign else -sample


ALAW = [_alaw_to_linear(b) for b in range(256)]


@dataclass
class RtpCapture:
    """Collects (arrival time, RMS of the packet's audio) for RTP to ``port``."""

    port: int
    packets: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
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
            if addr[2] == socket.PACKET_OUTGOING:
                continue  # loopback frames appear twice; keep the incoming copy
            ip = frame[14:]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            header = (ip[0] & 0x0F) * 4
            _, dport, length, _ = struct.unpack("!HHHH", ip[header:header + 8])
            if dport != self.port:
                continue
            rtp = ip[header + 8:header + length]
            if len(rtp) <= 12 or rtp[0] >> 6 != 2 or rtp[1] & 0x7F != 8:
                continue
            payload = rtp[12:]
            energy = (sum(ALAW[b] ** 2 for b in payload) / len(payload)) ** 0.5 / 32768
            self.packets.append((time.monotonic(), energy))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def voiced_span(self, threshold: float = 0.01) -> float:
        """Seconds between the first and the last packet carrying sound."""
        voiced = [t for t, e in self.packets if e > threshold]
        return voiced[-1] - voiced[0] if len(voiced) > 1 else 0.0

    def voiced_packets(self, threshold: float = 0.01) -> int:
        """How many packets carried sound (20 ms each)."""
        return sum(1 for _, e in self.packets if e > threshold)
