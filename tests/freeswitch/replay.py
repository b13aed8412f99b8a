"""Replaying a captured FreeSWITCH event stream to our driver, through the ESL double.

A capture (``captures/*.jsonl``, :mod:`tests.freeswitch.capture`) holds the exact bytes a
real node sent while a scenario placed its legs. To replay it to the engine, each leg of
the capture is matched to the leg the driver originates with the same role (else the
next unmatched one); from that originate on, the capture's frames about that leg
(its ``Unique-ID``, or its originate's ``Job-UUID``) are sent at their captured pace,
with the capture's uuids replaced by the driver's (same length: every ``Content-Length``
stays right). Legs replay independently, so a second leg's frames wait for the driver to
originate it, as on a real node.
"""
from __future__ import annotations

import io
import re
import threading
import time

from freeswitch.esl import parse_event_plain, read_frame
from tests.freeswitch.capture import Capture

_ORIGINATE = re.compile(r"originate \{origination_uuid=([0-9a-f-]{36})")
#: Longest pause kept between two replayed frames (a capture's idle stretches are cut).
MAX_GAP = 1.5


class Replayer:
    """Feeds one capture's legs to the double as the driver originates them."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.legs = list(capture.meta.get("legs", []))
        self.map: dict[str, str] = {}        # capture uuid or job -> ours
        self.queues = self._per_leg()

    def _per_leg(self) -> dict[str, list[tuple[float, bytes]]]:
        """Each capture leg's frames (from every connection), timed from its originate."""
        sent_at: dict[str, float] = {}
        conns = sorted({r["conn"] for r in self.capture.records})
        for conn in conns:
            for t, data in self.capture.sent(conn):
                match = _ORIGINATE.search(data.decode("utf-8", errors="replace"))
                if match:
                    sent_at.setdefault(match.group(1), t)
        owner = {leg["uuid"]: leg["uuid"] for leg in self.legs}
        owner.update({leg["job"]: leg["uuid"] for leg in self.legs if leg.get("job")})
        queues: dict[str, list[tuple[float, bytes]]] = {leg["uuid"]: [] for leg in self.legs}
        for conn in conns:
            for t, frame in self.capture.frames(conn):
                parsed = read_frame(io.BytesIO(frame))
                if parsed is None or parsed.content_type != "text/event-plain":
                    continue
                event = parse_event_plain(parsed.body)
                leg = owner.get(event.get("Unique-ID") or "") or owner.get(event.get("Job-UUID") or "")
                if leg is not None:
                    queues[leg].append((t - sent_at.get(leg, 0.0), frame))
        return queues

    def claim(self, role: str, uuid: str, job: str) -> dict | None:
        """The capture leg our originate of ``role`` plays; None when none is left."""
        free = [leg for leg in self.legs if leg["uuid"] not in self.map]
        leg = next((l for l in free if l.get("role") == role), free[0] if free else None)
        if leg is None:
            return None
        self.map[leg["uuid"]] = uuid
        if leg.get("job"):
            self.map[leg["job"]] = job
        return leg

    def play(self, leg: dict, send) -> None:
        """Send the leg's frames (uuids replaced) at their pace, in a thread."""
        def run() -> None:
            started, last = time.monotonic(), 0.0
            offset = 0.0
            for t, frame in self.queues[leg["uuid"]]:
                offset += min(max(t - last, 0.0), MAX_GAP)
                last = t
                delay = started + offset - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                send(self.substitute(frame))

        threading.Thread(target=run, daemon=True).start()

    def substitute(self, frame: bytes) -> bytes:
        """The frame with every capture uuid we have mapped replaced by ours."""
        for theirs, ours in list(self.map.items()):
            frame = frame.replace(theirs.encode(), ours.encode())
        return frame
