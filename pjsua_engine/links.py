"""The audio connections of one plan, kept declaratively.

A plan says which ports should feed which (call → call for a bridge, player → call,
call → recorder); :meth:`AudioLinks.reconcile` makes pjsua's conference bridge match
whenever a port appears, changes slot (a re-INVITE) or goes away. Holding a customer or
re-bridging after a transfer is then an edit of the wanted set, never a hand-kept
sequence of startTransmit/stopTransmit calls.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

log = logging.getLogger(__name__)

Link = tuple[str, str]
RECORDER = "rec:"   # key prefix of recorder ports


class AudioLinks:
    """Ports by name, wanted links between them, and what the bridge really carries."""

    def __init__(self) -> None:
        self.ports: dict[str, Any] = {}
        self.wanted: set[Link] = set()
        self.applied: dict[Link, tuple[int, int]] = {}

    def set_port(self, key: str, port: Any | None) -> None:
        """Name a conference port (``None``: it is gone)."""
        if port is None:
            self.ports.pop(key, None)
        else:
            self.ports[key] = port
        self.reconcile()

    def connect(self, *links: Link) -> None:
        """Want audio to flow along ``links``."""
        self.wanted.update(links)
        self.reconcile()

    def disconnect(self, *links: Link) -> None:
        """Stop wanting ``links``."""
        self.wanted.difference_update(links)
        self.reconcile()

    def forget(self, key: str, keep: Callable[[Link], bool] = lambda link: False) -> None:
        """A port has left for good: drop its links, except those ``keep`` says to keep."""
        self.ports.pop(key, None)
        self.wanted = {link for link in self.wanted if key not in link or keep(link)}
        self.reconcile()

    def move_recorders(self, old: str, new: str) -> None:
        """Feed the recorders that ``old`` fed from ``new`` instead."""
        moved = {link for link in self.wanted if link[0] == old and link[1].startswith(RECORDER)}
        self.wanted = (self.wanted - moved) | {(new, dst) for _, dst in moved}
        self.reconcile()

    def close(self) -> None:
        """Disconnect everything and drop every port reference (closes the recorders)."""
        self.wanted.clear()
        self.reconcile()
        self.ports.clear()
        self.applied.clear()

    def _port_id(self, key: str) -> int | None:
        port = self.ports.get(key)
        return port.getPortId() if port is not None else None

    def reconcile(self) -> None:
        """Make the conference bridge carry exactly the wanted links that can exist."""
        for link, ids in list(self.applied.items()):
            src, dst = link
            current = (self._port_id(src), self._port_id(dst))
            if link in self.wanted and current == ids:
                continue
            if current == ids:   # both ports still there: really disconnect them
                try:
                    self.ports[src].stopTransmit(self.ports[dst])
                except pj.Error as exc:
                    log.debug("stopTransmit failed", extra={"link": link, "error": exc.info()})
            del self.applied[link]
        for link in self.wanted:
            src, dst = link
            if link in self.applied or src not in self.ports or dst not in self.ports:
                continue
            try:
                self.ports[src].startTransmit(self.ports[dst])
                self.applied[link] = (self._port_id(src), self._port_id(dst))
            except pj.Error as exc:
                log.warning("startTransmit failed", extra={"link": link, "error": exc.info()})
