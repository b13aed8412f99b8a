"""The Makefile's venv step, on a copy of the Makefile in a temporary folder.

The copy's requirements.txt names no package, so each run costs one venv creation:
what is tested is how the Makefile treats the venv and the interpreter, not pip.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.install
REPO = Path(__file__).resolve().parents[2]
#: The interpreter this suite's venv was made from: a supported one.
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def _project(tmp_path: Path) -> Path:
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / "requirements.txt").write_text("# no packages: only the venv step is tested\n")
    return tmp_path


def _make(project: Path, python: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", f"PYTHON={python}", ".venv/.installed"],
                          cwd=project, capture_output=True, text=True, timeout=300)


def _has_pip(project: Path) -> bool:
    return subprocess.run([str(project / ".venv/bin/python"), "-m", "pip", "--version"],
                          capture_output=True).returncode == 0


def test_a_venv_without_pip_is_rebuilt(tmp_path: Path) -> None:
    project = _project(tmp_path)
    # What `python3 -m venv` leaves behind when ensurepip is missing.
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", str(project / ".venv")], check=True)
    assert not _has_pip(project)
    done = _make(project, BASE_PYTHON)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _has_pip(project)
    assert (project / ".venv/.installed").exists()
    # Once whole, the venv is left alone.
    again = _make(project, BASE_PYTHON)
    assert again.returncode == 0 and "rebuilding" not in again.stdout + again.stderr


def _unsupported_python() -> str | None:
    """A working interpreter of another version: on PATH, or one pyenv built."""
    for version in ("3.13", "3.14", "3.10", "3.9"):
        candidates = [shutil.which(f"python{version}")] + sorted(
            str(p) for p in Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"))
        for found in filter(None, candidates):
            if subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
                return found
    return None


@pytest.mark.skipif(_unsupported_python() is None, reason="no Python other than 3.11/3.12 here")
def test_an_unsupported_python_stops_make_with_one_sentence(tmp_path: Path) -> None:
    project = _project(tmp_path)
    done = _make(project, _unsupported_python())
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "cpaas needs Python 3.11 or 3.12 on x86_64" in said, said
    assert "Debian 12" in said and "Ubuntu 24.04" in said
    assert "Traceback" not in said and "pip" not in said.replace("pjsua2-python", "")
    assert not (project / ".venv").exists(), "nothing is installed for an interpreter that cannot work"
