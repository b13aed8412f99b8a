"""The check at the moment of dialing, timed in-process (target: a 1,000,000-entry DND
list costs at most 1 ms p99 more per attempt than an empty one).

    .venv/bin/python bench/dial_check.py [--dnd 1000000] [--attempts 3000]
                                         [--backends postgresql,sqlite]

For each backend (a private PostgreSQL server from tests/servers.py, a SQLite file) two
running campaigns are made that differ only in their DND list: one of ``--dnd``
numbers, bulk-loaded with ``COPY`` (PostgreSQL) or one ``executemany`` (SQLite), and an
empty one. ``--attempts`` queued attempts per campaign (numbers not on the list, so every
question of the check is asked: status, DND, window and hours, the 24 h per-number cap)
are committed, plus a history of settled attempts for the cap to read. Then
``cpaas.campaigns.dial_check.refusal`` is timed for each attempt, alternating between
the two campaigns so both see the same host; a third series times numbers that are on
the 1M list (the check stops at the DND answer). The baseline is the empty list, in the
same run.
"""
from __future__ import annotations

import argparse
import io
import itertools
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (BACKENDS, database_url, init_platform, machine_notes,  # noqa: E402
                           percentile, print_table, workdir)
from cpaas import config, db, ids  # noqa: E402
from cpaas.campaigns import dial_check  # noqa: E402
from cpaas.campaigns.state import AttemptState, CampaignStatus  # noqa: E402
from cpaas.models import Campaign, CampaignAttempt, ContactList, DndList  # noqa: E402
from cpaas.validation import utcnow  # noqa: E402

TARGET_MS = 1.0
WARMUP = 200
_CONTACT_IDS = itertools.count(1)   # unique per (campaign, contact, attempt)


def dnd_number(i: int) -> str:
    """The ``i``-th number of the big DND list (Indian mobile shape, 12 digits)."""
    return f"9170{i:08d}"


def free_number(i: int) -> str:
    """A number that is on no DND list (same length and prefix as the list's)."""
    return f"9180{i:08d}"


def load_dnd(url: str, dnd_list_id: str, count: int) -> float:
    """Bulk-load ``count`` numbers into ``dnd_list_id``; seconds taken."""
    started = time.perf_counter()
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url[len("sqlite:///"):])
        with conn:
            conn.executemany("INSERT INTO dnd_contact (dnd_list_id, number, name) VALUES (?, ?, '')",
                             ((dnd_list_id, dnd_number(i)) for i in range(count)))
        conn.execute("ANALYZE")
        conn.close()
    else:
        import psycopg2

        data = io.StringIO("".join(f"{dnd_list_id}\t{dnd_number(i)}\t\n" for i in range(count)))
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.copy_expert("COPY dnd_contact (dnd_list_id, number, name) FROM STDIN", data)
            cur.execute("ANALYZE dnd_contact")
    return time.perf_counter() - started


def make_campaign(account: str, list_id: str, dnd_list_id: str, now: datetime) -> Campaign:
    """A running type-0 campaign, window from an hour ago to tomorrow, in UTC."""
    return Campaign.create(
        id=ids.campaign_id(), account_id=account, name=f"bench {dnd_list_id}", list_id=list_id,
        dnd_list_id=dnd_list_id, campaign_type=0, caller_id="15168148111",
        dynamic_announcement=1, recorded_filename="", announcement_text="Hello {field1}.",
        start_at=now - timedelta(hours=1), end_at=now + timedelta(days=1), time_zone="UTC",
        repeat_count=1, max_retries=0, retry_time=60, retry_on_statuses="NOANSWER,BUSY",
        calls_per_minute=600, voice="Joanna", volume="", rate="", pitch="",
        language_code="en-US", tts_engine_type="standard", status=CampaignStatus.RUNNING.value,
        created_at=now)


def make_attempts(account: str, campaign: Campaign, numbers: list[str], status: str,
                  created_at: datetime) -> list[CampaignAttempt]:
    """Commit one attempt per number (the rows the check's cap query reads)."""
    rows = [CampaignAttempt(id=ids.request_id(), account_id=account, campaign_id=campaign.id,
                            contact_id=next(_CONTACT_IDS), attempt=1, number=n, status=status,
                            dial_status="ANSWER" if status == AttemptState.DONE.value else "",
                            reason_code="", created_at=created_at)
            for n in numbers]
    with db.database.atomic():
        for start in range(0, len(rows), 500):
            CampaignAttempt.bulk_create(rows[start:start + 500])
    return rows


def time_checks(series: dict[str, tuple[Campaign, list[CampaignAttempt]]], cap: int,
                now: datetime) -> dict[str, list[float]]:
    """Milliseconds of each ``refusal`` call, the series interleaved attempt by attempt."""
    timings: dict[str, list[float]] = {name: [] for name in series}
    answers: dict[str, set[str]] = {name: set() for name in series}
    longest = max(len(attempts) for _, attempts in series.values())
    for i in range(longest):
        for name, (campaign, attempts) in series.items():
            if i >= len(attempts):
                continue
            started = time.perf_counter_ns()
            refused = dial_check.refusal(attempts[i], campaign, cap, now)
            elapsed = (time.perf_counter_ns() - started) / 1e6
            answers[name].add(refused.reason if refused else "dial")
            if i >= WARMUP:
                timings[name].append(elapsed)
    for name, seen in answers.items():
        print(f"  {name}: answers {sorted(seen)}")
    return timings


def run_backend(backend: str, folder: Path, dnd_size: int, count: int) -> list[tuple]:
    """Load, time and return the table rows of one backend."""
    with database_url(backend, folder) as url:
        account = init_platform(url, folder / f"data-{backend}")["account_1"]
        database = db.init(url)
        database.connect(reuse_if_open=True)
        now = utcnow()
        list_id = ContactList.create(id=ids.list_id(), account_id=account, name="bench",
                                     created_at=now).id
        big = DndList.create(id=ids.dnd_list_id(), account_id=account, name="big",
                             created_at=now).id
        empty = DndList.create(id=ids.dnd_list_id(), account_id=account, name="empty",
                               created_at=now).id
        loaded = load_dnd(url, big, dnd_size)
        print(f"{backend}: {dnd_size:,} DND numbers loaded in {loaded:.1f} s")
        with_list = make_campaign(account, list_id, big, now)
        without = make_campaign(account, list_id, empty, now)
        rng = random.Random(7)
        # Earlier settled dials (2 h ago) of the same numbers: the cap query finds rows to count.
        history = [free_number(i) for i in range(count)]
        make_attempts(account, without, history, AttemptState.DONE.value, now - timedelta(hours=2))
        half = count // 2   # half of each series dials one of those numbers again

        def numbers(offset: int) -> list[str]:
            return history[:half] + [free_number(offset + i) for i in range(count - half)]

        free_a = make_attempts(account, with_list, numbers(count), AttemptState.QUEUED.value, now)
        free_b = make_attempts(account, without, numbers(2 * count), AttemptState.QUEUED.value, now)
        on_list = make_attempts(account, with_list,
                                [dnd_number(rng.randrange(dnd_size)) for _ in range(count)],
                                AttemptState.QUEUED.value, now)
        if backend == "postgresql":
            database.execute_sql("ANALYZE")
        cap = config.Settings().max_attempts_per_number_24h
        timings = time_checks({"empty DND list": (without, free_b),
                               f"{dnd_size:,}-entry DND list": (with_list, free_a),
                               f"{dnd_size:,}-entry list, number on it": (with_list, on_list)},
                              cap, now)
        database.close()
    base = timings["empty DND list"]
    rows = []
    for name, ms in timings.items():
        rows.append((backend, name, len(ms), percentile(ms, 50), percentile(ms, 99), max(ms),
                     percentile(ms, 50) - percentile(base, 50),
                     percentile(ms, 99) - percentile(base, 99)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dnd", type=int, default=1_000_000)
    parser.add_argument("--attempts", type=int, default=3000)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args()
    print(machine_notes())
    rows = []
    with workdir("cpaas-bench-dialcheck") as folder:
        for backend in args.backends.split(","):
            rows += run_backend(backend, folder, args.dnd, args.attempts)
    verdicts = []
    for row in rows:
        extra = row[-1]
        verdicts.append((*row[:3], *(f"{v:.3f}" for v in row[3:]),
                         "baseline" if row[1] == "empty DND list"
                         else ("met" if extra <= TARGET_MS else "missed")))
    print_table(f"dial_check.refusal per attempt (ms; first {WARMUP} of each series not counted)",
                ["backend", "series", "checks", "p50", "p99", "max", "p50 more", "p99 more", "≤ 1 ms p99 more"],
                verdicts)
    print(machine_notes())


if __name__ == "__main__":
    main()
