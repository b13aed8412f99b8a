"""The install tests run last; each module is marked ``install`` (``-m "not install"``).

They run `make` and whole platforms (one of them apt and pip inside a fresh Debian root,
minutes of work), so they go after every other test: a failure anywhere else is reported
before they start, and no other test waits behind them.
"""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "install: runs make and whole platforms (slow; run last)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A stable sort: the install tests keep their own order, after everything else.
    items.sort(key=lambda item: HERE in item.path.parents)
