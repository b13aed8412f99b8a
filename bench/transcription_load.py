"""Transcription under call load: a queue of recordings drains while 20 OTP calls/s run.

    .venv/bin/python bench/transcription_load.py [--recordings 100] [--seconds 60]
                                                 [--baseline-seconds 60] [--max-seconds 1200]

The platform runs as the Procfile starts it (tests/launcher.py, as bench/calls.py runs
it), the ``transcriber`` included: nice 19, one CPU thread (``CPAAS_TRANSCRIBE_THREADS``).
``--recordings`` calls of ``--seconds`` (bench/transcription.py's neural-voice dialogue,
8 kHz, 2 channels) are stored as the engine stores a recording (``recording_key`` in the
platform's bucket), each with its request (``transcript: on``, recording ``both``) and
its answered CDR, on account_2.

1. Baseline: 20 OTP calls/s on account_1 for ``--baseline-seconds``, nothing queued.
2. Loaded: the same load; when it starts, every recording's transcription is queued by
   the platform's own subscriber (``TranscriptionQueuer``: the CDR moves to ``pending``
   and one job goes on the ``transcripts`` queue). Calls go on until every transcript is
   ``done`` or ``failed`` (at least ``--baseline-seconds``, at most ``--max-seconds``).

Per phase: failed calls (requests minus answered CDRs; target 0) and call setup, from
just before the HTTP request to the INVITE's arrival at the carrier (raw-socket sniffer,
root only), p50/p99 (target p99 <= 150 ms); CPU per process. The drain time runs from
the queueing to the last transcript's end. Every loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (LOAD_ENV, CpuMeter, KeptAliveSession, cpu_probe_ms,  # noqa: E402
                           machine_notes, percentile, print_table, workdir)
from bench.calls import (CALLER_ID, _headers, _number, _processes, _report_resources,  # noqa: E402
                         _template, _wait_engine_ready)
from bench.transcription import build_call  # noqa: E402
from cpaas.calls.service import record_request, recording_key  # noqa: E402
from cpaas.calls.state import CallState  # noqa: E402
from cpaas.cdr.writer import CdrRecord, write  # noqa: E402
from cpaas.db import database  # noqa: E402
from cpaas.models import Account, CallRequest, Cdr  # noqa: E402
from cpaas.storage import storage_for  # noqa: E402
from cpaas.transcription.queueing import TranscriptionQueuer  # noqa: E402
from cpaas.transcription.store import TranscriptState  # noqa: E402
from cpaas.validation import utcnow  # noqa: E402
from tests import launcher, servers  # noqa: E402
from tests.sniff import InviteTimes  # noqa: E402

RATE = 20
TARGET_P99_MS = 150.0
ENDED = (TranscriptState.DONE.value, TranscriptState.FAILED.value)


@dataclass
class Phase:
    """What one phase of calls measured."""

    name: str
    requests: int = 0
    accepted: int = 0
    answered: int = 0
    invites: int = 0
    offered_s: float = 0.0
    setup_ms: list[float] = field(default_factory=list)
    peak_backlog: int = 0
    resent: int = 0          # requests sent again after the keep-alive race
    cpu: dict[str, float] = field(default_factory=dict)

    def row(self) -> list:
        """The phase as a row of the summary table."""
        return [self.name, self.requests, self.offered_s, self.answered,
                self.requests - self.answered, self.invites, percentile(self.setup_ms, 50),
                percentile(self.setup_ms, 99), max(self.setup_ms or [0.0]), self.peak_backlog,
                f"{self.cpu['others_cpu_s'] / self.cpu['wall_s']:.2f}"]


class Backlog:
    """The peak of calls accepted but not dialed yet: call jobs waiting for an RQ worker
    and plans waiting for an engine slot (as bench/calls.py's load watches it)."""

    QUEUES = ["rq:queue:calls"] + [f"cpaas:engine:plans:{n}" for n in range(1, 5)]

    def __init__(self, redis_url: str) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            pipe = self.client.pipeline()
            for queue in self.QUEUES:
                pipe.llen(queue)
            self.peak = max(self.peak, sum(pipe.execute()))

    def stop(self) -> int:
        """Stop watching; the peak seen."""
        self._stop.set()
        self._thread.join(2)
        return self.peak


def store_recordings(running: launcher.Running, folder: Path, count: int,
                     seconds: float) -> list[tuple[CallRequest, CdrRecord]]:
    """``count`` answered click2call requests with ``transcript: on`` and their stored
    stereo recordings (one dialogue, stored under each request's key)."""
    call = build_call(folder, seconds)
    storage = storage_for(running.settings)
    settled = []
    with database.connection_context():
        account = Account.get(Account.name == "account_2")
        for _ in range(count):
            request_id = secrets.token_hex(6)
            storage.put_file(recording_key(account.name, request_id), call)
            agent, customer = _number("101"), _number("102")
            record_request(account.id, request_id, "click2call", agent_number=agent,
                           customer_number=customer, caller_id=CALLER_ID,
                           recording_option="both", transcript="on",
                           destination_context="click2call", call_direction="outbound-api")
            CallRequest.update(status=CallState.DONE.value).where(
                CallRequest.id == request_id).execute()
            now = utcnow()
            cdr = CdrRecord(account_id=account.id, request_id=request_id,
                            uniqueid=f"1.{request_id}", dial_status="ANSWER", call_date=now,
                            destination_context="click2call", call_direction="outbound-api",
                            caller_id=CALLER_ID, dialed_number=customer, agent_number=agent,
                            customer_number=customer, answer_at=now, end_at=now,
                            billsec=seconds, call_duration=seconds,
                            recording_name=recording_key(account.name, request_id))
            write(cdr)
            settled.append((CallRequest.get_by_id(request_id), cdr))
    return settled


class Drain:
    """Queues the transcriptions and watches their CDRs until every one has ended."""

    def __init__(self, redis_url: str, settled: list[tuple[CallRequest, CdrRecord]]) -> None:
        self.settled = settled
        self.queuer = TranscriptionQueuer(redis.Redis.from_url(redis_url))
        self.ended = threading.Event()
        self.started = self.seconds = 0.0
        self.counts: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        """Queue every job through the platform's subscriber, then watch."""
        self.started = time.monotonic()
        for request, cdr in self.settled:
            self.queuer(request, cdr)
        self._thread.start()

    def _watch(self) -> None:
        ids = [request.id for request, _cdr in self.settled]
        account = self.settled[0][0].account_id
        while not self._stop.wait(0.5):
            with database.connection_context():
                rows = (Cdr.select(Cdr.transcript_status)
                        .where((Cdr.account_id == account) & Cdr.request_id.in_(ids)))
                counts: dict[str, int] = {}
                for row in rows:
                    counts[row.transcript_status] = counts.get(row.transcript_status, 0) + 1
            self.counts = counts
            if sum(counts.get(s, 0) for s in ENDED) == len(ids):
                self.seconds = time.monotonic() - self.started
                self.ended.set()
                return

    def stop(self) -> None:
        """Stop watching (a drain cut short by ``--max-seconds`` leaves ``seconds`` 0)."""
        self._stop.set()
        self._thread.join(5)


def offer(send: Callable[[int], str | None], keep_going: Callable[[float], bool],
          limit: int) -> list[str | None]:
    """Call ``send(i)`` at RATE per second while ``keep_going(scheduled_offset_s)``."""
    start = time.monotonic() + 0.5
    with ThreadPoolExecutor(32) as pool:
        futures = []
        for i in range(limit):
            if not keep_going(i / RATE):
                break
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(send, i))
        return [f.result() for f in futures]


def call_phase(running: launcher.Running, name: str, template: str,
               keep_going: Callable[[float], bool], limit: int) -> Phase:
    """OTP calls at RATE/s while ``keep_going``; call setup, outcomes and CPU."""
    invites = InviteTimes(running.carrier_port)
    session = KeptAliveSession()
    sent: dict[str, float] = {}

    def send(i: int) -> str | None:
        number = _number("001")
        sent[number] = time.monotonic()
        r = session.post(running.base_url + "/api/outbound_call", headers=_headers(), timeout=10,
                         json={"customer_number": number, "otp": "1987", "caller_id": CALLER_ID,
                               "announce_template_id": template, "repeat": "3"})
        return r.json()["response"].get("request_id") if r.status_code == 200 else None

    meter = CpuMeter(_processes(running))
    backlog = Backlog(running.settings.redis_url)
    started = time.monotonic()
    request_ids = offer(send, keep_going, limit)
    phase = Phase(name, requests=len(request_ids), offered_s=time.monotonic() - started)
    # The last calls end 5 s after their answer; the CDR look-ups after that (one HTTP
    # request per call) are the benchmark's work, not the platform's, and stay out.
    time.sleep(7)
    phase.cpu = meter.stop()
    phase.peak_backlog = backlog.stop()
    accepted = [r for r in request_ids if r]
    statuses = wait_cdrs(accepted, timeout=120)
    invites.stop()
    phase.accepted = len(accepted)
    phase.answered = sum(1 for s in statuses.values() if s == "ANSWER")
    phase.setup_ms = [(invites.first[n] - t) * 1000 for n, t in sent.items() if n in invites.first]
    phase.invites = len(phase.setup_ms)
    phase.resent = session.retries
    return phase


def wait_cdrs(request_ids: list[str], timeout: float) -> dict[str, str]:
    """Request id -> dial status of the CDRs written for ``request_ids`` within
    ``timeout`` (read from the database: thousands of calls, one query per 1000)."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(request_ids) and time.monotonic() < deadline:
        missing = [r for r in request_ids if r not in found]
        with database.connection_context():
            for at in range(0, len(missing), 1000):
                rows = (Cdr.select(Cdr.request_id, Cdr.dial_status)
                        .where(Cdr.request_id.in_(missing[at:at + 1000])))
                found.update((row.request_id, row.dial_status) for row in rows)
        if len(found) < len(request_ids):
            time.sleep(1)
    return found


def transcriber_priority(running: launcher.Running) -> str:
    """The transcriber's nice value and its scheduling group's (``cpaas.procs.lower_priority``)."""
    pid = running.procs["transcriber"].pid
    try:
        group = Path(f"/proc/{pid}/autogroup").read_text().strip()
    except OSError:
        group = "no autogroup"
    return f"nice {os.getpriority(os.PRIO_PROCESS, pid)} ({group})"


def report(baseline: Phase, loaded: Phase, drain: Drain, running: launcher.Running,
           args: argparse.Namespace, probe: float) -> None:
    """Print the figures of both phases, the drain and the verdict."""
    print(f"{args.recordings} recordings of {args.seconds:.0f} s (8 kHz, 2 channels); "
          f"transcriber at {transcriber_priority(running)}, "
          f"{running.env.get('CPAAS_TRANSCRIBE_THREADS', '1')} thread; cpu probe {probe:.0f} ms")
    print(machine_notes())
    print_table(f"{RATE} OTP calls/s (hold 5 s); call setup = HTTP request -> INVITE at the "
                "carrier (ms)",
                ["phase", "requests", "offered s", "answered", "failed", "INVITEs seen",
                 "p50", "p99", "max", "peak backlog", "others' cores"],
                [baseline.row(), loaded.row()])
    for phase in (baseline, loaded):
        _report_resources(running, phase.cpu, calls=phase.accepted)
    print(f"requests sent again after the keep-alive race: baseline {baseline.resent}, "
          f"loaded {loaded.resent}")
    drained = drain.ended.is_set()
    print(f"\ntranscripts: {drain.counts}; drain "
          + (f"{drain.seconds:.0f} s ({drain.seconds / args.recordings:.1f} s per recording)"
             if drained else f"NOT finished within {args.max_seconds} s of calls"))
    p99 = percentile(loaded.setup_ms, 99)
    ratio = p99 / (percentile(baseline.setup_ms, 99) or float("nan"))
    failed = loaded.requests - loaded.answered
    print(f"call setup p99 with the queue / without: {ratio:.2f}; failed calls {failed} "
          f"(target 0), p99 {p99:.1f} ms (target <= {TARGET_P99_MS:.0f}): "
          f"{'met' if drained and failed == 0 and p99 <= TARGET_P99_MS else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each recording")
    parser.add_argument("--baseline-seconds", type=int, default=60)
    parser.add_argument("--max-seconds", type=int, default=1200,
                        help="longest the loaded phase offers calls, drained or not")
    parser.add_argument("--engine-workers", type=int, default=32)
    parser.add_argument("--rq-workers", type=int, default=3)
    args = parser.parse_args()
    probe = cpu_probe_ms()
    with workdir("cpaas-bench-transcription-load") as folder, \
            servers.redis_server() as redis_url, servers.postgres_server() as db_url, \
            launcher.platform(folder / "data", redis_url, db_url, hold=5,
                              engine_workers=args.engine_workers, rq_workers=args.rq_workers,
                              web=True, extra_env=LOAD_ENV) as running:
        _wait_engine_ready(redis_url, args.engine_workers)
        settled = store_recordings(running, folder, args.recordings, args.seconds)
        template = _template(running.base_url)
        baseline = call_phase(running, "baseline: calls only", template,
                              lambda at: at < args.baseline_seconds, RATE * args.baseline_seconds)
        time.sleep(3)
        drain = Drain(redis_url, settled)
        drain.start()
        loaded = call_phase(running, f"with {args.recordings} transcriptions queued", template,
                            lambda at: at < args.baseline_seconds or not drain.ended.is_set(),
                            RATE * args.max_seconds)
        drain.ended.wait(60)
        drain.stop()
        report(baseline, loaded, drain, running, args, probe)


if __name__ == "__main__":
    main()
