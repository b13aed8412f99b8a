"""`make run` on a new Debian 12 machine that has only git, make, python3 and curl.

The machine is a chroot of a fresh mmdebstrap root with a pid namespace of its own; it
gets a clone of this checkout's committed HEAD and what every machine here is given
(tests/install/fresh_root.py). `make run` must install everything, answer `/healthz`,
carry a click2call to ANSWER, and stop every process on Ctrl-C with status 0; then
`make test` must install what it adds and pass a few tests.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.install import fresh_root, make_run, terminal
from tests.install.test_ctrl_c import PROCESSES
from tests.launcher import wait_for

pytestmark = pytest.mark.install
REPO = Path(__file__).resolve().parents[2]
#: Seconds for the install and the start, so that the whole test stays under 10 minutes.
START_BUDGET = 480


def _require_root() -> None:
    if os.geteuid() == 0:
        return
    reason = "building and entering a Debian root needs root (mmdebstrap, mount, chroot)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; with CI=true this test never skips")
    pytest.skip(reason)


@pytest.fixture
def machine() -> Path:
    """A fresh root with the checkout cloned at /root/cpaas; deleted afterwards."""
    _require_root()
    fresh_root.CACHE.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=fresh_root.CACHE))
    try:
        root = fresh_root.unpack(run_dir)
        fresh_root.no_services(root)
        fresh_root.clone(REPO, root)
        yield root
    finally:
        wait_for(lambda: not fresh_root.processes_in(run_dir / "root"), 30, "the root's processes")
        fresh_root.remove(run_dir)


def test_make_run_on_a_fresh_debian_12_installs_runs_a_call_and_stops(machine: Path,
                                                                     tmp_path: Path) -> None:
    started = time.monotonic()
    folders = fresh_root.carry_over(machine)
    checkout = machine / "root/cpaas"
    # The new user's first try: Debian's python3 has the venv module but not ensurepip,
    # so this leaves a .venv without pip behind.
    first = subprocess.run(["chroot", str(machine), "/bin/sh", "-c",
                            "cd /root/cpaas && python3 -m venv .venv"],
                           capture_output=True, text=True, timeout=120)
    assert first.returncode != 0 and "ensurepip" in first.stdout + first.stderr, first
    assert (checkout / ".venv/bin/python").exists() and not (checkout / ".venv/bin/pip").exists()

    env = {**fresh_root.LOGIN_ENV, **fresh_root.carried_env(), **make_run.ports_env()}
    term = terminal.start(fresh_root.namespace_command(machine, folders, env,
                                                       "cd /root/cpaas && exec make run"),
                          tmp_path / "make-run.log", ctty=False)
    try:
        url = make_run.base_url(env)
        make_run.wait_healthy(term, url, START_BUDGET - (time.monotonic() - started))
        api = make_run.Account(url, checkout / "var/credentials")
        cdr = api.cdr(api.click2call())
        assert cdr["dial_status"] == "ANSWER", cdr
        term.ctrl_c()
        assert term.wait(90) == 0, term.output()[-6000:]
        output = term.output()
        make_run.assert_clean_stop(output, PROCESSES)
        assert "left running:" not in output, output[-3000:]
        assert not fresh_root.processes_in(machine)
    finally:
        term.close()

    # `make test` too: it adds PostgreSQL; a few tests of the data layer (on PostgreSQL)
    # and of the pins stand for the suite, which this machine is already running.
    tests = terminal.start(fresh_root.namespace_command(
        machine, folders, env, "cd /root/cpaas && exec make test "
        "PYTEST_ARGS='-q tests/data/test_schema.py tests/install/test_pins.py'"),
        tmp_path / "make-test.log", ctty=False)
    try:
        assert tests.wait(300) == 0, tests.output()[-6000:]
        assert re.search(r"\b\d+ passed\b", tests.output()), tests.output()[-3000:]
        assert " failed" not in tests.output() and " skipped" not in tests.output()
    finally:
        tests.close()
