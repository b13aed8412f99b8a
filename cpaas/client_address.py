"""The client's address when reverse proxies sit in front of the web process.

``X-Forwarded-For`` is believed only when the direct peer is a trusted proxy
(``CPAAS_TRUSTED_PROXIES``), and only as far as trusted proxies wrote it: the list is
walked from the right (each proxy appends the address it received from), skipping
trusted proxies; the first untrusted address is the client. Everything to its left was
written by the client itself and could be anything. A malformed entry ends the walk, and
the last good address stands.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(cidrs: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """CIDRs (or bare addresses) as networks; ValueError names a bad one."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError as exc:
            raise ValueError(f"not an address or CIDR: {cidr!r}") from exc
    return tuple(networks)


def _address(text: str) -> IPAddress | None:
    """An address from an X-Forwarded-For entry or a peer (a port, brackets allowed)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """Finds the client address of a request given the trusted proxies' networks."""

    def __init__(self, cidrs: Sequence[str]) -> None:
        self.networks = parse_networks(cidrs)

    def trusts(self, address: IPAddress) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        return any(address in network for network in self.networks)

    def client_of(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        """The client's address from the direct peer and the X-Forwarded-For header lines."""
        if not peer:
            return "unknown"
        if not self.networks:
            return peer
        client = _address(peer)
        if client is None or not self.trusts(client):
            return peer
        for entry in reversed(",".join(forwarded_for).split(",")):
            address = _address(entry)
            if address is None:
                break
            client = address
            if not self.trusts(address):
                break
        return str(client)
