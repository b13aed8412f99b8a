"""The client address behind trusted reverse proxies (X-Forwarded-For, walked from the right)."""
from __future__ import annotations

import pytest

from cpaas import config
from cpaas.client_address import TrustedProxies

TRUSTED = ("127.0.0.0/8", "10.0.0.0/24", "fd00::/8")

CASES = {
    # (peer, X-Forwarded-For header values) → client
    "no header: the peer": ("127.0.0.1", [], "127.0.0.1"),
    "one hop": ("127.0.0.1", ["203.0.113.9"], "203.0.113.9"),
    "client's own prefix is skipped": ("127.0.0.1", ["1.2.3.4, 203.0.113.9"], "203.0.113.9"),
    "trusted hops are skipped": ("127.0.0.1", ["1.2.3.4, 203.0.113.9, 10.0.0.7"], "203.0.113.9"),
    "several header lines join in order": ("127.0.0.1", ["1.2.3.4", "203.0.113.9, 10.0.0.7"],
                                           "203.0.113.9"),
    "untrusted peer: header ignored": ("192.0.2.1", ["203.0.113.9"], "192.0.2.1"),
    "malformed entry ends the walk": ("127.0.0.1", ["203.0.113.9, not-an-ip, 10.0.0.7"], "10.0.0.7"),
    "malformed last entry: the peer": ("127.0.0.1", ["203.0.113.9, 999.1.1.1"], "127.0.0.1"),
    "empty entry ends the walk": ("127.0.0.1", ["203.0.113.9,, 10.0.0.7"], "10.0.0.7"),
    "all trusted: the leftmost": ("127.0.0.1", ["10.0.0.9, 10.0.0.7"], "10.0.0.9"),
    "IPv6 client": ("127.0.0.1", ["2001:db8::1"], "2001:db8::1"),
    "IPv6 proxy": ("fd00::5", ["203.0.113.9"], "203.0.113.9"),
    "IPv4-mapped peer": ("::ffff:127.0.0.1", ["203.0.113.9"], "203.0.113.9"),
    "address with a port": ("127.0.0.1", ["203.0.113.9:5123"], "203.0.113.9"),
    "bracketed IPv6 with a port": ("127.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
    "no peer": (None, ["203.0.113.9"], "unknown"),
}


@pytest.mark.parametrize("label", list(CASES))
def test_client_address(label):
    peer, forwarded, client = CASES[label]
    assert TrustedProxies(TRUSTED).client_of(peer, forwarded) == client


def test_no_trusted_proxy_means_the_peer():
    assert TrustedProxies(()).client_of("127.0.0.1", ["203.0.113.9"]) == "127.0.0.1"


def test_setting_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("CPAAS_TRUSTED_PROXIES", " 127.0.0.1/32, 10.0.0.0/8 ,")
    assert config.load().trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8")
    monkeypatch.delenv("CPAAS_TRUSTED_PROXIES")
    assert config.load().trusted_proxies == ()
    monkeypatch.setenv("CPAAS_TRUSTED_PROXIES", "10.0.0.0/33")
    with pytest.raises(ValueError, match="CPAAS_TRUSTED_PROXIES"):
        config.load()
