"""Every third-party import of the code, the tests and the benchmarks comes from a pinned
line of requirements.txt (or of the optional requirements-gpl.txt), so a fresh install
gets the versions tested here (a package that only arrives through another one's
dependencies can change under us)."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.install
REPO = Path(__file__).resolve().parents[2]
SOURCES = ("app.py", "cpaas", "workers", "pjsua_engine", "sandbox_carrier", "freeswitch",
           "tests", "bench")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


#: requirements.txt, and the optional GPL extra (piper), pinned alike.
REQUIREMENTS = ("requirements.txt", "requirements-gpl.txt")


def _pinned() -> set[str]:
    pins = set()
    lines = [line for name in REQUIREMENTS for line in (REPO / name).read_text().splitlines()]
    for line in lines:
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            assert "==" in requirement, f"not an exact pin: {line!r}"
            pins.add(_normal(re.sub(r"\[.*\]", "", requirement.split("==", 1)[0])))
    return pins


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module name → files importing it, leaving out the stdlib and our own."""
    found: dict[str, set[str]] = {}
    for source in SOURCES:
        path = REPO / source
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for top in {name.split(".")[0] for name in names}:
                    ours = (REPO / top).exists() or (REPO / f"{top}.py").exists() or \
                        (file.parent / f"{top}.py").exists()  # a script's sibling (bench/)
                    if top not in sys.stdlib_module_names and not ours:
                        found.setdefault(top, set()).add(str(file.relative_to(REPO)))
    return found


def _optional(module: str, files: set[str]) -> bool:
    """An import of a package that is not installed here is fine when it is the optional
    GPL extra's (requirements-gpl.txt, installed on request) and every file imports it
    only inside a function or a ``try`` (never at import time: the code runs without it)."""
    extra = {_normal(line.split("==", 1)[0]) for line in
             (REPO / "requirements-gpl.txt").read_text().splitlines()
             if "==" in line.split("#", 1)[0]}
    if not any(name == _normal(module) or name.startswith(_normal(module) + "-") for name in extra):
        return False
    for name in files:
        tree = ast.parse((REPO / name).read_text())
        guarded = {id(n) for t in ast.walk(tree)
                   if isinstance(t, (ast.Try, ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(t) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in guarded:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(n.split(".")[0] == module for n in names):
                    return False
    return True


def test_every_third_party_import_comes_from_a_pinned_line() -> None:
    pinned, providers = _pinned(), importlib.metadata.packages_distributions()
    unpinned = {}
    for module, files in sorted(_third_party_imports().items()):
        distributions = {_normal(d) for d in providers.get(module, [])}
        if not distributions and _optional(module, files):
            continue
        if not distributions & pinned:
            unpinned[module] = (sorted(distributions) or ["not installed"], sorted(files)[:3])
    assert not unpinned, f"imported but not pinned in requirements.txt: {unpinned}"
