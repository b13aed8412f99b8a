"""JSON that is already encoded, to be spliced into a response as it is."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class JsonArray:
    """A JSON array's text and its length.

    A CDR page is the CDRs' stored JSON texts joined (see :mod:`cpaas.cdr.writer`), so a
    page of 1000 rows never becomes 23,000 Python values to convert and encode again.
    """

    text: str
    count: int

    def __len__(self) -> int:
        return self.count

    @classmethod
    def of(cls, items: Iterable[str]) -> "JsonArray":
        """The array of already-encoded JSON values ``items``."""
        items = list(items)
        return cls("[" + ",".join(items) + "]", len(items))
