"""The dialer's token bucket on an injected clock: late scanner turns keep the pace, a
pause does not save up a burst."""
from __future__ import annotations

from cpaas.campaigns import pacing


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def drain(bucket: pacing.Bucket) -> int:
    """Spend every whole token there is, as a turn with enough due contacts does."""
    n = bucket.available()
    bucket.take(n)
    return n


def test_late_turns_keep_the_rate():
    clock = Clock()
    bucket = pacing.per_minute(600, 0.2)   # 10/s; holds two 0.2 s turns (4 tokens)
    bucket.clock, bucket.at = clock, clock.t
    first = drain(bucket)
    # A busy host: turns 0.2-3 s apart (the gaps bench/pacing.py measured), 80.3 s in all.
    gaps = [0.2, 0.43, 1.2, 3.0, 0.4, 2.8] * 10
    dialed = 0
    for gap in gaps:
        clock.t += gap
        dialed += drain(bucket)
    assert first == 1
    assert abs(dialed - sum(gaps) * 10) <= 1


def test_a_pause_saves_no_burst():
    clock = Clock()
    bucket = pacing.per_minute(600, 0.2)
    bucket.clock, bucket.at = clock, clock.t
    drain(bucket)
    clock.t += 30.0                        # paused (or outside its hours) for 30 s
    assert drain(bucket) == 4
    clock.t += 0.25                        # then at its pace again
    assert drain(bucket) == 2


def test_regular_turns_with_nothing_due_do_not_fill_past_capacity():
    clock = Clock()
    bucket = pacing.per_minute(600, 0.2)
    bucket.clock, bucket.at = clock, clock.t
    for _ in range(50):                    # looked at every turn, nothing dialed
        clock.t += 0.2
        bucket.available()
    assert drain(bucket) == 4
