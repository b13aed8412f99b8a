"""Launch and observe the sandbox carrier: one SIPp process acting as a SIP carrier.

The carrier's behaviour lives in ``scenario.xml`` (a template); this module fills
in the timings, writes the result to a file, starts ``sipp`` on it and waits until
it answers SIP. See the package docstring for the number plan.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Optional, Union
from urllib.parse import unquote

from cpaas.config import DEFAULT_RING_TIMEOUT

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5070
#: An answered call lasts this many times the platform's ring timeout
#: (CPAAS_RING_TIMEOUT) unless CPAAS_SANDBOX_HOLD says otherwise. A click2call's agent
#: is answered at once and held while the customer rings: a hold no longer than the
#: ring timeout hangs the agent up first, and an unanswered customer would end CANCEL
#: instead of NOANSWER.
HOLD_PER_RING_TIMEOUT = 2.0
DEFAULT_HOLD_SECONDS = HOLD_PER_RING_TIMEOUT * DEFAULT_RING_TIMEOUT
#: The recording played to callers of numbers ending in 700 (PCMA, about 7 s).
RECORDING = "/usr/share/sip-tester/g711a.pcap"
#: Seconds between answering a ``...55d`` call and sending its INFO digit.
DTMF_DELAY_SECONDS = 3.0
#: A ``...480`` call rings this long without a CANCEL before it gets a 480, so
#: that a caller that never gives up cannot pin a SIPp call slot forever.
RING_TIMEOUT_SECONDS = 120.0
#: Name of the INVITE log inside ``log_dir`` (see :func:`count_invites`).
INVITE_LOG = "invites.log"
#: Name of the full SIP message trace inside ``log_dir``.
MESSAGE_LOG = "messages.log"
#: Name of sipp's error log inside ``log_dir`` (aborted calls, hold time-outs).
ERROR_LOG = "errors.log"

_TEMPLATE = Path(__file__).with_name("scenario.xml")
_MARKER = re.compile(r"%%([A-Z_]+)%%")


class CarrierError(RuntimeError):
    """The carrier could not be started or did not come up."""


class CarrierProcess(subprocess.Popen):
    """The running ``sipp`` process, with where it listens and where it logs.

    A plain :class:`subprocess.Popen` plus a few attributes, so callers that only
    want a process handle can treat it as one.
    """

    host: str
    port: int
    workdir: Path
    log_dir: Optional[Path]
    #: Temporary directory created by :func:`start`, removed by :func:`stop`.
    owned_dir: Optional[Path]

    @property
    def invite_log(self) -> Optional[Path]:
        """The file :func:`count_invites` reads, or None when not logging."""
        return self.log_dir / INVITE_LOG if self.log_dir else None


@dataclass(frozen=True)
class CarrierSettings:
    """Where the carrier listens, how long it holds calls, where it logs."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    hold: float = DEFAULT_HOLD_SECONDS
    log_dir: Optional[str] = None
    media_port: Optional[int] = None
    dtmf_delay: float = DTMF_DELAY_SECONDS


def settings_from_env() -> CarrierSettings:
    """Carrier settings from ``CPAAS_SANDBOX_*`` variables, with the defaults.

    ``CPAAS_SANDBOX_HOST`` (bind and advertised address, default 127.0.0.1;
    it goes into Contact and SDP, so it must be a concrete address, not
    0.0.0.0), ``CPAAS_SANDBOX_PORT`` (default 5070), ``CPAAS_SANDBOX_HOLD``
    (seconds an answered call lasts unless the caller hangs up; default
    :func:`default_hold` of ``CPAAS_RING_TIMEOUT``, 60 s),
    ``CPAAS_SANDBOX_LOG_DIR`` (optional; enables the INVITE and message
    logs), ``CPAAS_SANDBOX_MEDIA_PORT`` (sipp's even RTP echo port; default
    sipp's own, 6000 — set it when several carriers share a machine) and
    ``CPAAS_SANDBOX_DTMF_DELAY`` (seconds from answering a ``...55d`` call to its
    digit; default 3).
    """
    env = os.environ
    return CarrierSettings(
        host=env.get("CPAAS_SANDBOX_HOST") or DEFAULT_HOST,
        port=int(env.get("CPAAS_SANDBOX_PORT") or DEFAULT_PORT),
        hold=float(env.get("CPAAS_SANDBOX_HOLD")
                   or default_hold(float(env.get("CPAAS_RING_TIMEOUT") or DEFAULT_RING_TIMEOUT))),
        log_dir=env.get("CPAAS_SANDBOX_LOG_DIR") or None,
        media_port=int(env["CPAAS_SANDBOX_MEDIA_PORT"]) if env.get("CPAAS_SANDBOX_MEDIA_PORT") else None,
        dtmf_delay=float(env.get("CPAAS_SANDBOX_DTMF_DELAY") or DTMF_DELAY_SECONDS),
    )


def default_hold(ring_timeout: float) -> float:
    """The hold used when none is configured: longer than the ring timeout (see
    :data:`HOLD_PER_RING_TIMEOUT`)."""
    return HOLD_PER_RING_TIMEOUT * ring_timeout


def _ms(seconds: float) -> int:
    # To sipp a zero timeout means "wait forever", so never go below 1 ms.
    return max(1, int(round(seconds * 1000)))


def build_scenario(hold_seconds: float, *, recording: Optional[str] = RECORDING,
                   dtmf_delay_seconds: float = DTMF_DELAY_SECONDS,
                   ring_timeout_seconds: float = RING_TIMEOUT_SECONDS) -> str:
    """Return the scenario XML with every timing filled in.

    ``hold_seconds`` is how long an answered call lasts (counted from the
    answer) before the carrier sends BYE. A ``...55d`` call always sends its
    digit first, so it lasts at least ``dtmf_delay_seconds`` plus one second.
    ``recording`` is the pcap played to ``...700`` callers (RTP, PCMA,
    payload 8); None answers those calls without sending any audio.
    """
    if hold_seconds <= 0:
        raise ValueError("hold_seconds must be positive")
    if dtmf_delay_seconds <= 0:
        raise ValueError("dtmf_delay_seconds must be positive")
    play = ""
    if recording is not None:
        if any(ch in recording for ch in '<>&"'):
            raise ValueError(f"recording path cannot go into XML: {recording!r}")
        play = f'<action><exec play_pcap_audio="{recording}"/></action>'
    values = {
        "HOLD_MS": str(_ms(hold_seconds)),
        "DTMF_DELAY_MS": str(_ms(dtmf_delay_seconds)),
        "HOLD_AFTER_DTMF_MS": str(_ms(max(hold_seconds - dtmf_delay_seconds, 1.0))),
        "RING_TIMEOUT_MS": str(_ms(ring_timeout_seconds)),
        "PLAY_RECORDING": play,
    }
    text = _TEMPLATE.read_text(encoding="iso-8859-1")
    missing = {name for name in _MARKER.findall(text) if name not in values}
    if missing:
        raise ValueError(f"scenario template has unknown markers: {sorted(missing)}")
    return _MARKER.sub(lambda m: values[m.group(1)], text)


def raw_sockets_allowed() -> bool:
    """Whether this process (and so a sipp child) may open a raw UDP socket.

    sipp plays pcap files through a raw socket, which needs root or
    CAP_NET_RAW; without it sipp exits on the first playback, taking every
    call with it.
    """
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP).close()
    except OSError:
        return False
    return True


def playable_recording(path: str = RECORDING) -> Optional[str]:
    """``path`` when sipp can play it here, else None (with a warning)."""
    if not os.path.isfile(path):
        log.warning("recording %s is missing: calls to ...700 will be silent", path)
        return None
    if not raw_sockets_allowed():
        log.warning("no raw sockets (not root, no CAP_NET_RAW): calls to ...700 "
                    "will be silent instead of playing %s", path)
        return None
    return path


def sipp_command(scenario_path: Union[str, Path], host: str, port: int, *,
                 log_dir: Optional[Union[str, Path]] = None,
                 media_port: Optional[int] = None, sipp: str = "sipp") -> list[str]:
    """The sipp command line that runs the carrier scenario.

    ``-bind_local`` keeps SIP on ``host`` only and ``-ci`` does the same for
    sipp's remote-control socket (which otherwise listens on every address and
    accepts a quit command from anyone). ``-watchdog_interval 0`` stops sipp
    from exiting after repeated scheduling stalls on a loaded machine; a
    carrier that dies takes the whole Procfile down with it.
    """
    cmd = [sipp, "-sf", str(scenario_path),
           "-i", host, "-p", str(port), "-bind_local",
           "-mi", host, "-ci", host,
           "-rtp_echo", "-aa", "-nostdin",
           "-watchdog_interval", "0"]
    if media_port:
        cmd += ["-mp", str(media_port)]
    if log_dir is not None:
        log_dir = Path(log_dir)
        cmd += ["-trace_logs", "-log_file", str(log_dir / INVITE_LOG),
                "-trace_msg", "-message_file", str(log_dir / MESSAGE_LOG),
                "-trace_err", "-error_file", str(log_dir / ERROR_LOG)]
    return cmd


def probe(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something at ``host:port`` answers a SIP OPTIONS with 200 over UDP."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((target, 0))
        local_port = sock.getsockname()[1]
        token = secrets.token_hex(8)
        request = (
            f"OPTIONS sip:probe@{target}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {target}:{local_port};branch=z9hG4bK{token};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{target}:{local_port}>;tag={token}\r\n"
            f"To: <sip:probe@{target}:{port}>\r\n"
            f"Call-ID: {token}@cpaas-probe\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.settimeout(timeout)
        try:
            sock.sendto(request.encode(), (target, port))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                data = sock.recv(65535)
                if token.encode() in data:
                    return data.startswith(b"SIP/2.0 200")
        except OSError:
            # Timeout, or ICMP port-unreachable surfacing as ECONNREFUSED.
            return False
    return False


def wait_ready(host: str, port: int, timeout: float = 10.0,
               proc: Optional[subprocess.Popen] = None) -> None:
    """Block until the carrier answers OPTIONS; raise :class:`CarrierError` if not.

    Gives up early when ``proc`` has exited (a bad scenario, a port in use).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise CarrierError(f"sipp exited with code {proc.returncode} before answering "
                               f"on {host}:{port}")
        if probe(host, port, timeout=0.3) and (proc is None or proc.poll() is None):
            return
    raise CarrierError(f"sandbox carrier on {host}:{port} did not answer within {timeout} s")


def _ensure_port_free(host: str, port: int) -> None:
    # sipp does refuse a taken port, but only after the readiness probe may
    # already have been answered by whoever holds it. sipp binds its UDP
    # socket without SO_REUSEADDR, so a plain bind here sees it exactly.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CarrierError(f"cannot listen on {host}:{port}: {exc}") from exc


def start(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          hold: float = DEFAULT_HOLD_SECONDS,
          log_dir: Optional[Union[str, Path]] = None, *, wait: bool = True,
          timeout: float = 10.0, media_port: Optional[int] = None,
          ring_timeout: float = RING_TIMEOUT_SECONDS,
          dtmf_delay: float = DTMF_DELAY_SECONDS,
          stdout: Optional[IO[Any]] = None,
          stderr: Optional[IO[Any]] = None) -> CarrierProcess:
    """Start the carrier and, unless ``wait`` is False, wait until it answers SIP.

    ``hold`` is how long answered calls last before the carrier hangs up;
    ``ring_timeout`` how long a ``...480`` call rings before it gets a 480;
    ``dtmf_delay`` how long after answering a ``...55d`` call its digit is sent;
    ``media_port`` pins sipp's echo port (default: the first free even port
    from 6000).

    ``log_dir`` (created if missing) receives the generated scenario, the
    INVITE log read by :func:`count_invites`, the SIP message trace and sipp's
    error log. These grow with every call, so leave it unset for a
    long-running carrier: then nothing is traced and the scenario lives in a
    temporary directory that :func:`stop` removes. ``stdout``/``stderr`` are
    passed to :class:`subprocess.Popen`; by default they go to files in the
    work directory so that sipp cannot block on a pipe nobody reads.
    """
    sipp = shutil.which("sipp")
    if sipp is None:
        raise CarrierError("sipp is not installed (Debian package sip-tester)")
    _ensure_port_free(host, port)
    owned: Optional[Path] = None
    if log_dir is None:
        owned = Path(tempfile.mkdtemp(prefix="cpaas-carrier-"))
        workdir = owned
    else:
        workdir = Path(log_dir)
        workdir.mkdir(parents=True, exist_ok=True)
    scenario_path = workdir / "sandbox_carrier.xml"
    scenario = build_scenario(hold, recording=playable_recording(),
                              ring_timeout_seconds=ring_timeout,
                              dtmf_delay_seconds=dtmf_delay)
    scenario_path.write_text(scenario, encoding="iso-8859-1")
    cmd = sipp_command(scenario_path, host, port,
                       log_dir=log_dir, media_port=media_port, sipp=sipp)
    log.info("starting sandbox carrier on %s:%d (hold %.1f s): %s",
             host, port, hold, " ".join(cmd))
    out = stdout if stdout is not None else open(workdir / "sipp.stdout", "wb")
    err = stderr if stderr is not None else open(workdir / "sipp.stderr", "wb")
    try:
        proc = CarrierProcess(cmd, cwd=workdir, stdin=subprocess.DEVNULL,
                              stdout=out, stderr=err)
    finally:
        # The child holds its own copies of the descriptors.
        for stream, given in ((out, stdout), (err, stderr)):
            if given is None:
                stream.close()
    proc.host, proc.port, proc.workdir = host, port, workdir
    proc.log_dir = Path(log_dir) if log_dir is not None else None
    proc.owned_dir = owned
    if wait:
        try:
            wait_ready(host, port, timeout=timeout, proc=proc)
        except CarrierError:
            stop(proc)
            raise
    return proc


def stop(proc: subprocess.Popen, timeout: float = 5.0) -> Optional[int]:
    """Stop the carrier (SIGTERM, then SIGKILL) and remove its temporary files."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("sipp pid %d ignored SIGTERM; killing it", proc.pid)
            proc.kill()
            proc.wait(timeout)
    owned = getattr(proc, "owned_dir", None)
    if owned is not None:
        shutil.rmtree(owned, ignore_errors=True)
    return proc.returncode


_INVITE_LINE = re.compile(r"^INVITE user=(\S*) ")


def _log_lines(log_path: Union[str, Path]) -> list[str]:
    """The lines of the INVITE log (``log_path`` is it or its folder); none yet: []."""
    path = Path(log_path)
    if path.is_dir():
        path = path / INVITE_LOG
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def invited_numbers(log_path: Union[str, Path]) -> list[str]:
    """The dialed user part of every INVITE the carrier received, in order.

    Reads the ``invites.log`` written when the carrier runs with a ``log_dir``.
    Retransmitted INVITEs are not listed (sipp absorbs them before logging).
    """
    numbers = []
    for line in _log_lines(log_path):
        match = _INVITE_LINE.match(line)
        if match:
            # The user part is logged as sent, so "+" may arrive as "%2B".
            numbers.append(unquote(match.group(1)))
    return numbers


#: sipp's [timestamp]: local date, time and epoch seconds, separated by tabs.
_INVITE_AT = re.compile(r"^INVITE user=(\S*) call_id=\S* at=\S+\t\S+\t(\d+\.\d+) ")


def invite_times(log_path: Union[str, Path], number: str) -> list[float]:
    """When each INVITE for ``number`` reached the carrier (epoch seconds), in order."""
    times = []
    for line in _log_lines(log_path):
        match = _INVITE_AT.match(line)
        if match and _same_number(unquote(match.group(1)), number):
            times.append(float(match.group(2)))
    return times


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


def _same_number(dialed: str, number: str) -> bool:
    """Equal, or (for numbers with digits) equal on their digits only."""
    wanted = _digits(number)
    return dialed == number or bool(wanted and _digits(dialed) == wanted)


def count_invites(log_path: Union[str, Path], number: str) -> int:
    """How many INVITEs for ``number`` reached the carrier.

    ``log_path`` is the carrier's ``log_dir`` or its ``invites.log``. Numbers
    that contain digits are compared on their digits only, so ``+14155550100``
    and ``14155550100`` are the same number; other user parts must be equal.
    """
    return sum(1 for dialed in invited_numbers(log_path) if _same_number(dialed, number))
