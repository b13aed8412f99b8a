"""A lease held by one process at a time across all of them: Redis ``SET NX PX``.

As rq's scheduler lock: whoever sets the key first holds it; the holder renews it well
before it expires; a holder that dies stops renewing and another process takes over
once the key expires. Renewal and release only touch a key that still carries the
holder's own token, so a holder that stalled past expiry cannot release its successor's
lease.
"""
from __future__ import annotations

import os
import secrets
import socket

import redis

# KEYS[1] lease key; ARGV[1] token; ARGV[2] ttl in ms (renew only).
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then " \
         "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then " \
           "return redis.call('del', KEYS[1]) else return 0 end"


class Lease:
    """One named lease; ``acquire_or_renew`` once per loop turn keeps it."""

    def __init__(self, r: redis.Redis, name: str, ttl: float) -> None:
        self.r = r
        self.key = f"cpaas:lease:{name}"
        self.ttl_ms = int(ttl * 1000)
        # Readable, so /healthz can say who holds it; random, so two holders never match.
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.held = False

    def acquire_or_renew(self) -> bool:
        """Take the lease if it is free, renew it if we hold it; True while we hold it."""
        if self.held and self.r.eval(_RENEW, 1, self.key, self.token, self.ttl_ms):
            return True
        self.held = bool(self.r.set(self.key, self.token, nx=True, px=self.ttl_ms))
        return self.held

    def release(self) -> None:
        """Give the lease up (on a clean stop), if we still hold it."""
        if self.held:
            self.r.eval(_RELEASE, 1, self.key, self.token)
            self.held = False


def holder(r: redis.Redis, name: str) -> tuple[str, float] | None:
    """Who holds the lease ``name`` now and for how many more seconds (None: nobody)."""
    key = f"cpaas:lease:{name}"
    pipe = r.pipeline()
    pipe.get(key)
    pipe.pttl(key)
    value, left_ms = pipe.execute()
    return (value.decode(), max(left_ms, 0) / 1000) if value else None
