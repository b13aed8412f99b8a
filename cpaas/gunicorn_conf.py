"""gunicorn settings for the API (``gunicorn -c python:cpaas.gunicorn_conf app:app``)."""
import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# A million-row CSV import is synchronous (the spec's answer carries the count).
timeout = int(os.environ.get("WEB_TIMEOUT", "900"))
keepalive = 5
accesslog = None
