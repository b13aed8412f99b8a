"""Capture real ESL byte streams from a local FreeSWITCH, for the wire-format test double.

A raw-socket ESL client (no greenswitch, no parsing of our own on the recorded path):
every byte received and every byte sent is written, with the time since the connection
opened, to ``captures/<scenario>.jsonl``. Each scenario authenticates, subscribes with
``events plain`` to :data:`EVENTS`, drives calls with ``bgapi originate`` and its own
``Job-UUID`` (every leg has ``origination_uuid`` and ``cpaas_*`` variables) and stops when
every leg it placed has hung up.

Run against the loopback-only FreeSWITCH whose gateway ``trunk`` points at the sandbox
carrier (see ``captures/README.md``)::

    .venv/bin/python -m tests.freeswitch.capture --password PW [scenario ...]

A capture file is JSON lines: one ``meta`` record (scenario, description, the uuids the
scenario chose, the FreeSWITCH version), then one record per socket read or write:
``{"conn": 1, "t": 0.001234, "dir": "recv"|"send", "data": "..."}`` (``b64`` in place of
``data`` for bytes that are not UTF-8). :func:`load` reads one back; its
:meth:`Capture.frames` re-splits a connection's received bytes into ESL frames.
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, Optional
from urllib.parse import unquote

log = logging.getLogger("tests.freeswitch.capture")

CAPTURES = Path(__file__).with_name("captures")
EVENTS = ("CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_HANGUP_COMPLETE DTMF "
          "PLAYBACK_START PLAYBACK_STOP RECORD_START RECORD_STOP BACKGROUND_JOB "
          "CHANNEL_EXECUTE_COMPLETE HEARTBEAT")
#: Audio the scenarios play: made by ``make_media`` (espeak-ng + sox, 8 kHz mono).
MEDIA = Path("/tmp/fs-media")
RECORDINGS = Path("/tmp/fs-rec")
#: mod_http_cache's ``location`` on the local node.
HTTP_CACHE = Path("/tmp/fs/var/cache/freeswitch")
#: Fixed ids of the account and request the scenarios pretend to serve.
ACCOUNT = "AC0000000000000000000000000000cap"
GATEWAY = "trunk"


# --- reading a capture back -------------------------------------------------------

@dataclass
class Capture:
    """One capture file: its meta record and its socket records, in order."""

    meta: dict
    records: list[dict]

    def received(self, conn: int = 1) -> list[tuple[float, bytes]]:
        """The chunks read from connection ``conn``, as (seconds, bytes)."""
        return [(r["t"], _bytes(r)) for r in self.records
                if r["conn"] == conn and r["dir"] == "recv"]

    def sent(self, conn: int = 1) -> list[tuple[float, bytes]]:
        """What the client wrote on connection ``conn``, as (seconds, bytes)."""
        return [(r["t"], _bytes(r)) for r in self.records
                if r["conn"] == conn and r["dir"] == "send"]

    def frames(self, conn: int = 1) -> list[tuple[float, bytes]]:
        """Connection ``conn``'s received stream cut into whole ESL frames.

        Each frame is its exact bytes (headers, blank line, ``Content-Length`` bytes of
        body), timed by the read that completed it.
        """
        out: list[tuple[float, bytes]] = []
        buf = b""
        for t, chunk in self.received(conn):
            buf += chunk
            while True:
                size = _frame_size(buf)
                if size is None:
                    break
                out.append((t, buf[:size]))
                buf = buf[size:]
        return out


def load(path: Path | str) -> Capture:
    """Read a capture file written by this tool."""
    lines = Path(path).read_text(encoding="ascii").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return Capture(meta=records[0], records=records[1:])


def _bytes(record: dict) -> bytes:
    if "b64" in record:
        return base64.b64decode(record["b64"])
    return record["data"].encode("utf-8")


def _frame_size(buf: bytes) -> Optional[int]:
    """Length of the first whole frame in ``buf``, or None while it is incomplete."""
    end = buf.find(b"\n\n")
    if end < 0:
        return None
    length = 0
    for line in buf[:end].split(b"\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    size = end + 2 + length
    return size if len(buf) >= size else None


def parse_frame(frame: bytes) -> tuple[dict[str, str], bytes]:
    """A frame's (raw, undecoded) headers and its body."""
    head, _, body = frame.partition(b"\n\n")
    headers = {}
    for line in head.decode("utf-8").split("\n"):
        name, _, value = line.partition(": ")
        headers[name] = value
    return headers, body


def parse_event(body: bytes) -> tuple[dict[str, str], bytes]:
    """A ``text/event-plain`` body's headers (each value URL-decoded on its own, after
    splitting) and the event's own body."""
    head, _, rest = body.partition(b"\n\n")
    headers = {}
    for line in head.decode("utf-8").split("\n"):
        name, _, value = line.partition(": ")
        headers[name] = unquote(value)
    length = int(headers.get("Content-Length", "0") or 0)
    return headers, rest[:length]


# --- recording ----------------------------------------------------------------------

class Recorder:
    """Collects every socket record of a scenario, on any of its connections."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.lock = threading.Lock()

    def add(self, conn: int, t0: float, direction: str, data: bytes) -> None:
        """Keep one read or write, timed from its connection's start."""
        record: dict = {"conn": conn, "t": round(time.monotonic() - t0, 6), "dir": direction}
        try:
            record["data"] = data.decode("utf-8")
        except UnicodeDecodeError:
            record["b64"] = base64.b64encode(data).decode("ascii")
        with self.lock:
            self.records.append(record)


@dataclass
class Event:
    """A decoded event, for the scenario's own waiting (never written)."""

    headers: dict[str, str]
    body: bytes

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")

    def get(self, key: str, default: str = "") -> str:
        return self.headers.get(key, default)


class RawESL:
    """One raw ESL connection: a reader thread records and splits frames."""

    def __init__(self, host: str, port: int, recorder: Recorder, conn: int) -> None:
        self.recorder = recorder
        self.conn = conn
        self.t0 = time.monotonic()
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.settimeout(None)
        self.cond = threading.Condition()
        self.replies: list[tuple[dict[str, str], bytes]] = []
        self.events: list[Event] = []
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            self.recorder.add(self.conn, self.t0, "recv", chunk)
            buf += chunk
            while (size := _frame_size(buf)) is not None:
                self._dispatch(buf[:size])
                buf = buf[size:]
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _dispatch(self, frame: bytes) -> None:
        headers, body = parse_frame(frame)
        with self.cond:
            if headers.get("Content-Type") == "text/event-plain":
                ev_headers, ev_body = parse_event(body)
                self.events.append(Event(ev_headers, ev_body))
            else:
                self.replies.append((headers, body))
            self.cond.notify_all()

    def send(self, text: str) -> None:
        """Write ``text`` exactly (the caller ends it with a blank line)."""
        data = text.encode("utf-8")
        self.recorder.add(self.conn, self.t0, "send", data)
        self.sock.sendall(data)

    def reply(self, timeout: float = 10.0) -> tuple[dict[str, str], bytes]:
        """The next non-event frame (auth/request, command/reply, api/response...)."""
        with self.cond:
            if not self.cond.wait_for(lambda: self.replies or self.closed, timeout):
                raise TimeoutError("no reply")
            if not self.replies:
                raise ConnectionError("closed")
            return self.replies.pop(0)

    def command(self, text: str, timeout: float = 10.0) -> tuple[dict[str, str], bytes]:
        """Send one command (a blank line is added) and return its reply frame."""
        self.send(text + "\n\n")
        return self.reply(timeout)

    def wait_event(self, match: Callable[[Event], bool], timeout: float) -> Event:
        """The first event so far (or to come) for which ``match`` is true."""
        def found() -> Optional[Event]:
            return next((e for e in self.events if match(e)), None)
        with self.cond:
            if not self.cond.wait_for(lambda: found() is not None or self.closed, timeout):
                raise TimeoutError("no matching event")
            event = found()
            if event is None:
                raise ConnectionError("closed before the event")
            return event

    def close(self) -> None:
        """Say ``exit`` and wait for FreeSWITCH to close the socket."""
        try:
            self.send("exit\n\n")
            with self.cond:
                self.cond.wait_for(lambda: self.closed, 5)
        finally:
            self.sock.close()
            self.reader.join(2)


# --- scenarios ----------------------------------------------------------------------

@dataclass
class Leg:
    """One leg a scenario placed: the uuids it chose for it."""

    role: str
    uuid: str
    job: str
    number: str


@dataclass
class Session:
    """A scenario's connections and the ids it chose, for the meta record."""

    host: str
    port: int
    password: str
    recorder: Recorder = field(default_factory=Recorder)
    conns: list[RawESL] = field(default_factory=list)
    legs: list[Leg] = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    request: str = field(default_factory=lambda: "RQ" + uuidlib.uuid4().hex[:30])

    def connect(self, subscribe: bool = True, password: Optional[str] = None) -> RawESL:
        """A new authenticated connection (subscribed to :data:`EVENTS`)."""
        esl = RawESL(self.host, self.port, self.recorder, len(self.conns) + 1)
        self.conns.append(esl)
        headers, _ = esl.reply()
        assert headers.get("Content-Type") == "auth/request", headers
        headers, _ = esl.command(f"auth {password or self.password}")
        if subscribe and headers.get("Reply-Text", "").startswith("+OK"):
            esl.command(f"events plain {EVENTS}")
        return esl

    @property
    def esl(self) -> RawESL:
        return self.conns[-1]

    def api(self, command: str, esl: Optional[RawESL] = None) -> str:
        """``api <command>``'s body, as text."""
        _, body = (esl or self.esl).command(f"api {command}")
        return body.decode("utf-8")

    def originate(self, number: str, role: str, app: str = "&park()",
                  extra: str = "", attempt: str = "", timeout: int = 20,
                  dial: str = "") -> Leg:
        """``bgapi originate`` with our own uuids and cpaas_* variables, to ``number``
        through the trunk (or to the ``dial`` string)."""
        leg = Leg(role, str(uuidlib.uuid4()), str(uuidlib.uuid4()), number)
        variables = [f"origination_uuid={leg.uuid}", f"cpaas_account={ACCOUNT}",
                     f"cpaas_request={self.request}", f"cpaas_leg={role}",
                     f"originate_timeout={timeout}", "origination_caller_id_number=15550009999",
                     "origination_caller_id_name=cpaas", "ignore_early_media=true"]
        if attempt:
            variables.append(f"cpaas_attempt={attempt}")
        if extra:
            variables.append(extra)
        self.legs.append(leg)
        self.esl.command(f"bgapi originate {{{','.join(variables)}}}"
                         f"{dial or f'sofia/gateway/{GATEWAY}/{number}'} {app}"
                         f"\nJob-UUID: {leg.job}")
        return leg

    def wait(self, name: str, uuid: str = "", timeout: float = 15.0, **headers: str) -> Event:
        """The first ``name`` event (of channel ``uuid``, with these header values)."""
        def match(e: Event) -> bool:
            if e.name != name or (uuid and e.get("Unique-ID") != uuid):
                return False
            return all(e.get(k.replace("_", "-")) == v for k, v in headers.items())
        return self.esl.wait_event(match, timeout)

    def job(self, leg: Leg, timeout: float = 30.0) -> Event:
        """The ``BACKGROUND_JOB`` of ``leg``'s originate."""
        return self.esl.wait_event(
            lambda e: e.name == "BACKGROUND_JOB" and e.get("Job-UUID") == leg.job, timeout)

    def hangup_complete(self, leg: Leg, timeout: float = 30.0) -> Event:
        """``leg``'s ``CHANNEL_HANGUP_COMPLETE``."""
        return self.wait("CHANNEL_HANGUP_COMPLETE", leg.uuid, timeout)

    def settle(self, seconds: float = 0.5) -> None:
        """Let trailing events (EXECUTE_COMPLETE after a hangup...) arrive."""
        time.sleep(seconds)

    def foreign(self) -> list[str]:
        """Ids of events on our connections that belong to calls or jobs of someone else
        sharing the node (a leg we did not place and that is not bridged to ours)."""
        ours = {leg.uuid for leg in self.legs} | {leg.job for leg in self.legs}
        seen: set[str] = set()
        for esl in self.conns:
            for e in esl.events:
                if e.name == "HEARTBEAT":
                    continue
                ids = {e.get("Unique-ID"), e.get("Other-Leg-Unique-ID"),
                       e.get("Channel-Call-UUID"), e.get("Job-UUID")} - {""}
                if not ids & ours:
                    seen |= ids
        return sorted(seen)

    def meta(self, name: str, description: str, version: str) -> dict:
        return {"kind": "meta", "scenario": name, "description": description,
                "freeswitch": version, "captured_at": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "account": ACCOUNT, "request": self.request,
                "legs": [vars(leg) for leg in self.legs], "notes": self.notes}


SCENARIOS: dict[str, tuple[str, Callable[[Session], None]]] = {}


def scenario(name: str, description: str):
    """Register a scenario function under ``name``."""
    def register(fn: Callable[[Session], None]) -> Callable[[Session], None]:
        SCENARIOS[name] = (description, fn)
        return fn
    return register


def _failed_call(s: Session, number: str, timeout: int = 20) -> None:
    """A campaign attempt's leg to a number the carrier refuses: job, hangup, done."""
    s.connect()
    leg = s.originate(number, "customer", timeout=timeout,
                      attempt="AT" + uuidlib.uuid4().hex[:30])
    s.job(leg, timeout=timeout + 10)
    s.hangup_complete(leg, timeout=timeout + 10)
    s.settle()


@scenario("answered", "answered call parked; uuid_exists and show channels as json at the "
          "answer and 1 s later; uuid_kill; uuid_exists after the hangup")
def answered(s: Session) -> None:
    s.connect()
    leg = s.originate("15550001234", "customer", attempt="AT0000000000000000000000000001")
    s.job(leg)
    s.wait("CHANNEL_ANSWER", leg.uuid)
    s.notes["uuid_exists_up"] = s.api(f"uuid_exists {leg.uuid}")
    # The core's channel table is written asynchronously: right after the answer
    # `show channels` does not list the call yet; a second later it does.
    s.notes["show_channels_at_answer"] = s.api("show channels as json")
    time.sleep(1)
    s.notes["show_channels_1s_later"] = s.api("show channels as json")
    s.notes["uuid_kill"] = s.api(f"uuid_kill {leg.uuid}")
    s.hangup_complete(leg)
    s.settle()
    s.notes["uuid_exists_gone"] = s.api(f"uuid_exists {leg.uuid}")


#: The carrier's failure outcomes: scenario -> (description, number, originate_timeout).
FAILURES = {
    "busy": ("486 Busy Here from the carrier", "15550000486", 20),
    "noanswer": ("180 and no answer; originate_timeout=3 gives up", "15550000480", 3),
    "unavailable": ("503 Service Unavailable from the carrier", "15550000503", 20),
    "notfound": ("404 Not Found from the carrier", "15550000404", 20),
    "decline": ("603 Decline from the carrier", "15550000603", 20),
}
for _name, (_description, _number, _timeout) in FAILURES.items():
    scenario(_name, _description)(partial(_failed_call, number=_number, timeout=_timeout))


def _played_call(s: Session, number: str, inline: str) -> Leg:
    """One answered leg running ``inline`` (an inline dialplan), followed to its hangup."""
    leg = s.originate(number, "customer", app=f"'{inline}' inline")
    s.job(leg)
    s.hangup_complete(leg)
    s.settle()
    return leg


@scenario("dtmf_playback", "55d number: answered, playback of a 4.8 s prompt, the carrier's "
          "SIP INFO digit arrives during it; then hangup")
def dtmf_playback(s: Session) -> None:
    s.connect()
    leg = _played_call(s, "15550000553", f"m:^:playback:{MEDIA}/prompt.wav^hangup:NORMAL_CLEARING")
    s.wait("DTMF", leg.uuid, timeout=1)


@scenario("dtmf_gather", "55d number: play_and_get_digits (1 digit, 6 s timeout) during the prompt, "
          "the digit lands in cpaas_digits; then hangup")
def dtmf_gather(s: Session) -> None:
    s.connect()
    gather = f"play_and_get_digits:1 1 1 6000 # {MEDIA}/prompt.wav silence_stream://250 " \
             "cpaas_digits [0-9] 2000"
    _played_call(s, "15550000557", f"m:^:{gather}^hangup:NORMAL_CLEARING")


@scenario("loop_playback", "answered; loop_playback +3 of a 1 s prompt, then "
          "hangup:NORMAL_CLEARING (the OTP / announcement verb)")
def loop_playback(s: Session) -> None:
    s.connect()
    _played_call(s, "15550001235", f"loop_playback:+3 {MEDIA}/short.wav,hangup:NORMAL_CLEARING")


@scenario("http_playback", "answered; the prompt played from an HTTP URL on loopback "
          "(mod_http_cache), then hangup; notes list what the cache kept on disk and what "
          "http_remove_cache / http_clear_cache left")
def http_playback(s: Session) -> None:
    server = _media_server()
    url = f"http://127.0.0.1:{server.server_address[1]}/short.wav"
    try:
        s.connect()
        _played_call(s, "15550001241", f"playback:{url},hangup:NORMAL_CLEARING")
        s.notes["cached_after_call"] = _cached_files()
        s.notes["http_remove_cache"] = s.api(f"http_remove_cache {url}")
        s.notes["cached_after_remove"] = _cached_files()
        s.notes["http_clear_cache"] = s.api("http_clear_cache")
        s.notes["cached_after_clear"] = _cached_files()
        s.notes["url"] = url
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without writing an access line per request to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http " + format, *args)


def _media_server() -> ThreadingHTTPServer:
    """An HTTP server on a free loopback port serving :data:`MEDIA`, in a thread."""
    handler = partial(_QuietHandler, directory=str(MEDIA))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _cached_files() -> list[str]:
    return sorted(str(p.relative_to(HTTP_CACHE)) for p in HTTP_CACHE.rglob("*") if p.is_file())


@scenario("record_stereo", "answered, parked; uuid_setvar RECORD_STEREO true; uuid_record "
          "start, 2 s, stop; uuid_kill")
def record_stereo(s: Session) -> None:
    s.connect()
    leg = s.originate("15550001236", "customer")
    s.wait("CHANNEL_ANSWER", leg.uuid)
    path = RECORDINGS / f"{leg.uuid}.wav"
    s.notes["uuid_setvar"] = s.api(f"uuid_setvar {leg.uuid} RECORD_STEREO true")
    s.notes["record_start"] = s.api(f"uuid_record {leg.uuid} start {path}")
    s.wait("RECORD_START", leg.uuid)
    time.sleep(2)
    s.notes["record_stop"] = s.api(f"uuid_record {leg.uuid} stop {path}")
    s.wait("RECORD_STOP", leg.uuid)
    s.api(f"uuid_kill {leg.uuid}")
    s.hangup_complete(leg)
    s.settle()
    s.notes["recording"] = str(path)


@scenario("record_bridged", "agent and customer bridged; RECORD_STEREO on the agent leg, "
          "uuid_record agent start, 2 s, stop (agent left, customer right); agent killed")
def record_bridged(s: Session) -> None:
    s.connect()
    agent, customer = _two_parked(s)
    s.api(f"uuid_bridge {agent.uuid} {customer.uuid}")
    s.wait("CHANNEL_BRIDGE", agent.uuid)
    path = RECORDINGS / f"{agent.uuid}.wav"
    s.api(f"uuid_setvar {agent.uuid} RECORD_STEREO true")
    s.notes["record_start"] = s.api(f"uuid_record {agent.uuid} start {path}")
    s.wait("RECORD_START", agent.uuid)
    time.sleep(2)
    s.api(f"uuid_record {agent.uuid} stop {path}")
    s.wait("RECORD_STOP", agent.uuid)
    s.notes["recording"] = str(path)
    _kill_all(s, [agent, customer])


def _two_parked(s: Session) -> tuple[Leg, Leg]:
    agent = s.originate("15550002001", "agent")
    customer = s.originate("15550002002", "customer")
    s.wait("CHANNEL_ANSWER", agent.uuid)
    s.wait("CHANNEL_ANSWER", customer.uuid)
    return agent, customer


def _kill_all(s: Session, legs: list[Leg]) -> None:
    for leg in legs:
        if s.api(f"uuid_exists {leg.uuid}").strip() == "true":
            s.api(f"uuid_kill {leg.uuid}")
        s.hangup_complete(leg)
    s.settle()


@scenario("uuid_bridge", "agent and customer legs answered and parked, then uuid_bridge "
          "agent customer; agent killed; what the customer leg does after")
def uuid_bridge(s: Session) -> None:
    s.connect()
    agent, customer = _two_parked(s)
    s.notes["uuid_bridge"] = s.api(f"uuid_bridge {agent.uuid} {customer.uuid}")
    s.wait("CHANNEL_BRIDGE")
    time.sleep(1)
    s.api(f"uuid_kill {agent.uuid}")
    s.hangup_complete(agent)
    time.sleep(2)
    s.notes["customer_after_agent_hangup"] = s.api(f"uuid_exists {customer.uuid}")
    _kill_all(s, [customer])


@scenario("bridge_oneshot", "click2call in one originate: agent {vars} &bridge([customer "
          "vars]...); the carrier hangs the customer up after its hold")
def bridge_oneshot(s: Session) -> None:
    s.connect()
    customer = Leg("customer", str(uuidlib.uuid4()), "", "15550002004")
    inner = (f"[origination_uuid={customer.uuid},cpaas_account={ACCOUNT},"
             f"cpaas_request={s.request},cpaas_leg=customer,originate_timeout=20]"
             f"sofia/gateway/{GATEWAY}/{customer.number}")
    agent = s.originate("15550002003", "agent", app=f"&bridge({inner})",
                        extra="hangup_after_bridge=true")
    s.legs.append(customer)
    s.job(agent)
    s.wait("CHANNEL_BRIDGE")
    time.sleep(1)
    s.api(f"uuid_kill {customer.uuid}")
    s.hangup_complete(customer)
    _kill_all(s, [agent])


@scenario("uuid_transfer", "agent and customer bridged; uuid_transfer customer to an inline "
          "bridge to a third number (blind transfer); all legs killed")
def uuid_transfer(s: Session) -> None:
    s.connect()
    agent, customer = _two_parked(s)
    s.api(f"uuid_bridge {agent.uuid} {customer.uuid}")
    s.wait("CHANNEL_BRIDGE")
    target = Leg("transfer_target", str(uuidlib.uuid4()), "", "15550002005")
    s.legs.append(target)
    dial = (f"[origination_uuid={target.uuid},cpaas_account={ACCOUNT},"
            f"cpaas_request={s.request},cpaas_leg=transfer_target]"
            f"sofia/gateway/{GATEWAY}/{target.number}")
    s.notes["uuid_transfer"] = s.api(
        f"uuid_transfer {customer.uuid} 'm:^:set:hangup_after_bridge=true^bridge:{dial}' inline")
    s.wait("CHANNEL_ANSWER", target.uuid)
    s.esl.wait_event(lambda e: e.name == "CHANNEL_BRIDGE"
                     and target.uuid in (e.get("Other-Leg-Unique-ID"), e.get("Unique-ID")), 15)
    time.sleep(1)
    s.notes["agent_after_transfer"] = s.api(f"uuid_exists {agent.uuid}")
    _kill_all(s, [agent, customer, target])


@scenario("attended_transfer", "agent and customer bridged; the customer gets "
          "park_after_bridge=true (held), uuid_bridge agent consult (agent talks to the "
          "consulted party), then uuid_bridge customer consult (customer handed over); "
          "the agent ends; all legs killed")
def attended_transfer(s: Session) -> None:
    s.connect()
    agent, customer = _two_parked(s)
    s.api(f"uuid_bridge {agent.uuid} {customer.uuid}")
    s.wait("CHANNEL_BRIDGE", agent.uuid)
    s.notes["park_after_bridge"] = s.api(f"uuid_setvar {customer.uuid} park_after_bridge true")
    consult = s.originate("15550002008", "consult")
    s.wait("CHANNEL_ANSWER", consult.uuid)
    s.notes["bridge_agent_consult"] = s.api(f"uuid_bridge {agent.uuid} {consult.uuid}")
    s.esl.wait_event(lambda e: e.name == "CHANNEL_BRIDGE"
                     and consult.uuid in (e.get("Other-Leg-Unique-ID"), e.get("Unique-ID")), 15)
    time.sleep(1)
    s.notes["customer_while_held"] = s.api(f"uuid_exists {customer.uuid}")
    s.notes["bridge_customer_consult"] = s.api(f"uuid_bridge {customer.uuid} {consult.uuid}")
    s.esl.wait_event(lambda e: e.name == "CHANNEL_BRIDGE" and e.get("Unique-ID") == customer.uuid
                     and e.get("Other-Leg-Unique-ID") == consult.uuid, 15)
    time.sleep(1)
    s.notes["agent_after_handover"] = s.api(f"uuid_exists {agent.uuid}")
    _kill_all(s, [agent, customer, consult])


@scenario("agent_unregistered", "originate to user/1000 (FREESWITCH_AGENT_DIAL=user/{ext}) "
          "with no UA registered for it")
def agent_unregistered(s: Session) -> None:
    s.connect()
    leg = s.originate("1000", "agent", dial="user/1000")
    s.job(leg)
    s.settle()


@scenario("uuid_transfer_xml", "answered parked leg; uuid_transfer <uuid> <number> XML cpaas "
          "(the local dialplan bridges it out through the trunk)")
def uuid_transfer_xml(s: Session) -> None:
    s.connect()
    leg = s.originate("15550002006", "customer")
    s.wait("CHANNEL_ANSWER", leg.uuid)
    s.notes["uuid_transfer"] = s.api(f"uuid_transfer {leg.uuid} 15550002007 XML cpaas")
    s.wait("CHANNEL_BRIDGE", leg.uuid)
    time.sleep(1)
    s.api(f"uuid_kill {leg.uuid}")
    s.hangup_complete(leg)
    s.settle(1.0)


@scenario("newline_variable", "a channel variable holding a newline and a forged "
          "'Hangup-Cause: FORGED' line (set by sendmsg with a body); it travels URL-encoded")
def newline_variable(s: Session) -> None:
    s.connect()
    leg = s.originate("15550001237", "customer")
    s.wait("CHANNEL_ANSWER", leg.uuid)
    value = "cpaas_note=line one\nHangup-Cause: FORGED\n\nContent-Length: 3"
    body = value.encode("utf-8")
    s.esl.command(f"sendmsg {leg.uuid}\ncall-command: execute\nexecute-app-name: set\n"
                  f"content-type: text/plain\ncontent-length: {len(body)}\n\n{value}")
    s.wait("CHANNEL_EXECUTE_COMPLETE", leg.uuid, Application="set")
    s.notes["cpaas_note"] = s.api(f"uuid_getvar {leg.uuid} cpaas_note")
    s.api(f"uuid_kill {leg.uuid}")
    s.hangup_complete(leg)
    s.settle()


@scenario("api_misc", "api replies without calls: status, version, uuid_exists of an unknown "
          "uuid, show channels as json (empty), uuid_kill unknown, an unknown command, "
          "bgapi originate through a gateway that does not exist")
def api_misc(s: Session) -> None:
    s.connect()
    for command in ("status", "version", f"uuid_exists {uuidlib.uuid4()}",
                    "show channels as json", f"uuid_kill {uuidlib.uuid4()}",
                    "no_such_command", "show calls as json"):
        s.api(command)
    leg = Leg("customer", str(uuidlib.uuid4()), str(uuidlib.uuid4()), "15550001238")
    s.legs.append(leg)
    s.esl.command(f"bgapi originate {{origination_uuid={leg.uuid}}}sofia/gateway/nosuch/"
                  f"{leg.number} &park()\nJob-UUID: {leg.job}")
    s.job(leg)


@scenario("heartbeat", "an idle subscribed connection until FreeSWITCH's HEARTBEAT (every 20 s)")
def heartbeat(s: Session) -> None:
    s.connect()
    s.esl.wait_event(lambda e: e.name == "HEARTBEAT", 25)


@scenario("auth_failure", "a wrong password: -ERR invalid, then the disconnect notice")
def auth_failure(s: Session) -> None:
    esl = s.connect(subscribe=False, password="wrong-password")
    with esl.cond:
        esl.cond.wait_for(lambda: esl.closed, 5)


@scenario("listener_restart", "conn 1 sees a call answered and drops without exit (a dying "
          "listener); conn 2 reconnects, finds the call with uuid_exists and show channels, "
          "then it hangs up")
def listener_restart(s: Session) -> None:
    first = s.connect()
    leg = s.originate("15550001239", "customer")
    s.wait("CHANNEL_ANSWER", leg.uuid)
    first.sock.shutdown(socket.SHUT_RDWR)
    first.sock.close()
    time.sleep(1)
    s.connect()
    s.notes["uuid_exists"] = s.api(f"uuid_exists {leg.uuid}")
    s.notes["show_channels"] = s.api("show channels as json")
    s.api(f"uuid_kill {leg.uuid}")
    s.hangup_complete(leg)
    s.settle()


#: Run only when named: it stops FreeSWITCH (restart it afterwards).
MANUAL = {"shutdown"}


@scenario("shutdown", "a parked call, then fsctl shutdown on another connection: what the "
          "subscribed connection receives as the node goes down")
def shutdown(s: Session) -> None:
    watcher = s.connect()
    leg = s.originate("15550001240", "customer")
    s.wait("CHANNEL_ANSWER", leg.uuid)
    s.connect(subscribe=False)
    s.esl.send("api fsctl shutdown\n\n")
    with watcher.cond:
        watcher.cond.wait_for(lambda: watcher.closed, 20)


# --- running ----------------------------------------------------------------------------

def make_media() -> None:
    """The prompts the scenarios play: a 5 s and a 1 s 8 kHz mono WAV."""
    MEDIA.mkdir(parents=True, exist_ok=True)
    RECORDINGS.mkdir(parents=True, exist_ok=True)
    texts = {"prompt": "Press one for sales, two for support, or stay on the line "
                       "to hear this message again.",
             "short": "Your code is four."}
    for name, text in texts.items():
        out = MEDIA / f"{name}.wav"
        if out.exists():
            continue
        raw = MEDIA / f"{name}.raw.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)],
                       check=True)
        raw.unlink()


def version(host: str, port: int, password: str) -> str:
    """FreeSWITCH's ``version`` reply (on a connection that is not recorded)."""
    s = Session(host, port, password)
    s.connect(subscribe=False)
    text = s.api("version").strip()
    s.esl.close()
    return text


def attempt(name: str, host: str, port: int, password: str) -> Session:
    """Run one scenario once; the session holds what it recorded."""
    s = Session(host, port, password)
    try:
        SCENARIOS[name][1](s)
    finally:
        for esl in s.conns:
            if not esl.closed:
                esl.close()
    return s


def run(name: str, host: str, port: int, password: str, out: Path, fs_version: str,
        tries: int = 6) -> Path:
    """Run one scenario and write its capture file; returns the file.

    A node shared with other users also sends their calls' events; a scenario that saw
    any is run again (up to ``tries`` times) so that a capture holds one story. The
    last try is kept either way, its foreign ids listed in the meta record.
    """
    for n in range(tries):
        s = attempt(name, host, port, password)
        if not s.foreign() or name in MANUAL:
            break
        log.info("%s saw other calls' events; again", name, extra={"scenario": name})
        time.sleep(2 + 3 * n)
    path = out / f"{name}.jsonl"
    meta = s.meta(name, SCENARIOS[name][0], fs_version)
    meta["foreign_ids"] = s.foreign()
    lines = [json.dumps(meta)]
    lines += [json.dumps(r) for r in sorted(s.recorder.records,
                                            key=lambda r: (r["conn"], r["t"]))]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def summary(path: Path | str) -> Iterator[str]:
    """One line per frame of a capture: time, connection, content type, and for events
    their name, uuid and the headers that matter to the engine."""
    capture = load(path)
    conns = sorted({r["conn"] for r in capture.records})
    keys = ("Unique-ID", "Job-UUID", "Hangup-Cause", "variable_hangup_cause_q850",
            "variable_proto_specific_hangup_cause", "Application", "Application-Response",
            "DTMF-Digit", "DTMF-Source", "Playback-Status", "Record-File-Path",
            "Other-Leg-Unique-ID", "Channel-Call-UUID", "variable_cpaas_leg")
    for conn in conns:
        for t, frame in capture.frames(conn):
            headers, body = parse_frame(frame)
            kind = headers.get("Content-Type", "")
            if kind == "text/event-plain":
                event, ev_body = parse_event(body)
                fields = " ".join(f"{k}={event[k]}" for k in keys if event.get(k))
                yield f"{t:9.3f} c{conn} {event.get('Event-Name')} {fields} {ev_body!r}"
            else:
                extra = headers.get("Reply-Text", "")
                yield f"{t:9.3f} c{conn} {kind} {extra} {body[:120]!r}"


def main(argv: Optional[list[str]] = None) -> int:
    """Capture the named scenarios (all but :data:`MANUAL` when none is named)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8021)
    parser.add_argument("--password", default="")
    parser.add_argument("--out", type=Path, default=CAPTURES)
    parser.add_argument("scenarios", nargs="*", metavar="scenario",
                        help=f"any of {', '.join(SCENARIOS)}")
    parser.add_argument("--show", type=Path, metavar="FILE",
                        help="print a capture's frames, one a line, and exit")
    args = parser.parse_args(argv)
    if args.show:
        for line in summary(args.show):
            sys.stdout.write(line + "\n")
        return 0
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    names = args.scenarios or [n for n in SCENARIOS if n not in MANUAL]
    make_media()
    args.out.mkdir(parents=True, exist_ok=True)
    fs_version = version(args.host, args.port, args.password)
    for name in names:
        path = run(name, args.host, args.port, args.password, args.out, fs_version)
        log.info("%s -> %s", name, path, extra={"scenario": name, "path": str(path)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
