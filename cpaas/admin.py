"""The RQ dashboard (the design card's) at ``/rq``, behind the operator password.

The browser keeps the Basic credentials and attaches them to every request to /rq, also
to one that another site's page makes it send. So the dashboard's actions (requeue,
delete, empty, compact) are served only to requests the browser marks as coming from a
page of this same origin, and its pages may not be framed by another site (a framed page
would make the operator's own clicks same-origin). The operator's failed logins are
throttled per (client address, user name), like the API's (:mod:`cpaas.auth`).
"""
from __future__ import annotations

import hmac
import logging
from urllib.parse import urlsplit

import rq_dashboard
from flask import Flask, Request, Response, request
from werkzeug.datastructures import Authorization

from cpaas import accounts
from cpaas.auth import FailureLimiter
from cpaas.config import Settings
from cpaas.redis_conn import get_redis

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: rq-dashboard 0.9's "requeue all failed jobs" changes state yet also answers GET (and HEAD).
ACTIONS_ON_GET = frozenset({"rq_dashboard.requeue_all"})


def register_dashboard(app: Flask, settings: Settings) -> None:
    """Mount rq-dashboard at /rq with HTTP basic auth (user ``admin``)."""
    password = accounts.admin_password(settings.data_dir, settings.admin_password)
    app.config["RQ_DASHBOARD_REDIS_URL"] = settings.effective_redis_url
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="/rq")
    rq_dashboard.web.setup_rq_connection(app)
    limiter = FailureLimiter(get_redis(settings.effective_redis_url), settings.auth_fail_limit,
                             settings.auth_fail_window, settings.trusted_proxies, scope="rq")

    @app.before_request
    def _operator_only() -> Response | None:
        if not request.path.startswith("/rq"):
            return None
        given = request.authorization
        if given is None:
            # A browser's first request carries no credentials: not a guess.
            return _challenge()
        address, user = limiter.client(), given.username or ""
        if limiter.blocked(address, user):
            return Response("too many failed operator logins; try again later\n", 429,
                            {"Retry-After": str(settings.auth_fail_window)}, mimetype="text/plain")
        if not _is_operator(given, password):
            limiter.failed(address, user)
            return _challenge()
        if _changes_state(request) and not same_origin(request):
            log.warning("dashboard action refused: not from a same-origin page",
                        extra={"path": request.path, "client": address,
                               "origin": request.headers.get("Origin", "")[:200],
                               "sec_fetch_site": request.headers.get("Sec-Fetch-Site", "")[:40]})
            return Response("refused: dashboard actions are accepted only from the dashboard's "
                            "own (same-origin) page\n", 403, mimetype="text/plain")
        return None

    @app.after_request
    def _not_framed(response: Response) -> Response:
        if request.path.startswith("/rq"):
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        return response


def _challenge() -> Response:
    return Response("operator password required\n", 401,
                    {"WWW-Authenticate": 'Basic realm="cpaas operator"'}, mimetype="text/plain")


def _is_operator(given: Authorization, password: str) -> bool:
    return bool(password and given.type == "basic"
                and hmac.compare_digest((given.username or "").encode(), b"admin")
                and hmac.compare_digest((given.password or "").encode(), password.encode()))


def _changes_state(req: Request) -> bool:
    return req.method not in SAFE_METHODS or req.endpoint in ACTIONS_ON_GET


def same_origin(req: Request) -> bool:
    """Whether the browser says ``req`` comes from a page of this site.

    Fetch metadata (``Sec-Fetch-Site``, set by the browser, never by a page) decides when
    present; otherwise ``Origin``, otherwise ``Referer``, must name this host. A request
    with none of them is refused: browsers send at least one on every POST, and a script
    (curl) can send ``Origin`` itself.
    """
    site = req.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    claimed = req.headers.get("Origin") or req.headers.get("Referer")
    if not claimed:
        return False
    parts = urlsplit(claimed)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == req.host.lower()
