"""What ``/healthz`` says about telephony: the engine and, in the embedded default, the
sandbox carrier. Reported beside the checks, never a reason for 503: the API serves
(and queues calls) while the engine starts or restarts.

Kept cheap: the engine costs a Redis round trip or two (pool or node heartbeats); the carrier one SIP OPTIONS on loopback,
at most once per :data:`CARRIER_TTL` seconds per process (``/healthz`` needs no
credentials, so a flood of it must not become a flood of SIP).
"""
from __future__ import annotations

import logging
import os
import threading
import time

import redis

from cpaas.config import Settings
from cpaas.telephony.engine_client import engine_client

log = logging.getLogger(__name__)

CARRIER_TTL = 2.0
CARRIER_TIMEOUT = 0.5
_probed: dict[tuple[str, int], tuple[float, bool]] = {}
_probe_lock = threading.Lock()


def engine_report(settings: Settings, r: redis.Redis) -> dict[str, str]:
    """``engine`` (ok | degraded | down | unknown), its type and its own detail."""
    return engine_client(settings, r).health()


def carrier_wanted(settings: Settings) -> bool:
    """Whether this configuration runs the sandbox carrier (``make run`` starts it, see
    cpaas.procs.carrier): when the embedded engine's trunk points at it, or, with
    FreeSWITCH, when asked (``CPAAS_SANDBOX_CARRIER=1``: a local node's gateway points at it)."""
    from sandbox_carrier.carrier import settings_from_env

    if settings.freeswitch_esl:
        return os.environ.get("CPAAS_SANDBOX_CARRIER") == "1"
    sandbox = settings_from_env()
    return f"@{sandbox.host}:{sandbox.port}" in settings.sip_trunk


def carrier_report(settings: Settings) -> dict[str, str]:
    """``sandbox_carrier``: ok | down when this configuration runs it, else "not used"."""
    from sandbox_carrier.carrier import settings_from_env

    if not carrier_wanted(settings):
        return {"sandbox_carrier": "not used"}
    sandbox = settings_from_env()
    return {"sandbox_carrier": "ok" if _answers(sandbox.host, sandbox.port) else "down"}


def _answers(host: str, port: int) -> bool:
    """Whether the carrier answers SIP OPTIONS (cached for :data:`CARRIER_TTL` seconds)."""
    from sandbox_carrier.carrier import probe

    now = time.monotonic()
    with _probe_lock:
        seen = _probed.get((host, port))
        if seen is not None and now - seen[0] < CARRIER_TTL:
            return seen[1]
        answered = probe(host, port, timeout=CARRIER_TIMEOUT)
        _probed[(host, port)] = (now, answered)
    return answered


def report(settings: Settings, r: redis.Redis, redis_ok: bool) -> dict[str, str]:
    """Both reports (the engine's needs Redis: without it, it is unknown)."""
    out = engine_report(settings, r) if redis_ok else {"engine": "unknown"}
    out.update(carrier_report(settings))
    return out
