"""Header authentication (``account`` + ``auth``) with a failure limit per client and account.

The limit counts failures per (client address, account name), not per address: behind a
reverse proxy every client shares the proxy's address, and one guesser must not lock every
tenant out. The client address comes from ``X-Forwarded-For`` only through a trusted
proxy (:mod:`cpaas.client_address`). Once a (client, account) pair is over the limit it is
refused with 429 even when it then sends the right secret: a throttle that let correct
guesses through would not slow guessing down. Other clients of that account, and that
client's other accounts, are not affected.
"""
from __future__ import annotations

import hashlib
import logging
import time
from typing import Sequence

import redis
from flask import g, request

from cpaas import accounts
from cpaas.client_address import TrustedProxies
from cpaas.envelope import ApiError
from cpaas.logs import account_id_var
from cpaas.lru import LRU

log = logging.getLogger(__name__)

PUBLIC_PATHS = ("/healthz", "/api/openapi.json", "/docs")


class FailureLimiter:
    """Counts failed logins per (client address, account name) in Redis (shared by every
    web process); ``scope`` keeps the API's and the dashboard's counts apart.

    A pair found not blocked is trusted for ``CLEAR_FOR`` seconds without asking Redis
    again (a Redis read per request was a sixth of the API's time); a failure in this
    process forgets that at once, failures in other processes are seen within it.
    """

    CLEAR_FOR = 1.0
    CLEAR_CACHE_SIZE = 10_000

    def __init__(self, r: redis.Redis, limit: int, window: int,
                 trusted_proxies: Sequence[str] = (), scope: str = "api") -> None:
        self.r, self.limit, self.window, self.scope = r, limit, window, scope
        self.proxies = TrustedProxies(trusted_proxies)
        self._clear_until: LRU[str, float] = LRU(self.CLEAR_CACHE_SIZE)

    def client(self) -> str:
        """The current request's client address (see :mod:`cpaas.client_address`)."""
        return self.proxies.client_of(request.remote_addr,
                                      request.headers.getlist("X-Forwarded-For"))

    def _key(self, address: str, name: str) -> str:
        # The name is whatever the client sent, of any length: a digest keeps keys short.
        tag = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
        return f"cpaas:authfail:{self.scope}:{address}:{tag}"

    def blocked(self, address: str, name: str) -> bool:
        """Whether (``address``, ``name``) has failed more than the limit within the window."""
        key = self._key(address, name)
        now = time.monotonic()
        if (self._clear_until.get(key) or 0.0) > now:
            return False
        try:
            count = self.r.get(key)
        except redis.RedisError:
            log.exception("auth limiter unavailable; not limiting")
            return False
        if count is not None and int(count) > self.limit:
            return True
        self._clear_until.put(key, now + self.CLEAR_FOR)
        return False

    def failed(self, address: str, name: str) -> None:
        """Record one failure of ``name`` from ``address``."""
        key = self._key(address, name)
        self._clear_until.pop(key)
        try:
            pipe = self.r.pipeline()
            pipe.incr(key)
            pipe.expire(key, self.window, nx=True)
            count = pipe.execute()[0]
        except redis.RedisError:
            log.exception("auth limiter unavailable")
            return
        if count == self.limit + 1:
            log.warning("login failures over the limit; refusing this client for this account",
                        extra={"scope": self.scope, "client": address, "account_name": name[:64],
                               "window_s": self.window})


def needs_auth(path: str) -> bool:
    """Every route needs auth but the health check, the API document and the docs page."""
    if path in PUBLIC_PATHS:
        return False
    return path.startswith("/api/") or path == "/stop_campaign"


def authenticate(limiter: FailureLimiter) -> None:
    """before_request hook: set ``g.account`` or refuse with 401/429."""
    if not needs_auth(request.path):
        return
    address = limiter.client()
    name = request.headers.get("account", "")
    secret = request.headers.get("auth", "")
    if limiter.blocked(address, name):
        raise ApiError(429, "too many failed authentication attempts; try again later")
    if not name or not secret:
        limiter.failed(address, name)
        raise ApiError(401, "missing account or auth header",
                       {"account" if not name else "auth": ["header is required"]})
    record = accounts.verify(name, secret) if len(name) <= 64 and len(secret) <= 256 else None
    if record is None:
        limiter.failed(address, name)
        raise ApiError(401, "invalid account or auth", {"auth": ["account and auth do not match"]})
    g.account = record
    account_id_var.set(record.id)
