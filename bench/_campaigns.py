"""Shared helpers of the campaign benchmarks (bench/pacing.py, bench/campaign_10k.py):
a campaign created through the API, waiting for it, and the sandbox carrier's INVITE
log read in one pass (not a benchmark itself)."""
from __future__ import annotations

import random
import re
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import requests

from bench._common import percentile, print_table
from tests import launcher

CALLER_ID = "15168148111"
#: One line of the carrier's INVITE log (sandbox_carrier.carrier): the dialed user part,
#: the Call-ID, and sipp's [timestamp] (local date, time, epoch seconds, tab-separated).
_INVITE = re.compile(r"^INVITE user=(\S*) call_id=(\S*) at=\S+\t\S+\t(\d+\.\d+) ")


def headers(account: str) -> dict[str, str]:
    """The API headers of one of the launcher's seeded accounts."""
    return {"account": account, "auth": launcher.SECRETS[account]}


def answering_numbers(count: int, seed: int) -> list[str]:
    """``count`` distinct sandbox numbers that answer (they end in 111)."""
    rng = random.Random(seed)
    numbers: set[str] = set()
    while len(numbers) < count:
        numbers.add("91" + "".join(rng.choice("0123456789") for _ in range(7)) + "111")
    return sorted(numbers)


def _ok(resp: requests.Response) -> dict:
    resp.raise_for_status()
    inner = resp.json()["response"]
    if inner.get("success") != "true":
        raise RuntimeError(f"API refused: {inner}")
    return inner


def _utc(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%d %H:%M:%S")


def load_list(base: str, account: str, name: str, contacts: list[dict]) -> str:
    """A contact list holding ``contacts``, made through the API; returns its id."""
    session = requests.Session()
    session.headers.update(headers(account))
    list_id = _ok(session.post(base + "/api/create_campaign_list",
                               json={"list_name": f"list {name}"}, timeout=30))["list_id"]
    for start in range(0, len(contacts), 10_000):   # the API's per-request maximum
        _ok(session.post(base + "/api/add_contact_to_list", timeout=300, json={
            "list_id": list_id, "contacts": contacts[start:start + 10_000]}))
    return list_id


def create_campaign(base: str, account: str, name: str, list_id: str, **settings: str) -> str:
    """A type-0 campaign over ``list_id``, running from now, in UTC (``settings``
    override the body's fields); returns the campaign id."""
    body = {"list_id": list_id, "dnd_list_id": "", "campaign_name": name,
            "campaign_type": "0", "campaign_caller_id": CALLER_ID, "dynamic_announcement": "1",
            "recorded_filename": "", "announcement_text": "Hello {field1}.",
            "campaign_start_date": _utc(-timedelta(minutes=1)),
            "campaign_end_date": _utc(timedelta(hours=2)), "time_zone": "UTC", "repeat": "1",
            "max_retries": "0", "retry_time": "60", "calls_per_minute": "600",
            "voice": "Joanna", **settings}
    return _ok(requests.post(base + "/api/create_campaign", json=body, headers=headers(account),
                             timeout=30))["campaign_id"]


def details(base: str, account: str, campaign_id: str) -> dict:
    """The campaign's row of ``get_campaign_details``."""
    rows = _ok(requests.get(base + "/api/get_campaign_details", headers=headers(account),
                            timeout=30))["result"]
    return next(row for row in rows if row["campaign_id"] == campaign_id)


def wait_completed(base: str, account: str, campaign_id: str, timeout: float) -> dict:
    """Poll until the campaign is completed (status 3) or ``timeout``; its last details."""
    deadline = time.monotonic() + timeout
    row = details(base, account, campaign_id)
    while row["campaign_status"] != "3" and time.monotonic() < deadline:
        time.sleep(2)
        row = details(base, account, campaign_id)
    return row


def invites(log: Path) -> list[tuple[str, str, float]]:
    """Every INVITE the carrier logged: (dialed user part, Call-ID, arrival epoch)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text(errors="replace").splitlines():
        match = _INVITE.match(line)
        if match:
            out.append((match.group(1), match.group(2), float(match.group(3))))
    return out


def windows(times: list[float], start: float, seconds: float, width: float = 10.0) -> list[int]:
    """How many of ``times`` fall in each ``width``-second window of [start, start + seconds)."""
    counts = [0] * int(seconds // width)
    for t in times:
        i = int((t - start) // width)
        if 0 <= i < len(counts):
            counts[i] += 1
    return counts


def pacing_report(title: str, times: list[float], rate: float, seconds: float,
                  tolerance: float = 0.05, whole_tolerance: float = 0.01) -> dict[str, float]:
    """Print each 10-second window's count and the whole run's rate against ``rate``
    calls per second, from the first INVITE on; returns the figures."""
    times = sorted(times)
    if not times:
        print(f"\n{title}: no INVITE")
        return {}
    start = times[0]
    counts = windows(times, start, seconds)
    ideal = rate * 10
    rows = [(f"{i * 10:3d}-{i * 10 + 10:3d} s", n, f"{(n - ideal) / ideal * 100:+.1f} %",
             "met" if abs(n - ideal) <= ideal * tolerance else "missed")
            for i, n in enumerate(counts)]
    print_table(f"{title}: INVITEs per 10-second window (target {ideal:g} ± {tolerance:.0%})",
                ["window", "INVITEs", "off", "verdict"], rows)
    inside = sum(counts)
    whole = inside / seconds
    # Each INVITE against its place in the ideal schedule (first INVITE + i / rate).
    drift = [(t - (start + i / rate)) * 1000 for i, t in enumerate(times)]
    span_rate = (len(times) - 1) / (times[-1] - start) if len(times) > 1 else 0.0
    print(f"{title}: {inside} INVITEs in the first {seconds:g} s = {whole * 60:.1f}/min "
          f"({(whole - rate) / rate * 100:+.2f} %, target ±{whole_tolerance:.0%}: "
          f"{'met' if abs(whole - rate) <= rate * whole_tolerance else 'missed'}); "
          f"all {len(times)} INVITEs over {times[-1] - start:.1f} s = {span_rate * 60:.1f}/min; "
          f"windows min {min(counts)} max {max(counts)}; offset from the ideal schedule "
          f"p50 {percentile(drift, 50):+.0f} ms, min {min(drift):+.0f}, max {max(drift):+.0f}")
    return {"windows_min": min(counts), "windows_max": max(counts), "per_minute": whole * 60,
            "span_per_minute": span_rate * 60}


def started_at(db_url: str, campaign_id: str) -> list[float]:
    """When the dialer committed each attempt of the campaign (epoch seconds)."""
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT extract(epoch FROM created_at) FROM campaign_attempt"
                    " WHERE campaign_id = %s", (campaign_id,))
        return [float(t) for (t,) in cur.fetchall()]


def turns_report(starts: list[float]) -> None:
    """The scanner's turns that started attempts (their rows share the turn's clock):
    the gaps between them and how many each started."""
    per_turn = Counter(starts)
    at = sorted(per_turn)
    gaps = [(b - a) * 1000 for a, b in zip(at, at[1:])]
    sizes = list(per_turn.values())
    print(f"scanner turns that dialed: {len(at)}; gap between them p50 {percentile(gaps, 50):.0f} ms,"
          f" p90 {percentile(gaps, 90):.0f}, p99 {percentile(gaps, 99):.0f}, max {max(gaps or [0]):.0f};"
          f" attempts per turn p50 {percentile(sizes, 50):.0f}, max {max(sizes or [0])}")
