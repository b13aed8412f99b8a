"""The RQ dashboard (the design card's) at ``/rq``, behind the operator password."""
from __future__ import annotations

import hmac

import rq_dashboard
from flask import Flask, Response, request

from cpaas import accounts
from cpaas.config import Settings


def register_dashboard(app: Flask, settings: Settings) -> None:
    """Mount rq-dashboard at /rq with HTTP basic auth (user ``admin``)."""
    password = accounts.admin_password(settings.data_dir, settings.admin_password)
    app.config["RQ_DASHBOARD_REDIS_URL"] = settings.effective_redis_url
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="/rq")
    rq_dashboard.web.setup_rq_connection(app)

    @app.before_request
    def _operator_only() -> Response | None:
        if not request.path.startswith("/rq"):
            return None
        given = request.authorization
        if (password and given is not None and given.type == "basic"
                and hmac.compare_digest((given.username or "").encode(), b"admin")
                and hmac.compare_digest((given.password or "").encode(), password.encode())):
            return None
        return Response("operator password required\n", 401,
                        {"WWW-Authenticate": 'Basic realm="cpaas operator"'}, mimetype="text/plain")
