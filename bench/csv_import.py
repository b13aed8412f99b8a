"""Benchmark: CSV import of contacts (target: 1,000,000 rows in <= 20 s on PostgreSQL,
<= 40 s on SQLite, flat memory; re-importing them into the list that holds them, the
upsert path, within 2x the fresh import; a hostile file of one 200 MB row of commas
refused with a peak RSS at most 20 MB above the 1M-row import's).

    .venv/bin/python bench/csv_import.py [--rows 1000000] [--small 100000]
                                         [--backends postgresql,sqlite] [--no-http]

For each backend, imports a --small and a --rows file through the real service function
(``cpaas.campaigns.csv_import.import_contacts``), each in a fresh process so that its
peak RSS is its own; imports the --rows file again into the list that now holds it (every
row an update), then the hostile file into that list (refused: the list keeps its rows);
then once more through HTTP: the file is uploaded with
``POST /api/upload_file`` and imported with ``POST /api/import_broadcast_contacts_csv`` on
gunicorn (``cpaas/gunicorn_conf.py``, 1 worker). Servers are private (tests/servers.py),
everything lives in a temporary folder that is removed at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

TARGET_S = {"postgresql": 20.0, "sqlite": 40.0}
REIMPORT_FACTOR = 2.0       # the upsert path may take at most this times the fresh import
HOSTILE_BYTES = 200 * 2**20 - 64  # just inside the default upload limit (200 MB)
HOSTILE_RSS_MARGIN_MB = 20.0
BAD_EVERY = 10_000          # one row in this many has a bad number (skipped and reported)
CHILD_TIMEOUT_S = 900


def write_csv(path: Path, rows: int, seed: int = 1) -> int:
    """A contacts file: name, number, two extra fields; returns how many rows are bad."""
    rnd = random.Random(seed)
    cities = ["Pune", "Mumbai", "Delhi", "Chennai", "Kolkata", "Surat", "Jaipur", "Indore"]
    plans = ["gold", "silver", "bronze", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    bad = 0
    with open(path, "w", newline="") as out:
        out.write("contact_name,contact_number,city,plan\n")
        chunk = []
        for i in range(rows):
            if i % BAD_EVERY == BAD_EVERY - 1:
                chunk.append(f"Bad Row {i},12-34,x,y\n")
                bad += 1
            else:
                chunk.append(f"Contact {i},+91{7000000000 + i},{rnd.choice(cities)},{rnd.choice(plans)}\n")
            if len(chunk) >= 10_000:
                out.write("".join(chunk))
                chunk = []
        out.write("".join(chunk))
    return bad


def write_hostile_csv(path: Path, size: int = HOSTILE_BYTES) -> None:
    """A contacts file whose second row is one line of commas filling ``size`` bytes."""
    head = b"contact_name,contact_number\nok,919979270001\nhuge,9199792700"
    with open(path, "wb") as out:
        out.write(head)
        left = size - len(head) - 1
        block = b"," * (1 << 20)
        while left > 0:
            out.write(block[:left])
            left -= len(block)
        out.write(b"\n")


# -- one import in this process (the child) --------------------------------------------------

def child(args: argparse.Namespace) -> None:
    from cpaas import accounts, db
    from cpaas.campaigns import csv_import, service
    from cpaas.models import Contact
    from cpaas.storage import LocalStorage

    from cpaas.envelope import ApiError

    database = db.init(args.db)
    database.connect(reuse_if_open=True)
    account = accounts.verify("account_1", c.SECRETS["account_1"])
    list_id = args.list_id or service.create_list(account.id, f"bench-{uuid.uuid4().hex[:8]}")
    storage = LocalStorage(args.bucket)
    trees = {"import": os.getpid()}
    if args.db.startswith("postgres"):
        trees["db"] = c.postmaster_pid(args.db)
    rss_before = c.rss_mb()
    meter = c.CpuMeter(trees)
    try:
        result = csv_import.import_contacts(storage, account.id, account.name, list_id, args.csv_name)
        outcome = {"imported": result.imported, "skipped": result.skipped,
                   "first_error": result.errors[0] if result.errors else None}
    except ApiError as err:
        outcome = {"refused": err.status, "message": str(err), "imported": 0, "skipped": 0}
    cpu = meter.stop()
    peak = c.rss_mb(field="VmHWM")  # the import's, before the count below (SQLite's page cache)
    stored = Contact.select().where(Contact.list_id == list_id).count()
    print(json.dumps({**outcome, "list_id": list_id, "stored": stored, "rss_before_mb": rss_before,
                      "peak_rss_mb": peak, **cpu}))


def run_child(url: str, bucket: Path, csv_name: str, list_id: str = "") -> dict:
    proc = subprocess.run([c.PYTHON, __file__, "--child", "--db", url, "--bucket", str(bucket),
                           "--csv-name", csv_name, "--list-id", list_id], capture_output=True,
                          text=True, timeout=CHILD_TIMEOUT_S, cwd=c.ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"import failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def reset_contacts(url: str) -> None:
    """Empty the contact table so each run starts alike (PostgreSQL: also checkpoint)."""
    if url.startswith("postgres"):
        import psycopg2

        conn = psycopg2.connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("TRUNCATE contact")
            cur.execute("VACUUM ANALYZE")
            cur.execute("CHECKPOINT")
        conn.close()


def run_into_full_list(backend: str, url: str, bucket: Path, file: tuple[Path, int], fresh: dict,
                       hostile_name: str) -> list[tuple[str, str, int, dict]]:
    """The same rows again into the list that holds them (every row an update), then the
    hostile file into it (refused, the list unchanged)."""
    path, bad = file
    rows = fresh["imported"] + bad
    again = run_child(url, bucket, path.name, fresh["list_id"])
    assert again["imported"] == fresh["imported"] == again["stored"], again
    print(f"  {backend} service re-import {rows:,} rows: {again['wall_s']:.1f} s", flush=True)
    hostile = run_child(url, bucket, hostile_name, fresh["list_id"])
    assert hostile.get("refused") == 400 and hostile["stored"] == fresh["stored"], hostile
    print(f"  {backend} service hostile file: refused in {hostile['wall_s']:.1f} s "
          f"({hostile['message']})", flush=True)
    return [(backend, "service re-import", rows, {**again, "fresh": fresh}),
            (backend, "hostile (refused)", 1, {**hostile, "fresh": fresh})]


def verdict(backend: str, path: str, n: int, r: dict) -> tuple[str, str]:
    """(target, verdict) of one result row."""
    if path == "hostile (refused)":
        limit = r["fresh"]["peak_rss_mb"] + HOSTILE_RSS_MARGIN_MB
        return f"peak <= {limit:.0f} MB", "met" if r["peak_rss_mb"] <= limit else "MISSED"
    if path == "service re-import":
        limit = REIMPORT_FACTOR * r["fresh"]["wall_s"]
        return f"{limit:.0f} (2x fresh)", "met" if r["wall_s"] <= limit else "MISSED"
    target = TARGET_S[backend] * n / 1_000_000
    return (f"{target:.0f}" if n == 1_000_000 else f"({target:.0f})",
            "met" if r["wall_s"] <= target else "MISSED")


# -- once through HTTP on gunicorn -----------------------------------------------------------

def multipart_upload(base: str, path: Path, name: str) -> tuple[int, dict, float]:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file_name\"\r\n\r\n{name}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode()
    body = head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{base}/api/upload_file", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                          **c.auth_headers()})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as resp:
        return resp.status, json.loads(resp.read()), time.perf_counter() - started


def run_http(url: str, redis_url: str, work: Path, csv_path: Path, rows: int) -> dict:
    data_dir = work / "http-data"
    data_dir.mkdir(exist_ok=True)
    env = c.app_env(url, redis_url, data_dir)
    c.init_platform(url, data_dir)
    with c.gunicorn(env, workers=1, threads=2, log_path=work / "gunicorn-csv.log") as server:
        status, body, upload_s = multipart_upload(server.base, csv_path, "bench_http.csv")
        assert status == 200, body
        status, body = c.http_json("POST", f"{server.base}/api/create_campaign_list",
                                   {"list_name": "http-import"}, c.auth_headers())
        assert status == 200, body
        list_id = body["response"]["list_id"]
        worker = server.workers()[0]
        rss_before = c.rss_mb(worker)
        trees = {"import": worker}
        if url.startswith("postgres"):
            trees["db"] = c.postmaster_pid(url)
        meter = c.CpuMeter(trees)
        status, body = c.http_json("POST", f"{server.base}/api/import_broadcast_contacts_csv",
                                   {"list_id": list_id, "csv_name": "bench_http.csv"},
                                   c.auth_headers(), timeout=CHILD_TIMEOUT_S)
        cpu = meter.stop()
        assert status == 200, body
        message = body["response"]["message"]
        return {"imported": int(message.split(")")[0].strip("(")), "skipped": body["response"]["skipped"],
                "rss_before_mb": rss_before, "peak_rss_mb": c.rss_mb(worker, "VmHWM"),
                "upload_s": upload_s, **cpu}


# -- the benchmark ---------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the large file")
    parser.add_argument("--small", type=int, default=100_000, help="rows of the small file (memory check)")
    parser.add_argument("--backends", default=",".join(c.BACKENDS))
    parser.add_argument("--no-http", action="store_true", help="skip the run through gunicorn")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    parser.add_argument("--csv-name", help=argparse.SUPPRESS)
    parser.add_argument("--list-id", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    backends = [b for b in args.backends.split(",") if b]
    print(c.machine_notes())
    sizes = sorted({args.small, args.rows})
    results = []
    with c.workdir("cpaas-bench-csv-") as work:
        bucket = work / "bucket"
        files = {}
        for n in sizes:
            path = bucket / "accounts" / "account_1" / "files" / f"contacts_{n}.csv"
            started = time.perf_counter()
            bad = write_csv(path, n)
            files[n] = (path, bad)
            print(f"wrote {path.name}: {n:,} rows ({bad} bad), {path.stat().st_size / 2**20:.0f} MB "
                  f"in {time.perf_counter() - started:.1f} s")
        hostile = bucket / "accounts" / "account_1" / "files" / "hostile.csv"
        write_hostile_csv(hostile)
        print(f"wrote {hostile.name}: one row of {hostile.stat().st_size / 2**20:.0f} MB of commas")
        for backend in backends:
            for n in sizes:
                folder = work / f"{backend}-{n}"
                folder.mkdir()
                with c.database_url(backend, folder) as url:
                    c.init_platform(url, folder)
                    reset_contacts(url)
                    r = run_child(url, bucket, files[n][0].name)
                    assert r["stored"] == r["imported"] == n - files[n][1], r
                    assert r["skipped"] == files[n][1], r
                    results.append((backend, "service", n, r))
                    print(f"  {backend} service {n:,} rows: {r['wall_s']:.1f} s", flush=True)
                    if n == args.rows:
                        results += run_into_full_list(backend, url, bucket, files[n], r, hostile.name)
            if not args.no_http:
                folder = work / f"{backend}-http"
                folder.mkdir()
                with c.database_url(backend, folder) as url, c.servers.redis_server() as redis_url:
                    r = run_http(url, redis_url, folder, files[args.rows][0], args.rows)
                    assert r["imported"] == args.rows - files[args.rows][1], r
                    results.append((backend, "HTTP", args.rows, r))
                    print(f"  {backend} HTTP {args.rows:,} rows: {r['wall_s']:.1f} s "
                          f"(upload {r['upload_s']:.1f} s)", flush=True)

    rows = []
    for backend, path, n, r in results:
        rows.append([backend, path, n, r["imported"], r["skipped"], r["wall_s"], n / r["wall_s"],
                     r["rss_before_mb"], r["peak_rss_mb"], r["import_cpu_s"], r.get("db_cpu_s", 0.0),
                     r["others_cpu_s"], *verdict(backend, path, n, r)])
    c.print_table("CSV import (contacts; wall = the import call only)",
                  ["backend", "path", "rows", "imported", "skipped", "wall s", "rows/s",
                   "RSS before MB", "peak RSS MB", "app CPU s", "DB CPU s", "others' CPU s",
                   "target", "verdict"], rows)
    print("\napp CPU = the importing process (service: a fresh python; HTTP: the gunicorn worker);"
          " DB CPU = the PostgreSQL server (0 for SQLite: it runs in the app process);"
          " others' CPU = what other processes on this shared machine used meanwhile."
          " Target for sizes other than 1,000,000 is scaled, in parentheses; the re-import's is"
          " twice the fresh import's wall time, the hostile file's the fresh 1M import's peak"
          f" RSS + {HOSTILE_RSS_MARGIN_MB:.0f} MB.")


if __name__ == "__main__":
    main()
