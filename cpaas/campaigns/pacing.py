"""Pacing: a token bucket per campaign (``calls_per_minute``) and one for the trunk
(``CPAAS_TRUNK_CPS``), so dials are spread evenly, never sent as a burst each minute."""
from __future__ import annotations

import time
from collections.abc import Callable


class Bucket:
    """Tokens arrive at ``rate`` per second, up to ``capacity``; one dial takes one.

    ``capacity`` is kept small (a couple of scanner turns' worth): a campaign that could
    not dial for a while (paused, outside its hours) then starts again at its pace
    instead of spending the saved-up minute at once.
    """

    def __init__(self, rate: float, capacity: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self.clock = clock
        self.tokens = 1.0
        self.at = clock()

    def available(self) -> int:
        """Whole tokens there are now."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return int(self.tokens)

    def take(self, n: int = 1) -> None:
        """Spend ``n`` tokens (after :meth:`available` said they were there)."""
        self.tokens -= n

    def set_rate(self, rate: float, capacity: float) -> None:
        """Follow a changed rate without losing what was saved."""
        self.available()
        self.rate, self.capacity = rate, max(1.0, capacity)


def per_minute(calls_per_minute: int, turn: float) -> Bucket:
    """The bucket of a campaign dialing ``calls_per_minute``, scanned every ``turn`` s."""
    rate = calls_per_minute / 60.0
    return Bucket(rate, rate * turn * 2)
