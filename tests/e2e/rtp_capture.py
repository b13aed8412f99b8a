"""What the far end heard: RTP arriving at the sandbox carrier's media port.

Payloads are G.711 A-law (the carrier answers PCMA only); each packet's energy is
kept with its arrival time.
"""
from __future__ import annotations

from tests.sniff import LoopbackSniffer


def _alaw_to_linear(byte: int) -> int:
    byte ^= 0x55
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 0x07, byte & 0x0F
    sample = (mantissa << 4) + 8
    if exponent:
        sample = (sample + 0x100) << (exponent - 1)
    return sample if sign else -sample


ALAW = [_alaw_to_linear(b) for b in range(256)]


class RtpCapture:
    """Collects (arrival time, RMS of the packet's audio) for PCMA RTP to ``port``."""

    def __init__(self, port: int) -> None:
        self.packets: list[tuple[float, float]] = []
        self._sniffer = LoopbackSniffer(port, self._on)

    def _on(self, at: float, rtp: bytes) -> None:
        if len(rtp) <= 12 or rtp[0] >> 6 != 2 or rtp[1] & 0x7F != 8:
            return
        payload = rtp[12:]
        self.packets.append((at, (sum(ALAW[b] ** 2 for b in payload) / len(payload)) ** 0.5 / 32768))

    def stop(self) -> None:
        self._sniffer.stop()

    def voiced_span(self, threshold: float = 0.01) -> float:
        """Seconds between the first and the last packet carrying sound."""
        voiced = [t for t, e in self.packets if e > threshold]
        return voiced[-1] - voiced[0] if len(voiced) > 1 else 0.0

    def voiced_packets(self, threshold: float = 0.01) -> int:
        """How many packets carried sound (20 ms each)."""
        return sum(1 for _, e in self.packets if e > threshold)
