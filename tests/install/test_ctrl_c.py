"""Ctrl-C on `make run` stops every process cleanly: Redis last, no traceback, status 0."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.install import make_run, terminal

pytestmark = pytest.mark.install
REPO = Path(__file__).resolve().parents[2]
PROCESSES = {line.split(":", 1)[0] for line in (REPO / "Procfile").read_text().splitlines()
             if line.strip() and not line.startswith("#")}


def _make_run(env: dict[str, str], log: Path) -> terminal.Terminal:
    # -o: never refresh the shared .venv from inside a test (the lead's run owns it).
    return terminal.start(["make", "--no-print-directory", "-o", ".venv/.installed", "run"],
                          log, env=env, cwd=REPO)


def test_ctrl_c_on_make_run_stops_every_process_cleanly_redis_last(tmp_path: Path) -> None:
    # A hold long enough that the second call is still up when Ctrl-C is typed.
    env = {**os.environ, **make_run.ports_env(), "CPAAS_DATA_DIR": str(tmp_path / "var"),
           "CPAAS_SANDBOX_HOLD": "8"}
    url = make_run.base_url(env)
    term = _make_run(env, tmp_path / "make-run.log")
    try:
        make_run.wait_healthy(term, url, timeout=120)
        api = make_run.Account(url, tmp_path / "var" / "credentials")
        assert api.cdr(api.click2call())["dial_status"] == "ANSWER"
        cut = api.click2call()
        api.bridged(cut)
        term.ctrl_c()
        assert term.wait(60) == 0, term.output()[-6000:]
        make_run.assert_clean_stop(term.output(), PROCESSES)
    finally:
        term.close()

    # Started again on the same data, the call the stop cut short gets its one CDR.
    again = _make_run(env, tmp_path / "make-run-again.log")
    try:
        make_run.wait_healthy(again, url, timeout=120)
        api.cdr(cut)
        assert len(api.cdrs(cut)) == 1
        again.ctrl_c()
        assert again.wait(60) == 0, again.output()[-6000:]
    finally:
        again.close()
