"""The transcriber's low priority holds against every other process on the machine.

With autogroup scheduling (Linux's default on desktops and many servers) a process's
nice value weighs only against processes of its own session; a transcriber that is its
own session (a supervisor that starts each process with setsid, as honcho and
tests/launcher.py do) would compete at full weight with the engine and the call
workers. Run in real child processes: the kernel's own view of their priority.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AUTOGROUP = Path("/proc/self/autogroup")
PROBE = ("import os; from cpaas.procs import lower_priority; lower_priority(); "
         "print(os.getpriority(os.PRIO_PROCESS, 0)); print(open('/proc/self/autogroup').read())")

pytestmark = pytest.mark.skipif(not AUTOGROUP.exists(), reason="kernel without autogroup")


def _probe(new_session: bool) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                         timeout=30, start_new_session=new_session,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    nice, group = out.stdout.splitlines()[:2]
    return int(nice), group


def test_own_session_lowers_its_autogroup() -> None:
    nice, group = _probe(new_session=True)
    assert nice == 19
    assert group.endswith("nice 19")


def test_shared_session_keeps_the_group_priority() -> None:
    """A transcriber sharing its session (make run's supervisor) must not lower the
    group of the processes beside it; its own nice value already ranks it below them."""
    before = AUTOGROUP.read_text().strip()
    nice, group = _probe(new_session=False)
    assert nice == 19
    assert group == before
