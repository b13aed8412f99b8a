"""The due-work scanner: one process at a time, across every RQ worker, runs its tasks.

Each ``worker`` process runs a :class:`Scanner` in a thread; they all try one
:class:`cpaas.lease.Lease` (as rq's scheduler lock) and only its holder runs the tasks
(due callbacks now; the campaign dialer's ticks will join them). The holder renews the
lease from the same loop that runs the tasks, so a holder that dies or hangs stops
renewing, ``/healthz`` shows the scanner ``down`` once the lease expires, and another
process takes over within :data:`LEASE_TTL` plus one standby turn.

The lease only keeps the work in one place; it is not what makes it exactly once. Each
task claims what it fires with a conditional UPDATE in the database, so two scanners
that overlap for a moment (a holder stalled past its lease) still fire each item once.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import peewee
import redis

from cpaas.db import database
from cpaas.lease import Lease

log = logging.getLogger(__name__)

LEASE = "scanner"
#: Seconds the lease lasts without renewal: how long a dead holder keeps others waiting.
LEASE_TTL = 5.0
#: The holder renews this often (well inside the TTL, few Redis round trips per pass).
RENEW_EVERY = LEASE_TTL / 4
#: Seconds between a standby process's tries for the lease.
STANDBY_WAIT = 1.0

#: One task's pass over its due work; True when it stopped at its batch limit and more
#: is due at once (the loop then runs again without waiting).
Task = Callable[[], bool]


class Scanner:
    """Runs ``tasks`` every ``interval`` seconds while this process holds the lease."""

    def __init__(self, r: redis.Redis, tasks: Sequence[Task], interval: float) -> None:
        self.lease = Lease(r, LEASE, ttl=LEASE_TTL)
        self.tasks = list(tasks)
        self.interval = interval
        self._renewed = float("-inf")

    def holds(self) -> bool:
        """Keep (or take) the lease; True while this process is the scanner."""
        now = time.monotonic()
        if self.lease.held and now - self._renewed < RENEW_EVERY:
            return True
        was_held = self.lease.held
        if self.lease.acquire_or_renew():
            self._renewed = now
            if not was_held:
                log.info("scanner lease taken", extra={"lease": self.lease.token})
        elif was_held:
            log.warning("scanner lease lost", extra={"lease": self.lease.token})
        return self.lease.held

    def turn(self) -> float:
        """One turn of the loop; returns how long to wait before the next."""
        if not self.holds():
            return STANDBY_WAIT
        more = False
        with database.connection_context():
            for task in self.tasks:
                more = task() or more
        return 0.0 if more else self.interval

    def run(self, stop: threading.Event) -> None:
        """Scan until ``stop`` is set; a failing turn is logged and the next one tried."""
        log.info("scanner started", extra={"lease": self.lease.token})
        while not stop.is_set():
            try:
                wait = self.turn()
            except (redis.RedisError, peewee.OperationalError, peewee.InterfaceError) as err:
                # Redis or the database is away: the lease cannot be trusted; start over.
                log.warning("scanner turn skipped: %s", type(err).__name__)
                self.lease.held = False
                wait = STANDBY_WAIT
            except Exception:  # noqa: BLE001 - a scanner that stops fires nothing again
                log.exception("scanner turn failed")
                wait = STANDBY_WAIT
            stop.wait(wait)
        try:
            self.lease.release()
        except redis.RedisError:
            pass


def start(r: redis.Redis, tasks: Sequence[Task], interval: float,
          stop: threading.Event) -> threading.Thread:
    """Run a :class:`Scanner` in a daemon thread of this process."""
    thread = threading.Thread(target=Scanner(r, tasks, interval).run, args=(stop,),
                              name="scanner", daemon=True)
    thread.start()
    return thread
