"""``/healthz``: is the database and Redis reachable."""
from __future__ import annotations

import logging

from flask import Blueprint, Response

from cpaas.db import database
from cpaas.envelope import failure, ok
from cpaas.platform import platform

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


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
    if all(v == "ok" for v in checks.values()):
        return ok(status="ok", **checks)
    return failure(503, "platform unhealthy", status="down", **checks)
