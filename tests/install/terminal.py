"""Run a command as a user at a terminal does, type Ctrl-C into it, read what it printed.

The command gets a pseudo-terminal of its own as its controlling terminal (``setsid
--ctty``), so it is the terminal driver, not the test, that decides which processes a
Ctrl-C reaches: exactly what happens at a keyboard.
"""
from __future__ import annotations

import os
import pty
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests import servers

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: honcho's line for a process that ended: ``… system | redis stopped (rc=0)``.
_STOPPED = re.compile(r"system\s*\|\s*([\w-]+?)(?:\.\d+)? stopped \(rc=(-?\d+)\)")


@dataclass
class Terminal:
    """A command running on its own pseudo-terminal; its output goes to ``log``."""

    proc: subprocess.Popen
    master: int
    log: Path
    _reader: threading.Thread | None = None
    _chunks: list[bytes] = field(default_factory=list)

    def _read(self) -> None:
        with open(self.log, "ab") as out:
            while True:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # EIO: every process holding the terminal has gone
                    return
                if not data:
                    return
                self._chunks.append(data)
                out.write(data)
                out.flush()

    def output(self) -> str:
        """Everything printed so far, without colours and carriage returns."""
        text = b"".join(self._chunks).decode(errors="replace")
        return _ANSI.sub("", text).replace("\r", "")

    def ctrl_c(self) -> None:
        """Type Ctrl-C (the terminal sends SIGINT to its foreground process group)."""
        os.write(self.master, b"\x03")

    def wait(self, timeout: float) -> int:
        """The command's exit status, once it and its output are done."""
        code = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(10)
        return code

    def close(self) -> None:
        """Kill what is left of the command (a failed test) and release the terminal."""
        if self.proc.poll() is None:
            servers.kill_tree(self.proc.pid)
            self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)
        os.close(self.master)


def start(argv: list[str], log: Path, *, env: dict[str, str] | None = None,
          cwd: Path | None = None, ctty: bool = True) -> Terminal:
    """Start ``argv`` on a new pseudo-terminal.

    With ``ctty`` the command runs under ``setsid --ctty``; without it the command must
    make the terminal its controlling terminal itself (a chroot does it inside).
    """
    master, slave = pty.openpty()
    command = ["setsid", "--ctty", *argv] if ctty else argv
    try:
        proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd)
    finally:
        os.close(slave)
    term = Terminal(proc, master, log)
    term._reader = threading.Thread(target=term._read, daemon=True)
    term._reader.start()
    return term


def stops(text: str) -> list[tuple[str, int]]:
    """(process, exit status) for each process honcho reported stopped, in order."""
    return [(name, int(rc)) for name, rc in _STOPPED.findall(text)]

