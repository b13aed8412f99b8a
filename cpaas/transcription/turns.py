"""Per-channel speech segments merged into one conversation of turns, in time order."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

#: Two segments of one speaker with no other speech between them and at most this many
#: seconds of silence between them are one turn (a pause for breath, not a new turn).
JOIN_GAP = 1.0


@dataclass(frozen=True)
class Segment:
    """What one channel's recogniser heard: ``text`` from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Turn:
    """One speaker's stretch of speech in the call (the API's transcript item)."""

    speaker: str
    start: float
    end: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        """The turn as the API serves it."""
        return asdict(self)


def merge(channels: Mapping[str, Iterable[Segment]], join_gap: float = JOIN_GAP) -> list[Turn]:
    """The turns of every channel (speaker → its segments) in time order.

    Segments are ordered by start time (a tie: the earlier end first, then the speaker's
    name, so the order never depends on dict order); blank ones are dropped; a segment
    that follows one of the same speaker within ``join_gap`` seconds, with no other
    speaker starting in between, extends that turn.
    """
    items = sorted(((seg.start, seg.end, speaker, seg.text.strip())
                    for speaker, segments in channels.items() for seg in segments),
                   key=lambda item: (item[0], item[1], item[2]))
    turns: list[Turn] = []
    for start, end, speaker, text in items:
        if not text:
            continue
        last = turns[-1] if turns else None
        if last and last.speaker == speaker and start - last.end <= join_gap:
            turns[-1] = Turn(speaker, last.start, round(max(last.end, end), 2),
                             f"{last.text} {text}")
        else:
            turns.append(Turn(speaker, round(start, 2), round(end, 2), text))
    return turns
