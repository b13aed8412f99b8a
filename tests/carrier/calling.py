"""Helpers for the carrier tests: free ports, PJSUA2 calls in a subprocess, audio level."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox_carrier.carrier import ERROR_LOG

CALLER = Path(__file__).with_name("pj_caller.py")

_MISSING = [name for name, found in (("sipp", shutil.which("sipp")),
                                     ("sox", shutil.which("sox")),
                                     ("pjsua2", importlib.util.find_spec("pjsua2")))
            if not found]
#: Mark for tests that need sipp, sox and PJSUA2 on this machine.
needs_tools = pytest.mark.skipif(bool(_MISSING),
                                 reason=f"carrier tests need {', '.join(_MISSING)}")


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nobody has bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sip_uri(number: str, port: int) -> str:
    """The URI that dials ``number`` through the carrier on ``port``."""
    return f"sip:{number}@127.0.0.1:{port}"


def place_calls(calls: list[dict[str, Any]], workdir: Path,
                max_seconds: float = 20.0) -> list[dict[str, Any]]:
    """Run up to four concurrent PJSUA2 calls (see pj_caller.py) and return their reports.

    The caller runs in its own process because PJSUA2 allows one Endpoint per
    process and pytest may host other PJSUA2 users.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / "spec.json"
    report_path = workdir / "report.json"
    spec_path.write_text(json.dumps({"calls": calls, "max_seconds": max_seconds}))
    result = subprocess.run([sys.executable, str(CALLER), str(spec_path), str(report_path)],
                            capture_output=True, text=True, timeout=max_seconds + 30)
    assert result.returncode == 0, f"PJSUA2 caller failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(report_path.read_text())["calls"]


def place_call(call: dict[str, Any], workdir: Path, max_seconds: float = 20.0) -> dict[str, Any]:
    """One call; see :func:`place_calls`."""
    return place_calls([call], workdir, max_seconds)[0]


def rms(wav: Path) -> float:
    """RMS amplitude (0..1) of a WAV file, as measured by ``sox FILE -n stat``."""
    result = subprocess.run(["sox", str(wav), "-n", "stat"], capture_output=True, text=True,
                            check=True)
    match = re.search(r"RMS\s+amplitude:\s+([0-9.]+)", result.stderr)
    assert match, result.stderr
    return float(match.group(1))


def aborted_calls(log_dir: Path, call_ids: list[str]) -> list[str]:
    """Lines of the carrier's error log saying sipp aborted one of these calls.

    Ordinary hold time-outs and auto-answered INFO/OPTIONS are logged there
    too, so only "aborting" lines count: they mean the scenario did not
    handle what the caller sent, or the caller never sent what it waited for.
    """
    errors = log_dir / ERROR_LOG
    if not errors.exists():
        return []
    text = errors.read_text(errors="replace")
    # sipp does not end every entry with a newline; split on its timestamps.
    entries = re.split(r"(?=\d{4}-\d{2}-\d{2}\t)", text)
    return [entry.strip() for entry in entries
            if any(call_id and call_id in entry for call_id in call_ids)
            and re.search(r"abort", entry, re.IGNORECASE)]
