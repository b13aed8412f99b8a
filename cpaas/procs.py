"""The Procfile's processes: ``python -m cpaas.procs NAME``.

honcho stops every process when one exits, so a process that a configuration does not
need (the private Redis when ``REDIS_URL`` is set, the embedded engine when FreeSWITCH
is configured, the sandbox carrier when a real trunk is) idles instead of exiting.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

import redis

from cpaas import config, logs, private_redis

log = logging.getLogger("cpaas.procs")
VENV_BIN = os.path.dirname(sys.executable)


def _idle(reason: str) -> None:
    log.info("not needed: %s; idling", reason)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


def _stopped_by_signal() -> threading.Event:
    """An event that SIGTERM (honcho's stop) or SIGINT sets, for a loop that then finishes
    what it holds and returns: the process exits 0, not killed mid-write."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _wait_for_redis(settings: config.Settings, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(settings.effective_redis_url)
    while True:
        try:
            client.ping()
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _require_schema(settings: config.Settings) -> None:
    """Stop with one sentence unless the database is at this code's schema version: a
    process started on an older database would fail on its first query instead."""
    from cpaas import db, migrations

    try:
        migrations.check(db.init(settings.effective_database_url))
    except migrations.MigrationError as err:
        log.error("%s", err)
        sys.exit(1)


def _exec(argv: list[str]) -> None:
    sys.stdout.flush()
    os.execv(argv[0], argv)


def redis_server(settings: config.Settings) -> int:
    """A private redis-server on a unix socket under the data dir (no TCP port), which
    stops after every other process (cpaas.private_redis)."""
    if settings.redis_url:
        _idle("REDIS_URL is set")
    return private_redis.run(settings)


def web(settings: config.Settings) -> None:
    """The API under gunicorn (threads; long timeout for million-row CSV imports)."""
    _require_schema(settings)
    _wait_for_redis(settings)
    _exec([os.path.join(VENV_BIN, "gunicorn"), "-c", "python:cpaas.gunicorn_conf", "app:app"])


def worker(settings: config.Settings) -> None:
    """A pool of RQ workers for call jobs first, then everything else.

    Jobs run in the worker process (``workers.worker.WarmWorker``), not in a fork. Each
    worker process also runs a due-work scanner thread; one of them holds its lease
    (``cpaas.scanner``).
    """
    _require_schema(settings)
    _wait_for_redis(settings)
    _exec([os.path.join(VENV_BIN, "rq"), "worker-pool", "-n", os.environ.get("CPAAS_RQ_WORKERS", "3"),
           "-w", "workers.worker.WarmWorker", "-u", settings.effective_redis_url, "calls", "campaign", "default"])


def lower_priority() -> None:
    """Nice 19, against every process on the machine.

    With autogroup scheduling a nice value weighs only within the process's session, and
    each session's group gets an equal share: a transcriber started as its own session
    (honcho, tests/launcher.py) took a third of the CPU from the engine and the call
    workers at nice 19. As its session's leader it lowers its group too; a session it
    shares (``cpaas.supervisor``'s) keeps its group's priority, its own nice ranks it.
    """
    os.nice(19)
    if os.getsid(0) != os.getpid():
        return
    try:
        with open("/proc/self/autogroup", "w") as group:
            group.write("19")
    except OSError as err:
        # A kernel without autogroup: the nice value alone ranks the process.
        log.info("no autogroup to lower; nice 19 only", extra={"error": str(err)})


def transcriber(settings: config.Settings) -> None:
    """The transcription worker (``transcripts`` queue): nice 19 and one CPU thread by
    default (``CPAAS_TRANSCRIBE_THREADS``), so a queue of recordings never slows calls."""
    _require_schema(settings)
    _wait_for_redis(settings)
    lower_priority()
    threads = str(settings.transcribe_threads)
    os.environ.update(OMP_NUM_THREADS=threads, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    # Held across exec until the worker can stop cleanly (workers.transcribe): a Ctrl-C
    # while the model loads at nice 19 then exits 0 instead of killing a half-started RQ.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    _exec([os.path.join(VENV_BIN, "rq"), "worker", "-w", "workers.transcribe.TranscribeWorker",
           "-u", settings.effective_redis_url, "transcripts"])


def events(settings: config.Settings) -> None:
    """Engine events → CDR rows, then the notifier's subscribers (callbacks; later the
    dialer and webhooks), the FreeSWITCH node drivers when ``FREESWITCH_ESL`` is set, and
    the sweeper that settles abandoned requests (one sweeper
    active across every events process: it holds a lease)."""
    from cpaas.calls import sweeper
    from cpaas.cdr import consumer
    from cpaas.notifier import platform_notifier

    _require_schema(settings)
    _wait_for_redis(settings)
    stop = _stopped_by_signal()
    sweeper.start(settings, stop)
    if settings.freeswitch_esl:
        from freeswitch import listener

        listener.start(settings, stop)   # one ESL connection (and plan driver) per node
    try:
        consumer.run(settings, stop, on_settled=platform_notifier().on_settled)
    finally:
        stop.set()


def engine(settings: config.Settings) -> None:
    """The embedded PJSUA2 engine pool, unless FreeSWITCH is configured."""
    if settings.freeswitch_esl:
        _idle("FREESWITCH_ESL is set")
    _wait_for_redis(settings)
    _exec([sys.executable, "-m", "pjsua_engine"])


def carrier(settings: config.Settings) -> None:
    """The sandbox carrier, when the trunk points at it (the embedded default) or, with
    FreeSWITCH, when ``CPAAS_SANDBOX_CARRIER=1`` asks for it."""
    from cpaas.telephony.status import carrier_wanted

    if not carrier_wanted(settings):
        _idle("FREESWITCH_ESL is set without CPAAS_SANDBOX_CARRIER=1" if settings.freeswitch_esl
              else "CPAAS_SIP_TRUNK points at a real carrier")
    _exec([sys.executable, "-m", "sandbox_carrier"])


PROCESSES = {"redis": redis_server, "web": web, "worker": worker, "events": events,
             "engine": engine, "carrier": carrier, "transcriber": transcriber}

if __name__ == "__main__":
    logs.setup()
    if len(sys.argv) != 2 or sys.argv[1] not in PROCESSES:
        sys.stderr.write(f"usage: python -m cpaas.procs {{{'|'.join(PROCESSES)}}}\n")
        sys.exit(2)
    sys.exit(PROCESSES[sys.argv[1]](config.load()))
