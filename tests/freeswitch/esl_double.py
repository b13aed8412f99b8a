"""A local TCP server speaking FreeSWITCH's ESL wire format, for tests without FreeSWITCH.

It greets with ``auth/request``, answers ``command/reply`` and ``api/response``, and
sends ``text/event-plain`` frames with URL-encoded values and bodies, as FreeSWITCH
1.10 does (GUIDE §5/§6). Behind it sits a small model of a switch: ``originate`` makes
a channel whose fate is scripted per dialed number (answer, busy, 503, no answer, ...),
``uuid_kill``/``uuid_bridge``/``uuid_broadcast``/``uuid_record`` act on channels and
emit the events a real node emits, and tests can make the far end hang up or send DTMF.
Every byte it received is kept (:meth:`EslDouble.wire`) so tests assert on what
reached the "switch", and :meth:`EslDouble.replay` sends captured byte streams verbatim.
"""
from __future__ import annotations

import json
import queue
import re
import socket
import threading
import time
import uuid
import wave
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass, field
from urllib.parse import quote

_VARS = re.compile(r"^originate \{([^}]*)\}(\S+) &park\(\)$")


@dataclass
class Fate:
    """What a dialed number does: ``answer`` (after ``delay``), ``fail`` with ``cause``
    (and ``sip``: the far end's final response), ``ring`` until originate_timeout,
    ``silent`` (nothing listening), ``refuse`` (no channel at all: sps exceeded)."""

    kind: str = "answer"
    cause: str = ""
    sip: int | None = None
    delay: float = 0.02


BUSY = Fate("fail", "USER_BUSY", 486)
NO_USER_RESPONSE = Fate("fail", "NO_USER_RESPONSE", 480)
CONGESTION = Fate("fail", "NORMAL_TEMPORARY_FAILURE", 503)
UNALLOCATED = Fate("fail", "UNALLOCATED_NUMBER", 404)
REJECTED = Fate("fail", "CALL_REJECTED", 603)
RING = Fate("ring")
SILENT = Fate("silent", "NORMAL_TEMPORARY_FAILURE")
REFUSE = Fate("refuse", "DESTINATION_OUT_OF_ORDER")


@dataclass
class Channel:
    """One channel of the model switch."""

    uuid: str
    number: str
    variables: dict[str, str]
    job: str | None
    answered: bool = False
    ended: bool = False
    peer: str | None = None
    forming: str | None = None     # the other leg of a uuid_bridge still forming
    records: list[str] = field(default_factory=list)
    record_flags: dict[str, str] = field(default_factory=dict)   # path -> its {…} flags


def _frame(headers: dict[str, str], body: bytes = b"") -> bytes:
    head = "".join(f"{k}: {v}\n" for k, v in headers.items())
    if body:
        head += f"Content-Length: {len(body)}\n"
    return head.encode() + b"\n" + body


def event_frame(headers: dict[str, str], body: str = "") -> bytes:
    """A ``text/event-plain`` frame: each value URL-encoded, the event's own body after."""
    inner = "".join(f"{k}: {quote(str(v), safe='')}\n" for k, v in headers.items())
    if body:
        inner += f"Content-Length: {len(body.encode())}\n\n{body}"
    else:
        inner += "\n"
    return _frame({"Content-Type": "text/event-plain"}, inner.encode())


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.subscribed = False
        self.authed = False
        self.raw = bytearray()

    def send(self, data: bytes) -> None:
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass


class EslDouble:
    """The server and its model switch."""

    def __init__(self, password: str = "ClueCon", port: int = 0) -> None:
        self.password = password
        self.port = port
        self.fates: dict[str, Fate] = {}
        self.channels: dict[str, Channel] = {}
        self.conns: list[_Conn] = []
        self.received: list[bytes] = []         # raw bytes of every closed connection
        self.commands: list[str] = []           # every command block, in order
        self.on_command: Callable[[str], None] | None = None
        #: broadcasts still to acknowledge and drop, with no event (as FreeSWITCH does
        #: with one that reaches a leg between its answer and its park)
        self.drop_broadcasts = 0
        #: seconds a uuid_bridge takes to form; a leg that ends meanwhile takes the other
        #: down with it (DESTINATION_OUT_OF_ORDER), as FreeSWITCH's uuid_bridge does
        self.bridge_delay = 0.0
        #: seconds the node takes to answer each bgapi command (a busy node: it reads
        #: and answers a connection's commands one at a time)
        self.reply_delay = 0.0
        #: ("read", block) as each command arrives, ("replied", block) as a bgapi is answered
        self.log: list[tuple[str, str]] = []
        #: replays a captured stream instead of the model (tests.freeswitch.replay)
        self.replayer: Any = None
        self._lock = threading.RLock()
        self._listener: socket.socket | None = None

    # ---------------------------------------------------------------- server
    def start(self) -> "EslDouble":
        """Listen on 127.0.0.1 (on the same port again after :meth:`stop`)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()
        return self

    @property
    def address(self) -> str:
        """``host:port`` as FREESWITCH_ESL takes it."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """The node goes away: stop listening, drop every connection (no goodbye)."""
        if self._listener is not None:
            try:   # wakes the accept() blocked in its thread, which a bare close does not
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        for conn in list(self.conns):
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.sock.close()

    def wire(self) -> bytes:
        """Every byte received so far, over every connection."""
        with self._lock:
            return b"".join(self.received) + b"".join(bytes(c.raw) for c in self.conns)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            conn = _Conn(sock)
            with self._lock:
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: _Conn) -> None:
        """Read commands as they arrive (their arrival is logged then) and hand them to
        a thread that answers them one at a time, as a node does, slowly when asked."""
        conn.send(_frame({"Content-Type": "auth/request"}))
        blocks: queue.Queue[str | None] = queue.Queue()
        answerer = threading.Thread(target=self._answer, args=(conn, blocks), daemon=True)
        answerer.start()
        buf = b""
        while True:
            try:
                data = conn.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            with self._lock:
                conn.raw += data
            buf += data
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                text = block.decode("utf-8", errors="replace")
                with self._lock:
                    self.log.append(("read", text))
                blocks.put(text)
        blocks.put(None)
        answerer.join(5)
        with self._lock:
            if conn in self.conns:
                self.conns.remove(conn)
                self.received.append(bytes(conn.raw))

    def _answer(self, conn: _Conn, blocks: "queue.Queue[str | None]") -> None:
        while (block := blocks.get()) is not None:
            if not self._handle(conn, block):
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)   # ends the reader's recv
                except OSError:
                    pass
                conn.sock.close()
                return

    def _reply(self, conn: _Conn, text: str, **extra: str) -> None:
        conn.send(_frame({"Content-Type": "command/reply", "Reply-Text": text, **extra}))

    def _handle(self, conn: _Conn, block: str) -> bool:
        self.commands.append(block)
        if self.on_command is not None:
            self.on_command(block)
        first, *rest = block.split("\n")
        if not conn.authed:
            if first == f"auth {self.password}":
                conn.authed = True
                self._reply(conn, "+OK accepted")
                return True
            self._reply(conn, "-ERR invalid")
            conn.send(_frame({"Content-Type": "text/disconnect-notice"}, b"Disconnected.\n"))
            return False
        if first.startswith("events plain"):
            conn.subscribed = True
            self._reply(conn, "+OK event listener enabled plain")
        elif first.startswith("bgapi "):
            headers = dict(line.split(": ", 1) for line in rest if ": " in line)
            job = headers.get("Job-UUID", "00000000-0000-4000-8000-000000000000")
            if self.reply_delay:
                time.sleep(self.reply_delay)
            with self._lock:
                self.log.append(("replied", block))
            self._reply(conn, f"+OK Job-UUID: {job}", **{"Job-UUID": job})
            threading.Thread(target=self._bgapi, args=(first[6:], job), daemon=True).start()
        elif first.startswith("api "):
            body = (self.api(first[4:], None) if self.replayer is None else "+OK\n").encode()
            conn.send(_frame({"Content-Type": "api/response"}, body))
        elif first == "exit":
            self._reply(conn, "+OK bye")
            return False
        else:
            self._reply(conn, "-ERR command not found")
        return True

    # ---------------------------------------------------------------- events
    def emit(self, headers: dict[str, str], body: str = "") -> None:
        """Send one event to every subscribed connection."""
        frame = event_frame(headers, body)
        for conn in list(self.conns):
            if conn.subscribed:
                conn.send(frame)

    def replay(self, data: bytes) -> None:
        """Send captured bytes, verbatim, to every subscribed connection."""
        for conn in list(self.conns):
            if conn.subscribed:
                conn.send(data)

    def _channel_event(self, name: str, ch: Channel, **extra: str) -> None:
        headers = {"Event-Name": name, "Core-UUID": "double", "Unique-ID": ch.uuid,
                   "Channel-Call-UUID": ch.uuid, "Caller-Caller-ID-Number": ch.number,
                   "Answer-State": "answered" if ch.answered else "ringing"}
        headers.update({f"variable_{k}": v for k, v in ch.variables.items()})
        headers.update(extra)
        self.emit(headers)

    def _job(self, job: str | None, body: str) -> None:
        if job:
            self.emit({"Event-Name": "BACKGROUND_JOB", "Job-UUID": job,
                       "Job-Command": "originate"}, body + "\n")

    # ------------------------------------------------------------ the switch
    def _bgapi(self, command: str, job: str) -> None:
        if self.replayer is not None:
            self._replay_originate(command, job)
            return
        if command.startswith("originate "):
            self._originate(command, job)
            return
        result = self.api(command, job)
        self.emit({"Event-Name": "BACKGROUND_JOB", "Job-UUID": job,
                   "Job-Command": command.split(" ", 1)[0]}, result)

    def _replay_originate(self, command: str, job: str) -> None:
        """Replay mode: an originate starts its capture leg's frames; nothing else acts."""
        match = _VARS.match(command)
        if not match:
            return
        variables = dict(pair.split("=", 1) for pair in match.group(1).split(","))
        leg = self.replayer.claim(variables.get("cpaas_role", ""), variables["origination_uuid"], job)
        if leg is not None:
            self.replayer.play(leg, self.replay)

    def _originate(self, command: str, job: str) -> None:
        match = _VARS.match(command)
        if not match:
            self._job(job, "-ERR INVALID_ARGS")
            return
        variables = dict(pair.split("=", 1) for pair in match.group(1).split(","))
        number = match.group(2).rsplit("/", 1)[-1]
        fate = self.fates.get(number, Fate())
        if fate.kind == "refuse":
            self._job(job, f"-ERR {fate.cause}")
            return
        ch = Channel(variables["origination_uuid"], number, variables, job)
        with self._lock:
            self.channels[ch.uuid] = ch
        if fate.kind == "silent":
            self.hangup(ch.uuid, fate.cause)
            return
        time.sleep(fate.delay)
        self._channel_event("CHANNEL_PROGRESS", ch)
        if fate.kind == "fail":
            self.hangup(ch.uuid, fate.cause, sip=fate.sip)
        elif fate.kind == "ring":
            deadline = time.monotonic() + int(variables.get("originate_timeout", "30"))
            while time.monotonic() < deadline and not ch.ended:
                time.sleep(0.01)
            self.hangup(ch.uuid, "NO_ANSWER")
        elif not ch.ended:
            ch.answered = True
            self._channel_event("CHANNEL_ANSWER", ch)
            self._job(job, f"+OK {ch.uuid}")
            ch.job = None

    def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING", sip: int | None = None) -> None:
        """The channel ends (the far end hung up, or we were told to kill it)."""
        with self._lock:
            ch = self.channels.get(uuid)
            if ch is None or ch.ended:
                return
            ch.ended = True
        extra = {"Hangup-Cause": cause, "variable_billsec": "1" if ch.answered else "0"}
        if sip is not None:
            extra["variable_proto_specific_hangup_cause"] = f"sip:{sip}"
            extra["variable_sip_term_status"] = str(sip)
        for path in ch.records:
            self._write_recording(ch, path)
            self._channel_event("RECORD_STOP", ch, **{"Record-File-Path": path})
        self._channel_event("CHANNEL_HANGUP_COMPLETE", ch, **extra)
        if ch.job:
            self._job(ch.job, f"-ERR {cause}")
        if ch.peer and ch.peer in self.channels:
            self.channels[ch.peer].peer = None
        with self._lock:
            other, ch.forming = self.channels.get(ch.forming or ""), None
            if other is not None:
                other.forming = None
        if other is not None:
            self.hangup(other.uuid, "DESTINATION_OUT_OF_ORDER")

    def _bridge_formed(self, a: Channel, b: Channel) -> None:
        with self._lock:
            if a.forming != b.uuid or a.ended or b.ended:
                return
            a.forming = b.forming = None
            a.peer, b.peer = b.uuid, a.uuid
        self._channel_event("CHANNEL_BRIDGE", a, **{"Other-Leg-Unique-ID": b.uuid})

    def dtmf(self, uuid: str, digit: str) -> None:
        """The far end of a channel presses a key."""
        self._channel_event("DTMF", self.channels[uuid], **{
            "DTMF-Digit": digit, "DTMF-Duration": "1600", "DTMF-Source": "ENDPOINT"})

    def _write_recording(self, ch: Channel, path: str) -> None:
        stereo = "RECORD_STEREO=true" in ch.record_flags.get(path, "")
        with wave.open(path, "wb") as wav:
            wav.setnchannels(2 if stereo else 1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(b"\x00\x01" * (2 if stereo else 1) * 800)

    def api(self, command: str, job: str | None) -> str:
        """What one api command answers (and does)."""
        name, _, args = command.partition(" ")
        parts = args.split(" ")
        ch = self.channels.get(parts[0]) if parts else None
        live = ch is not None and not ch.ended
        if name == "uuid_exists":
            return "true" if live else "false"
        if command == "show channels as json":
            # As FreeSWITCH 1.10 answers it (no "rows" at all when there are none).
            rows = [{"uuid": c.uuid, "direction": "outbound", "dest": c.number,
                     "callstate": "ACTIVE" if c.answered else "RINGING"}
                    for c in list(self.channels.values()) if not c.ended]
            return json.dumps({"row_count": len(rows), "rows": rows} if rows else {"row_count": 0})
        if name == "uuid_getvar" and live and len(parts) == 2:
            return ch.variables.get(parts[1], "_undef_")
        if not live:
            return "-ERR No such channel!\n"
        if name == "uuid_kill":
            self.hangup(ch.uuid, parts[1] if len(parts) > 1 else "NORMAL_CLEARING")
        elif name == "uuid_bridge":
            other = self.channels.get(parts[1]) if len(parts) > 1 else None
            if other is None or other.ended:
                return "-ERR no such channel\n"
            ch.forming, other.forming = other.uuid, ch.uuid
            if self.bridge_delay:
                threading.Timer(self.bridge_delay, self._bridge_formed, args=(ch, other)).start()
            else:
                self._bridge_formed(ch, other)
        elif name == "uuid_broadcast":
            if self.drop_broadcasts > 0:
                self.drop_broadcasts -= 1
                return "+OK Message sent\n"
            path = parts[1].split("::", 1)[1]
            self._channel_event("PLAYBACK_START", ch, **{"Playback-File-Path": path})
            threading.Timer(0.05, self._played, args=(ch, path)).start()
        elif name == "uuid_setvar":
            ch.variables[parts[1]] = parts[2]
        elif name == "uuid_record" and parts[1] == "start":
            ch.records.append(parts[2])
            ch.record_flags[parts[2]] = parts[4] if len(parts) > 4 else ""
            self._channel_event("RECORD_START", ch, **{"Record-File-Path": parts[2]})
        elif name == "uuid_transfer":
            if ch.peer and ch.peer in self.channels:
                self.channels[ch.peer].peer = None
            ch.peer = None
        else:
            return "-ERR command not found\n"
        return "+OK\n"

    def _played(self, ch: Channel, path: str) -> None:
        if not ch.ended:
            self._channel_event("PLAYBACK_STOP", ch, **{
                "Playback-File-Path": path, "Playback-Status": "done"})

    # ---------------------------------------------------------------- helpers
    def add_channel(self, number: str, **variables: str) -> Channel:
        """A call up on the switch that nobody here placed (or whose placer forgot it)."""
        ch = Channel(str(uuid.uuid4()), number, dict(variables), None, answered=True)
        with self._lock:
            self.channels[ch.uuid] = ch
        return ch

    def channel(self, plan_id: str, role: str) -> Channel | None:
        """The (latest) channel of one leg of a plan."""
        found = [c for c in list(self.channels.values())
                 if c.variables.get("cpaas_plan") == plan_id and c.variables.get("cpaas_role") == role]
        return found[-1] if found else None
