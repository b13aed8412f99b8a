"""The sandbox carrier's default hold outlasts the platform's default ring timeout.

A click2call dials the agent first (the carrier answers at once) and then the customer;
a customer who never answers must end NOANSWER at the ring timeout, which needs the
agent's leg to last longer than the customer's ringing.
"""
from __future__ import annotations

import pytest

import sandbox_carrier
from cpaas import config

#: The agent is answered and the customer dialed within this many seconds (a loaded
#: machine included); the agent's hold must outlast the customer's ring by more.
SETUP_MARGIN = 5.0


def _defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CPAAS_SANDBOX_HOLD", "CPAAS_RING_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


def test_default_hold_outlasts_the_default_ring_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    _defaults(monkeypatch)
    ring = config.load().ring_timeout
    assert ring == config.Settings().ring_timeout
    assert sandbox_carrier.settings_from_env().hold > ring + SETUP_MARGIN


def test_default_hold_follows_a_configured_ring_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    _defaults(monkeypatch)
    monkeypatch.setenv("CPAAS_RING_TIMEOUT", "90")
    assert sandbox_carrier.settings_from_env().hold > 90 + SETUP_MARGIN
    monkeypatch.setenv("CPAAS_SANDBOX_HOLD", "7")  # an explicit hold always wins
    assert sandbox_carrier.settings_from_env().hold == 7.0
