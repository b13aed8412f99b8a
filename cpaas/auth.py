"""Header authentication (``account`` + ``auth``) with a per-address failure limit."""
from __future__ import annotations

import logging
import time

import redis
from flask import g, request

from cpaas import accounts
from cpaas.envelope import ApiError
from cpaas.logs import account_id_var

log = logging.getLogger(__name__)

PUBLIC_PATHS = ("/healthz", "/api/openapi.json", "/docs")


class FailureLimiter:
    """Counts failed logins per client address in Redis (shared by every web process).

    An address found not blocked is trusted for ``CLEAR_FOR`` seconds without asking
    Redis again (a Redis read per request was a sixth of the API's time); a failure in
    this process forgets that at once, failures in other processes are seen within it.
    """

    CLEAR_FOR = 1.0

    def __init__(self, r: redis.Redis, limit: int, window: int) -> None:
        self.r, self.limit, self.window = r, limit, window
        self._clear_until: dict[str, float] = {}

    def _key(self, address: str) -> str:
        return f"cpaas:authfail:{address}"

    def blocked(self, address: str) -> bool:
        """Whether ``address`` has failed more than the limit within the window."""
        now = time.monotonic()
        if self._clear_until.get(address, 0.0) > now:
            return False
        try:
            count = self.r.get(self._key(address))
        except redis.RedisError:
            log.exception("auth limiter unavailable; not limiting")
            return False
        if count is not None and int(count) > self.limit:
            return True
        if len(self._clear_until) > 10_000:
            self._clear_until.clear()
        self._clear_until[address] = now + self.CLEAR_FOR
        return False

    def failed(self, address: str) -> None:
        """Record one failure."""
        self._clear_until.pop(address, None)
        try:
            pipe = self.r.pipeline()
            pipe.incr(self._key(address))
            pipe.expire(self._key(address), self.window, nx=True)
            pipe.execute()
        except redis.RedisError:
            log.exception("auth limiter unavailable")


def needs_auth(path: str) -> bool:
    """Every route needs auth but the health check, the API document and the docs page."""
    if path in PUBLIC_PATHS:
        return False
    return path.startswith("/api/") or path == "/stop_campaign"


def authenticate(limiter: FailureLimiter) -> None:
    """before_request hook: set ``g.account`` or refuse with 401/429."""
    if not needs_auth(request.path):
        return
    address = request.remote_addr or "unknown"
    if limiter.blocked(address):
        raise ApiError(429, "too many failed authentication attempts; try again later")
    name = request.headers.get("account", "")
    secret = request.headers.get("auth", "")
    if not name or not secret:
        limiter.failed(address)
        raise ApiError(401, "missing account or auth header",
                       {"account" if not name else "auth": ["header is required"]})
    record = accounts.verify(name, secret) if len(name) <= 64 and len(secret) <= 256 else None
    if record is None:
        limiter.failed(address)
        raise ApiError(401, "invalid account or auth", {"auth": ["account and auth do not match"]})
    g.account = record
    account_id_var.set(record.id)
