"""Pacing: a token bucket per campaign (``calls_per_minute``) and one for the trunk
(``CPAAS_TRUNK_CPS``), so dials are spread evenly, never sent as a burst each minute."""
from __future__ import annotations

import time
from collections.abc import Callable

#: Seconds between two looks at a bucket that still count as one late turn, not a pause
#: (the scanner's lease TTL: a longer silence is a pause, or another scanner taking over).
MAX_LAG = 5.0


class Bucket:
    """Tokens arrive at ``rate`` per second, up to ``capacity``; one dial takes one.

    ``capacity`` is kept small (a couple of scanner turns' worth): a campaign that could
    not dial for a while (paused, outside its hours) then starts again at its pace
    instead of spending the saved-up minute at once. A turn that is merely late (up to
    :data:`MAX_LAG` s since the last look: a busy host, a slow database) still gets all
    the tokens of its gap: capped at ``capacity`` they were lost, and a scanner whose
    turns came every 0.4-3 s on a busy host dialed a 600/min campaign at ~380/min
    (bench/pacing.py).
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
        gained = (now - self.at) * self.rate
        # A late turn may hold its whole gap's tokens, plus the fraction it carried.
        cap = max(self.capacity, gained + 1) if now - self.at <= MAX_LAG else self.capacity
        self.tokens = min(cap, self.tokens + gained)
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
