"""`make run`'s process manager: the Procfile under honcho, as the terminal's foreground job.

Ctrl-C sends SIGINT to the terminal's foreground process group. Had the manager stayed
in make's group, make would die of that SIGINT ("make: *** Interrupt", status 130)
however cleanly the processes stopped. So, as a shell's job control does, the manager
runs in a process group of its own that it makes the terminal's foreground, and make
only sees its exit status: 0 when a signal stopped the platform and every process
exited 0.

``python -m cpaas.supervisor [Procfile]``
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from honcho import environ
from honcho import manager as honcho_manager

#: Seconds between the first process stopping and SIGKILL for the rest. honcho's 5 is
#: shorter than the engine may take to hang up live calls, and Redis waits for everyone.
KILL_WAIT = 30


def manage(procfile: Path) -> int:
    """Run the Procfile's processes until one stops or a signal arrives; our exit status."""
    honcho_manager.KILL_WAIT = KILL_WAIT
    manager = honcho_manager.Manager()
    processes = environ.parse_procfile(procfile.read_text()).processes
    for p in environ.expand_processes(processes, env={"PYTHONUNBUFFERED": "1"}):
        manager.add_process(p.name, p.cmd, quiet=p.quiet, env={**os.environ, **p.env})
    # A closed terminal stops the platform as Ctrl-C does (honcho handles INT and TERM).
    signal.signal(signal.SIGHUP, lambda *_: manager.terminate())
    manager.loop()
    # honcho 2.0 keeps each process's status here; its own returncode is 130 after Ctrl-C.
    codes = [p.get("returncode") for p in manager._processes.values()]
    if all(code == 0 for code in codes):
        return 0
    first = manager.returncode
    return first if first and first > 0 and first not in (130, 143) else 1


def _terminal() -> int | None:
    """Our controlling terminal, if we are its foreground job (not `make run &`)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        if os.tcgetpgrp(fd) == os.getpgrp():
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _hand_terminal(fd: int, pgrp: int) -> None:
    # A process outside the foreground group that calls tcsetpgrp gets SIGTTOU.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, pgrp)
    except OSError:
        pass
    finally:
        signal.signal(signal.SIGTTOU, previous)


def foreground(argv: list[str]) -> int:
    """Run ``argv`` in a process group of its own, as the terminal's foreground job."""
    tty = _terminal()
    job = subprocess.Popen(argv, process_group=0)
    # What still reaches us (make passes SIGTERM on; no terminal: the group's SIGINT) goes on.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda sig, _frame: job.send_signal(sig))
    if tty is not None:
        _hand_terminal(tty, job.pid)
    try:
        code = job.wait()
    finally:
        if tty is not None:
            _hand_terminal(tty, os.getpgrp())
            os.close(tty)
    return code if code >= 0 else 128 - code


def main(argv: list[str]) -> int:
    """``[Procfile]`` runs it in the foreground; ``--manage Procfile`` is that job itself."""
    if argv[:1] == ["--manage"] and len(argv) == 2:
        return manage(Path(argv[1]))
    if len(argv) > 1:
        sys.stderr.write("usage: python -m cpaas.supervisor [Procfile]\n")
        return 2
    procfile = argv[0] if argv else "Procfile"
    return foreground([sys.executable, "-m", "cpaas.supervisor", "--manage", procfile])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
