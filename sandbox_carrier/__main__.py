"""Run the sandbox carrier in the foreground: ``python -m sandbox_carrier``.

Meant for a Procfile: settings come from ``CPAAS_SANDBOX_HOST``,
``CPAAS_SANDBOX_PORT``, ``CPAAS_SANDBOX_HOLD``, ``CPAAS_SANDBOX_LOG_DIR`` and
``CPAAS_SANDBOX_DTMF_DELAY``.
The process lives exactly as long as sipp: SIGTERM and SIGINT are passed on
to sipp, and sipp's exit status becomes ours, except that a stop we were asked
for exits 0.
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
from types import FrameType
from typing import Optional

from sandbox_carrier.carrier import CarrierError, settings_from_env, start, stop, wait_ready

log = logging.getLogger("sandbox_carrier")


class _Forwarder:
    """Signal handler that passes SIGTERM/SIGINT on to sipp.

    Installed before sipp starts, so a signal that arrives while we wait for
    sipp to come up is not lost (the default action would kill only us and
    orphan sipp); it is remembered and delivered once sipp exists.
    """

    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen] = None
        self.pending: Optional[int] = None
        self.signalled = False

    def __call__(self, signum: int, _frame: Optional[FrameType]) -> None:
        self.signalled = True
        if self.proc is None:
            self.pending = signum
            return
        log.info("passing signal %d to sipp (pid %d)", signum, self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def attach(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        if self.pending is not None:
            self(self.pending, None)


def main() -> int:
    """Start sipp, report when it answers, and wait for it to exit."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = settings_from_env()
    forward = _Forwarder()
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        # wait=False: the process must be known to the forwarder before the
        # (possibly slow) readiness wait, during which a signal may arrive.
        # sipp's own output goes straight to ours so the Procfile shows it.
        proc = start(settings.host, settings.port, settings.hold, settings.log_dir,
                     wait=False, media_port=settings.media_port,
                     dtmf_delay=settings.dtmf_delay, stdout=sys.stdout,
                     stderr=sys.stderr)
    except (CarrierError, ValueError) as exc:
        log.error("sandbox carrier did not start: %s", exc)
        return 1
    forward.attach(proc)
    try:
        wait_ready(settings.host, settings.port, proc=proc)
        log.info("sandbox carrier ready on %s:%d (sipp pid %d)",
                 settings.host, settings.port, proc.pid)
    except CarrierError as exc:
        # A stop request during start-up is not a failure to start.
        if not forward.signalled:
            log.error("%s", exc)
            stop(proc)
            return 1
    code = proc.wait()
    stop(proc)
    log.info("sipp exited with code %d", code)
    if forward.signalled and code in (0, 1, -signal.SIGTERM, -signal.SIGINT):
        # Asked to stop, and sipp did. Its 1 says only that some sandbox call failed (a
        # call that the platform's own stop hung up mid-scenario, say), not this process.
        return 0
    # A signal-killed child has a negative code; report it the shell's way.
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
