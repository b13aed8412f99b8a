"""gunicorn settings for the API (``gunicorn -c python:cpaas.gunicorn_conf app:app``)."""
import gc
import multiprocessing
import os

# CPAAS_HTTP_PORT is set by `make run` (honcho overwrites PORT per process); a bare
# Procfile launcher (Heroku style) gives PORT.
_port = os.environ.get("CPAAS_HTTP_PORT") or os.environ.get("PORT", "8080")
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{_port}"
# Measured on 2 cores (bench/api_throughput.py): 3 processes x 2 threads gave the best
# throughput and p99; more threads per process only queue behind the GIL.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "2"))
# A million-row CSV import is synchronous (the spec's answer carries the count).
timeout = int(os.environ.get("WEB_TIMEOUT", "900"))
keepalive = 5
accesslog = None


def post_worker_init(worker) -> None:
    """Open the database pool and Redis before the first real request arrives, then
    move everything loaded so far out of the garbage collector's sight: the app's
    modules and objects live as long as the process, and a full collection that walks
    them all stalls every request of the process for tens of milliseconds."""
    worker.wsgi.test_client().get("/healthz")
    gc.freeze()
