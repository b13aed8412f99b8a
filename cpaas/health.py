"""``/healthz``: is the database and Redis reachable, and how the engine and the sandbox
carrier are (reported, never a 503); ``/`` redirects to the docs."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, redirect

from cpaas.db import database
from cpaas.envelope import failure, ok
from cpaas.platform import platform
from cpaas.telephony import status

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


def _reliability() -> dict[str, str]:
    """Reported beside the checks, never a reason for 503 (the API still serves): how
    many engine events wait in the dead-letter stream (``python -m cpaas events
    replay-dead`` replays them), and which process's sweeper and due-work scanner hold
    their leases ("down": none, so nothing is swept or fired)."""
    from cpaas import scanner
    from cpaas.calls import sweeper
    from cpaas.cdr import deadletter
    from cpaas.lease import holder

    r = platform().redis
    try:
        dead = deadletter.count(r)
        held = {"sweeper": holder(r, sweeper.LEASE), "scanner": holder(r, scanner.LEASE)}
    except Exception:  # noqa: BLE001 - reported, like the checks above
        log.exception("reliability check failed")
        return {"dead_events": "unknown", "sweeper": "unknown", "scanner": "unknown"}
    return {"dead_events": str(dead),
            **{name: h[0] if h else "down" for name, h in held.items()}}


@bp.route("/", methods=["GET"])
def root() -> Response:
    """The server's address opens the API docs (a newcomer's first click)."""
    return redirect("/docs", 302)


@bp.route("/healthz", methods=["GET"])
def healthz() -> Response:
    checks = {}
    try:
        database.execute_sql("SELECT 1")
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means "not healthy", reported below
        log.exception("database check failed")
        checks["database"] = "down"
    try:
        platform().redis.ping()
        checks["redis"] = "ok"
    except Exception:  # noqa: BLE001
        log.exception("redis check failed")
        checks["redis"] = "down"
    reports = _reliability() if checks["redis"] == "ok" else {}
    reports.update(status.report(platform().settings, platform().redis, checks["redis"] == "ok"))
    if all(v == "ok" for v in checks.values()):
        return ok(status="ok", **checks, **reports)
    return failure(503, "platform unhealthy", status="down", **checks, **reports)
