"""Benchmark: CDR reads over a 10,000,000-row ``cdr`` table on PostgreSQL.

Targets: a ``get_cdr_by_date`` page of 1000 rows (offsets up to 10,000, or any depth with
``after_id``) p99 <= 20 ms; ``get_cdr_statistics`` <= 50 ms.

    .venv/bin/python bench/cdr_query.py [--rows 10000000] [--requests 200]
                                        [--workers 2] [--threads 2]

Loads --rows CDRs into a private PostgreSQL server with ``INSERT … SELECT
generate_series`` (secondary indexes dropped during the load and rebuilt from schema.sql
afterwards, then VACUUM ANALYZE, as autovacuum would), spread over 5 accounts (40 % on
account_1) and 100 days, one call in four from a campaign; fills ``cdr_stats`` from the
table with the writer's counter rules and checks one account against a full count. Then
times the service functions (``cpaas.cdr.service.by_date`` / ``statistics``) in this
process and the same requests end to end over HTTP on gunicorn (``cpaas/gunicorn_conf.py``,
one client on loopback, keep-alive; the response body is read in full).
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import random
import sys
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

FIRST_DAY = date(2025, 1, 1)
DAYS = 100
#: g % 20 → account slot: 8 of 20 for account_1, 3 each for four others.
SLOTS = [0] * 8 + [1] * 3 + [2] * 3 + [3] * 3 + [4] * 3
CAMPAIGNS_PER_ACCOUNT = 8
PAGE_P99_TARGET_MS = 20.0
STATS_TARGET_MS = 50.0
CHUNK = 1_000_000
LOAD_TIME_LIMIT_S = 1800


# -- data ------------------------------------------------------------------------------------

def _dial_status_sql() -> str:
    # A fixed pseudo-random mix: 60 % answered, the rest spread over the other outcomes.
    return ("CASE WHEN h < 600 THEN 'ANSWER' WHEN h < 750 THEN 'NOANSWER' WHEN h < 850 THEN 'BUSY' "
            "WHEN h < 900 THEN 'CANCEL' WHEN h < 950 THEN 'CONGESTION' WHEN h < 985 THEN 'CHANUNAVAIL' "
            "ELSE CASE WHEN g % 4 = 0 THEN 'DND' ELSE 'CHANUNAVAIL' END END")


def insert_sql(rows: int, account_ids: list[str]) -> str:
    """INSERT … SELECT of CDRs g = {lo}..{hi} (the id is g); fill in with str.format."""
    from cpaas.telephony.outcomes import CALL_STATUS

    accounts = "ARRAY[" + ",".join(f"'{a}'" for a in account_ids) + "]"
    slots = "ARRAY[" + ",".join(str(s + 1) for s in SLOTS) + "]"
    secs_per_row = DAYS * 86400 / rows
    call_status = "CASE d.dial_status " + " ".join(
        f"WHEN '{k}' THEN {('NULL' if v is None else repr(v))}" for k, v in CALL_STATUS.items()
    ) + " ELSE 'CHANUNAVAIL' END"
    columns = ["id", "account_id", "request_id", "campaign_id", "list_id", "uniqueid", "agent_number",
               "customer_number", "dialed_number", "caller_id", "call_date", "answer_at", "end_at",
               "billsec", "call_duration", "call_status", "dial_status", "destination_context",
               "call_direction", "dtmf_inputs", "recording_name", "is_dnd"]
    values = [
        "d.g",
        "d.account_id",
        "CASE WHEN d.campaign THEN '' ELSE lpad(to_hex(d.g), 10, '0') END",
        f"CASE WHEN d.campaign THEN 'CM' || lpad(to_hex(d.slot * 16 + (d.g / 4) % {CAMPAIGNS_PER_ACCOUNT}), 10, '0') END",
        f"CASE WHEN d.campaign THEN 'LS' || lpad(to_hex(d.slot * 16 + (d.g / 4) % {CAMPAIGNS_PER_ACCOUNT}), 10, '0') ELSE '' END",
        "CASE WHEN d.dial_status = 'DND' THEN '' ELSE (1700000000 + d.g)::text || '.' || (d.g % 1000)::text END",
        "CASE WHEN d.campaign THEN '' ELSE '9180006' || lpad((d.g % 100000)::text, 5, '0') END",
        "'9199792' || lpad((d.g % 100000)::text, 5, '0')",
        "'9199792' || lpad((d.g % 100000)::text, 5, '0')",
        "'15168148111'",
        "d.call_date",
        "CASE WHEN d.dial_status = 'ANSWER' THEN d.call_date - make_interval(secs => d.billsec::float8) END",
        "CASE WHEN d.dial_status = 'ANSWER' THEN d.call_date END",
        "(CASE WHEN d.dial_status = 'ANSWER' THEN d.billsec ELSE 0 END)::real",
        "(CASE WHEN d.dial_status = 'ANSWER' THEN d.billsec + 8.5 WHEN d.dial_status = 'DND' THEN NULL ELSE 21.25 END)::real",
        call_status,
        "d.dial_status",
        "CASE WHEN d.campaign THEN 'local_call_campaign_type_0' ELSE 'click2call' END",
        "CASE WHEN d.campaign THEN 'outbound-campaign' ELSE 'outbound-api' END",
        "CASE WHEN d.campaign AND d.g % 7 = 0 THEN '1' ELSE '' END",
        "CASE WHEN d.dial_status = 'ANSWER' AND d.g % 5 = 0 "
        "THEN 'recordings/' || lpad(to_hex(d.g), 10, '0') || '.wav' ELSE '' END",
        "CASE WHEN d.dial_status = 'DND' THEN 1 ELSE 0 END",
    ]
    selected = ",\n           ".join(f"{v} AS {c}" for c, v in zip(columns, values))
    return f"""
    INSERT INTO cdr ({", ".join(columns)}, api_json)
    SELECT r.*, {_api_json_sql("r").replace("{", "{{").replace("}", "}}")}
    FROM (
    SELECT {selected}
    FROM (
        SELECT s.g, ({accounts})[({slots})[s.g % 20 + 1]] AS account_id,
               ({slots})[s.g % 20 + 1] - 1 AS slot, s.g % 4 = 0 AS campaign,
               TIMESTAMP '{FIRST_DAY} 00:00:00' + make_interval(secs => s.g * {secs_per_row}::float8) AS call_date,
               ((s.g * 7919) % 600 + 1) / 7.0 AS billsec,
               {_dial_status_sql()} AS dial_status
        FROM (SELECT g, (g * 2654435761) % 1000 AS h FROM generate_series({{lo}}::bigint, {{hi}}::bigint) AS g) AS s
    ) AS d
    ) AS r
    """


def _api_json_sql(r: str) -> str:
    """SQL giving what ``cpaas.cdr.writer.api_json`` renders for a row ``r`` (checked on a
    sample after the load): the bulk load cannot go through the Python writer."""
    from cpaas.cdr.writer import API_KEYS, DATE_COLUMNS

    date = "to_char(coalesce({}, 'epoch'::timestamp), 'Dy, DD Mon YYYY HH24:MI:SS \"GMT\"')"
    parts = []
    for n, (key, column) in enumerate(API_KEYS):
        name = f'"{key}":' if n == 0 else f',"{key}":'
        if column == "hangup_cause":             # not loaded: the column's default, ''
            parts += [f"'{name}\"\"'"]
        elif column in DATE_COLUMNS:
            parts += [f"'{name}\"'", date.format(f"{r}.{column}"), "'\"'"]
        elif column == "is_dnd":
            parts += [f"'{name}\"'", f"{r}.{column}", "'\"'"]
        elif column in ("billsec", "call_duration"):
            parts += [f"'{name}'", f"coalesce({r}.{column}::text, 'null')"]
        else:
            parts += [f"'{name}'", f"coalesce(to_json({r}.{column}), 'null')"]
    return f"concat({', '.join(parts)}, '}}')"


def stats_sql() -> str:
    """cdr_stats from the table, with the writer's rules (cpaas.cdr.writer.COUNTER_FOR)."""
    from cpaas.cdr.writer import COUNTER_FOR, COUNTERS

    by_column = {column: status for status, column in COUNTER_FOR.items()}
    exprs = ", ".join(f"count(*) FILTER (WHERE dial_status = '{by_column[name]}')"
                      if name != "total_calls" else "count(*)" for name in COUNTERS)
    columns = ", ".join(COUNTERS)
    return (f"INSERT INTO cdr_stats (account_id, campaign_id, {columns}) "
            f"SELECT account_id, '', {exprs} FROM cdr GROUP BY account_id "
            f"UNION ALL SELECT account_id, campaign_id, {exprs} FROM cdr "
            f"WHERE campaign_id IS NOT NULL GROUP BY account_id, campaign_id")


def load(url: str, rows: int, account_ids: list[str]) -> dict[str, float]:
    """Fill the cdr table and cdr_stats; returns timings."""
    import psycopg2

    from cpaas import db

    timings = {}
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        # A bulk load: fewer checkpoints, more memory for the index builds.
        cur.execute("ALTER SYSTEM SET max_wal_size = '16GB'")
        cur.execute("ALTER SYSTEM SET checkpoint_timeout = '30min'")
        cur.execute("SELECT pg_reload_conf()")
        for index in ("cdr_account_date", "cdr_account_request", "cdr_account_campaign", "cdr_uniqueid"):
            cur.execute(f"DROP INDEX IF EXISTS {index}")
    sql = insert_sql(rows, account_ids)
    chunks = [(lo, min(rows, lo + CHUNK - 1)) for lo in range(1, rows + 1, CHUNK)]
    started = time.perf_counter()
    errors: list[BaseException] = []

    def loader(mine: list[tuple[int, int]]) -> None:
        try:
            conn = psycopg2.connect(url)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SET synchronous_commit = off")
                for lo, hi in mine:
                    if time.perf_counter() - started > LOAD_TIME_LIMIT_S:
                        raise TimeoutError("load took too long")
                    cur.execute(sql.format(lo=lo, hi=hi))
            conn.close()
        except BaseException as err:  # noqa: BLE001 - re-raised below
            errors.append(err)

    # Two loaders (2 cores), each on every other chunk.
    threads = [threading.Thread(target=loader, args=(chunks[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    timings["insert_s"] = time.perf_counter() - started
    with admin.cursor() as cur:
        cur.execute("SELECT setval('cdr_id_seq', %s)", (rows,))
    started = time.perf_counter()
    database = db.init(url)
    database.connect(reuse_if_open=True)
    database.execute_sql("SET maintenance_work_mem = '1GB'")
    with database.atomic():  # rebuilds the dropped indexes exactly as schema.sql says
        db.execute_sql_file(database, db.SCHEMA_PATH)
    database.close()
    timings["index_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with admin.cursor() as cur:
        cur.execute("VACUUM ANALYZE cdr")
    timings["vacuum_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with admin.cursor() as cur:
        cur.execute("DELETE FROM cdr_stats")
        cur.execute(stats_sql())
        cur.execute("VACUUM ANALYZE cdr_stats")
        cur.execute("CHECKPOINT")
        cur.execute("SELECT pg_size_pretty(pg_total_relation_size('cdr')), pg_size_pretty(pg_relation_size('cdr'))")
        timings["sizes"] = cur.fetchone()
    timings["stats_s"] = time.perf_counter() - started
    admin.close()
    return timings


def check_stats(url: str, account_id: str) -> None:
    """The counters kept in cdr_stats agree with a full count over the table."""
    from cpaas import db
    from cpaas.cdr import service

    database = db.init(url)
    database.connect(reuse_if_open=True)
    got = service.statistics(account_id)
    cur = database.execute_sql("SELECT dial_status, count(*) FROM cdr WHERE account_id = %s GROUP BY 1",
                               (account_id,))
    counts = dict(cur.fetchall())
    want = {"answer_calls": counts.get("ANSWER", 0), "busy_calls": counts.get("BUSY", 0),
            "cancel_calls": counts.get("CANCEL", 0), "chanunavail_calls": counts.get("CHANUNAVAIL", 0),
            "congestion_calls": counts.get("CONGESTION", 0), "noanswer_calls": counts.get("NOANSWER", 0),
            "total_calls": sum(counts.values())}
    assert got == {k: [v] for k, v in want.items()}, (got, want)
    database.close()


def check_api_json(url: str, sample: int = 500) -> None:
    """The JSON the load stored in SQL says what the writer renders for the same rows."""
    from peewee import fn

    from cpaas import db
    from cpaas.cdr.writer import api_json
    from cpaas.models import Cdr

    database = db.init(url)
    database.connect(reuse_if_open=True)
    rows = Cdr.select().order_by(fn.random()).limit(sample)
    checked = 0
    for row in rows:
        fields = {f.name: getattr(row, f.name) for f in Cdr._meta.sorted_fields}
        # Compared as JSON values: PostgreSQL writes the float 0.0 as 0.
        stored, rendered = json.loads("{" + row.api_json), json.loads("{" + api_json(fields))
        assert stored == rendered, (row.id, stored, rendered)
        checked += 1
    assert checked == sample, checked
    database.close()


# -- requests --------------------------------------------------------------------------------

def scenarios(rows: int, requests: int, seed: int = 3) -> list[tuple[str, list[dict]]]:
    """(label, request bodies) for get_cdr_by_date, all for account_1 (40 % of the rows)."""
    rnd = random.Random(seed)
    last_day = FIRST_DAY + timedelta(days=DAYS - 1)

    def day(span: int) -> tuple[str, str]:
        start = FIRST_DAY + timedelta(days=rnd.randrange(0, DAYS - span + 1))
        return str(start), str(start + timedelta(days=span - 1))

    def body(span: int, offset: int = 0, after_id: int | None = None) -> dict:
        if span == DAYS:
            start, end = str(FIRST_DAY), str(last_day)
        else:
            start, end = day(span)
        b = {"start_call_date": start, "end_call_date": end, "record_count": 1000, "offset": offset}
        if after_id is not None:
            b["after_id"] = after_id
        return b

    def anchor() -> int:
        # An id of account_1 (g % 20 < 8) anywhere in the table but the last few pages.
        g = rnd.randrange(1, max(2, rows - 50_000))
        return g - (g % 20) + rnd.randrange(0, 8)

    per_day = rows * SLOTS.count(0) / len(SLOTS) / DAYS
    out = []
    for offset in (0, 1000, 5000, 10000):
        span = max(1, math.ceil((offset + 1000) * 1.5 / per_day))  # 1 day at 10M rows
        out.append((f"{span} day{'s' if span > 1 else ''} (~{per_day * span:,.0f} rows), offset {offset}",
                    [body(span, offset) for _ in range(requests)]))
    out.append(("7 days, offset 10000", [body(7, 10000) for _ in range(requests)]))
    out.append(("100 days (all), offset 10000", [body(DAYS, 10000) for _ in range(requests)]))
    out.append(("100 days, after_id at any depth", [body(DAYS, 0, anchor()) for _ in range(requests)]))
    return out


def parse_dates(b: dict) -> tuple[date, date, int, int, int | None]:
    return (datetime.strptime(b["start_call_date"], "%Y-%m-%d").date(),
            datetime.strptime(b["end_call_date"], "%Y-%m-%d").date(),
            b["record_count"], b["offset"], b.get("after_id"))


def time_service(url: str, account_id: str, plan: list[tuple[str, list[dict]]], requests: int) -> list:
    from cpaas import db
    from cpaas.cdr import service

    database = db.init(url)
    database.connect(reuse_if_open=True)
    results = []
    for label, bodies in plan:
        got = service.by_date(account_id, *parse_dates(bodies[0]))
        assert len(got) == 1000, (label, len(got))
        lat = []
        for b in bodies:
            args = parse_dates(b)
            t0 = time.perf_counter()
            page = service.by_date(account_id, *args)
            lat.append((time.perf_counter() - t0) * 1000)
            assert len(page) == 1000
        results.append(("service", "get_cdr_by_date", label, lat))
    lat = []
    for _ in range(requests * 5):
        t0 = time.perf_counter()
        service.statistics(account_id)
        lat.append((time.perf_counter() - t0) * 1000)
    results.append(("service", "get_cdr_statistics", "account_1", lat))
    database.close()
    return results


class Client:
    """One keep-alive HTTP/1.1 connection to the server on loopback."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Content-Type": "application/json", **c.auth_headers()}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None,
                          headers=self.headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()


def time_http(port: int, plan: list[tuple[str, list[dict]]], requests: int) -> list:
    client = Client(port)
    results = []
    for label, bodies in plan:
        status, data = client.call("POST", "/api/get_cdr_by_date", bodies[0])
        page = json.loads(data)["response"]
        assert status == 200 and len(page["result"]) == 1000, (label, status, data[:300])
        size = len(data)
        lat = []
        for b in bodies:
            t0 = time.perf_counter()
            status, data = client.call("POST", "/api/get_cdr_by_date", b)
            lat.append((time.perf_counter() - t0) * 1000)
            assert status == 200
        results.append(("HTTP", "get_cdr_by_date", f"{label} [{size / 1024:.0f} KB]", lat))
    status, data = client.call("GET", "/api/get_cdr_statistics")
    assert status == 200, data
    lat = []
    for _ in range(requests * 5):
        t0 = time.perf_counter()
        status, _ = client.call("GET", "/api/get_cdr_statistics")
        lat.append((time.perf_counter() - t0) * 1000)
        assert status == 200
    results.append(("HTTP", "get_cdr_statistics", "account_1", lat))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=200, help="requests per scenario")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn threads per worker")
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args()
    print(c.machine_notes())

    from cpaas import accounts, db
    from cpaas.models import Account

    with c.workdir("cpaas-bench-cdr-") as work, c.servers.postgres_server() as url, \
            c.servers.redis_server() as redis_url:
        ids = c.init_platform(url, work)
        database = db.init(url)
        database.connect(reuse_if_open=True)
        for n in range(3, 6):
            accounts.create(f"bench_account_{n}")
        order = ["account_1", "account_2", "bench_account_3", "bench_account_4", "bench_account_5"]
        ids = {a.name: a.id for a in Account.select()}
        database.close()
        account_ids = [ids[n] for n in order]

        started = time.perf_counter()
        timings = load(url, args.rows, account_ids)
        load_s = time.perf_counter() - started
        check_stats(url, ids["account_1"])
        check_api_json(url)
        print(f"loaded {args.rows:,} CDRs in {load_s:.0f} s (insert {timings['insert_s']:.0f} s, "
              f"indexes {timings['index_s']:.0f} s, vacuum analyze {timings['vacuum_s']:.0f} s, "
              f"cdr_stats {timings['stats_s']:.1f} s); table {timings['sizes'][1]}, "
              f"with indexes {timings['sizes'][0]}; cdr_stats agrees with a full count; "
              f"api_json of 500 random rows agrees with the writer's", flush=True)

        plan = scenarios(args.rows, args.requests)
        postmaster = c.postmaster_pid(url)
        meter = c.CpuMeter({"bench": c.os.getpid(), "db": postmaster})
        results = time_service(url, ids["account_1"], plan, args.requests)
        phases = [("service", meter.stop())]
        if not args.no_http:
            env = c.app_env(url, redis_url, work)
            with c.gunicorn(env, args.workers, args.threads, work / "gunicorn-cdr.log") as server:
                meter = c.CpuMeter({"bench": c.os.getpid(), "db": postmaster, "app": server.proc.pid})
                results += time_http(server.port, plan, args.requests)
                phases.append(("HTTP", meter.stop()))
        for name, cpu in phases:
            print(f"{name} phase: {cpu['wall_s']:.1f} s wall; CPU s: "
                  + ", ".join(f"{k[:-6]} {v:.1f}" for k, v in cpu.items() if k.endswith("_cpu_s")))

    rows = []
    for layer, endpoint, label, lat in results:
        target = STATS_TARGET_MS if endpoint == "get_cdr_statistics" else PAGE_P99_TARGET_MS
        p99 = c.percentile(lat, 99)
        rows.append([layer, endpoint, label, len(lat), c.percentile(lat, 50), p99, max(lat),
                     f"{target:.0f}", "met" if p99 <= target else "MISSED"])
    c.print_table(f"CDR reads over {args.rows:,} rows on PostgreSQL (ms; pages of 1000 rows, account_1)",
                  ["layer", "endpoint", "scenario", "n", "p50", "p99", "max", "target p99", "verdict"],
                  rows)
    print(f"\nHTTP: gunicorn {args.workers} workers x {args.threads} threads, one sequential keep-alive"
          " client on 127.0.0.1 reading each body in full; statistics are read from cdr_stats.")


if __name__ == "__main__":
    main()
