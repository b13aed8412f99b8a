"""The Flask application factory: thin HTTP layer over the feature services."""
from __future__ import annotations

import logging
import secrets
import time

import peewee
import redis
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from cpaas import accounts, auth, config, db, logs
from cpaas.envelope import ApiError, failure
from cpaas.platform import Platform
from cpaas.redis_conn import get_redis
from cpaas.storage import storage_for

log = logging.getLogger(__name__)

_HTTP_MESSAGES = {
    404: "no such endpoint",
    405: "method not allowed for this endpoint",
    413: "request body too large",
}


def create_app(settings: config.Settings | None = None) -> Flask:
    """Build the API app. The database schema must already exist (``cpaas init``)."""
    settings = settings or config.load()
    logs.setup()
    app = Flask(__name__)
    app.json.sort_keys = False
    # Multipart uploads may be large; JSON bodies get their own, smaller cap below.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_mb * 1024 * 1024 + 64 * 1024
    database = db.init(settings.effective_database_url)
    # Another app of this process (the tests build many) may have cached account ids of
    # another database: a request would then run as an id this database lacks.
    accounts.forget_cached()
    redis_client = get_redis(settings.effective_redis_url)
    app.extensions["cpaas"] = Platform(
        settings=settings, redis=redis_client,
        storage=storage_for(settings))
    limiter = auth.FailureLimiter(redis_client, settings.auth_fail_limit, settings.auth_fail_window,
                                  settings.trusted_proxies)

    @app.before_request
    def _begin() -> None:
        g.started = time.perf_counter()
        rid = request.headers.get("X-Request-Id", "")
        g.http_request_id = rid if rid.isalnum() and len(rid) <= 64 else secrets.token_hex(8)
        logs.request_id_var.set(g.http_request_id)
        logs.account_id_var.set("")
        # Uploads (a file, a node's recording) are streamed under caps of their own.
        if not request.path.endswith("/upload_file") and not request.path.startswith(
                "/engine-recordings/"):
            too_large = (request.content_length or 0) > settings.max_body_bytes
            if request.content_length is None:
                # A streamed (chunked) body has no Content-Length: read (and cache) at
                # most one byte past the limit to tell whether it is over.
                request.max_content_length = settings.max_body_bytes + 1
                too_large = len(request.get_data()) > settings.max_body_bytes
            if too_large:
                raise ApiError(413, f"request body too large (limit {settings.max_body_bytes} bytes)")
        auth.authenticate(limiter)
        try:
            database.connect(reuse_if_open=True)
        except peewee.DatabaseError:
            if request.path != "/healthz":  # /healthz reports the database as down
                raise

    pooled = db.dialect_of(database) == "postgresql"

    @app.teardown_request
    def _end(exc: BaseException | None) -> None:
        # A PostgreSQL connection goes back to the pool; a SQLite one stays open in its
        # thread (opening one and setting its pragmas would cost more than the request).
        if pooled and not database.is_closed():
            database.close()

    @app.after_request
    def _stamp(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("http_request_id", "")
        return response

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError) -> Response:
        return failure(err.status, err.message, err.errors)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        response = failure(status, _HTTP_MESSAGES.get(status, err.name.lower()))
        if isinstance(err, MethodNotAllowed) and err.valid_methods:
            # RFC 9110: a 405 lists the methods the resource does support.
            response.headers["Allow"] = ", ".join(sorted(err.valid_methods))
        return response

    @app.errorhandler(peewee.OperationalError)
    @app.errorhandler(peewee.InterfaceError)
    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def _unavailable(err: Exception) -> Response:
        # A database or Redis that is restarting is the server's passing trouble, not
        # the client's: 503 tells it to try again, and nothing was stored.
        log.warning("backing store unavailable: %s", type(err).__name__, extra={"path": request.path})
        return failure(503, "the platform's storage is unavailable; try again shortly")

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.path})
        return failure(500, "internal error; the request id is in the X-Request-Id header")

    _register_blueprints(app, settings)
    return app


def _register_blueprints(app: Flask, settings: config.Settings) -> None:
    from cpaas.admin import register_dashboard
    from cpaas.calls.http import bp as calls_bp
    from cpaas.callbacks.http import bp as callbacks_bp
    from cpaas.campaigns.http import bp as campaigns_bp, root_bp as campaigns_root_bp
    from cpaas.cdr.http import bp as cdr_bp
    from cpaas.docs import bp as docs_bp
    from cpaas.files.http import bp as files_bp
    from cpaas.health import bp as health_bp
    from cpaas.transcription.http import bp as transcripts_bp

    for bp in (calls_bp, campaigns_bp, callbacks_bp, cdr_bp, files_bp, transcripts_bp):
        app.register_blueprint(bp, url_prefix="/api")
    app.register_blueprint(campaigns_root_bp)
    app.register_blueprint(docs_bp)
    app.register_blueprint(health_bp)
    if settings.freeswitch_media_url:   # prompts for FreeSWITCH nodes that share no folder
        from freeswitch.media import bp as engine_media_bp

        app.register_blueprint(engine_media_bp)
    register_dashboard(app, settings)
