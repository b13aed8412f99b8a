"""The ESL wire format, parsed by us, and a greenswitch connection that uses it.

FreeSWITCH's event socket sends *frames*: header lines (``Name: value``), a blank line,
then ``Content-Length`` bytes of body when that header is present. A ``text/event-plain``
frame's body is itself an event: URL-encoded header lines, a blank line, and the event's
own body when it carries a ``Content-Length`` (a ``BACKGROUND_JOB``'s ``+OK <uuid>``).

greenswitch's reader URL-decodes an event *before* splitting it into lines and drops
event bodies (GUIDE §6): a newline inside a channel variable becomes a forged header,
and a job's result lands in its ``Content-Length``. Here headers are split from the
body first and each value is decoded on its own, so a decoded value may hold any byte
and still never starts a header. :class:`Connection` is greenswitch's ``InboundESL``
(the design card's client) with that reader in place of its own.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import unquote

import gevent
from greenswitch.esl import InboundESL, NotConnectedError

from freeswitch.commands import UUID_RE

log = logging.getLogger(__name__)

#: Bodies larger than this are refused (a sane FreeSWITCH event is a few kB; ``show
#: channels`` on a busy node some hundred kB).
MAX_BODY = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not an ESL frame."""


@dataclass
class Frame:
    """One frame off the socket: its (undecoded) headers and raw body."""

    headers: dict[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        """The frame's ``Content-Type`` ("" when absent)."""
        return self.headers.get("Content-Type", "")


class EncodedHeaders(Mapping[str, str]):
    """An event's headers, split already and each value URL-decoded when it is read.

    A channel event carries every channel variable (a hundred or more headers) and the
    driver reads a handful: decoding them all was most of what parsing an event cost.
    The lines are split before anything is decoded, so a decoded value still never
    starts a header.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: dict[str, str]) -> None:
        self._raw = raw

    def __getitem__(self, key: str) -> str:
        return unquote(self._raw[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"EncodedHeaders({dict(self)!r})"


@dataclass
class Event:
    """One FreeSWITCH event: its headers (values decoded as they are read) and its own
    body (usually empty)."""

    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""

    @property
    def name(self) -> str:
        """``Event-Name`` (for ``CUSTOM`` events, their ``Event-Subclass``)."""
        name = self.headers.get("Event-Name", "")
        return self.headers.get("Event-Subclass", name) if name == "CUSTOM" else name

    def get(self, key: str, default: str | None = None) -> str | None:
        """One header's decoded value."""
        return self.headers.get(key, default)


def _header_lines(block: str) -> dict[str, str]:
    """``Name: value`` lines into a dict, values as they came (blank lines skipped)."""
    if "\r" in block:
        block = block.replace("\r", "")
    # Comprehensions: an event holds a hundred lines or more, and a plain loop over
    # them cost more than the rest of reading the event.
    parts = [line.partition(": ") for line in block.split("\n") if line]
    if all(sep for _, sep, _ in parts):
        return {name.strip(): value for name, _, value in parts}
    headers: dict[str, str] = {}
    for name, sep, value in parts:
        if not sep:   # "Name:value", or not a header at all
            name, sep, value = name.partition(":")
            if not sep:
                raise ProtocolError(f"not a header line: {name[:80]!r}")
        headers[name.strip()] = value
    return headers


def parse_event_plain(body: bytes) -> Event:
    """The event a ``text/event-plain`` frame carries (split first, then decoded)."""
    text = body.decode("utf-8", errors="replace")
    head, _, rest = text.partition("\n\n")
    headers = EncodedHeaders(_header_lines(head))
    length = headers.get("Content-Length")
    inner = ""
    if length is not None:
        if not length.isdigit():
            raise ProtocolError("bad event Content-Length")
        inner = rest.encode("utf-8")[:int(length)].decode("utf-8", errors="replace")
    return Event(headers, inner)


def read_frame(stream: BinaryIO) -> Frame | None:
    """The next frame from ``stream``; None at end of stream."""
    lines: list[str] = []
    while True:
        raw = stream.readline()
        if not raw:
            if lines:
                raise ProtocolError("stream ended inside a frame")
            return None
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if line:
            lines.append(line)
        elif lines:
            break   # a blank line ends the headers (blank lines between frames are skipped)
    headers = _header_lines("\n".join(lines))
    length = headers.get("Content-Length")
    if length is None:
        return Frame(headers)
    if not length.isdigit() or int(length) > MAX_BODY:
        raise ProtocolError(f"bad Content-Length {length[:20]!r}")
    body = b""
    while len(body) < int(length):
        chunk = stream.read(int(length) - len(body))
        if not chunk:
            raise ProtocolError("stream ended inside a body")
        body += chunk
    return Frame(headers, body)


@dataclass
class Reply:
    """What a command got back: ``data`` (its reply text or body) and the frame's headers."""

    headers: dict[str, str]
    data: str

    @property
    def ok(self) -> bool:
        """Whether FreeSWITCH said ``+OK``."""
        return self.data.startswith("+OK")


class Connection(InboundESL):
    """greenswitch's inbound connection, reading frames with :func:`read_frame`.

    Everything else (connect, auth, ``send``, handler dispatch on its greenlets) is
    greenswitch's. One connection per OS thread; handlers run while that thread waits
    in gevent. After a command times out the replies no longer line up with their
    commands (greenswitch pairs them by order), so the connection is closed, not reused.
    """

    def receive_events(self) -> None:
        """Reader greenlet: one frame at a time, until the socket ends."""
        while self._run:
            try:
                frame = read_frame(self.sock_file)
            except (OSError, ProtocolError, ValueError):
                log.warning("esl stream unreadable; connection closed",
                            extra={"host": self.host, "port": self.port})
                frame = None
            if frame is None:
                self._run = False
                self.connected = False
                self._fail_pending()
                self._auth_request_event.set()
                try:
                    self.sock.close()
                except OSError:
                    pass
                return
            self.handle_frame(frame)

    def _fail_pending(self) -> None:
        while self._commands_sent:
            self._commands_sent.pop(0).set_exception(NotConnectedError("connection closed"))

    def handle_frame(self, frame: Frame) -> None:
        """Route one frame: auth request, a command's reply, or an event to dispatch."""
        kind = frame.content_type
        if kind == "auth/request":
            self._auth_request_event.set()
        elif kind in ("command/reply", "api/response"):
            if not self._commands_sent:
                log.warning("esl reply with no command waiting", extra={"type": kind})
                return
            data = frame.headers.get("Reply-Text", "") if kind == "command/reply" \
                else frame.body.decode("utf-8", errors="replace")
            self._commands_sent.pop(0).set(Reply(frame.headers, data))
        elif kind == "text/event-plain":
            try:
                self._esl_event_queue.put(parse_event_plain(frame.body))
            except ProtocolError:
                log.warning("unreadable esl event dropped")
        elif kind == "text/disconnect-notice":
            if frame.headers.get("Content-Disposition") != "linger":
                self.connected = False
            self._esl_event_queue.put(Event({"Content-Type": kind}))
        elif kind == "text/rude-rejection":
            self.connected = False
            self._auth_request_event.set()

    def connect(self) -> None:
        """TCP connect, wait for ``auth/request``, authenticate, all within ``timeout``
        (greenswitch waits for the auth request for ever)."""
        with gevent.Timeout(self.timeout, TimeoutError("FreeSWITCH did not greet in time")):
            super().connect()

    def authenticate(self) -> None:
        """``auth <password>``; ``PermissionError`` when refused."""
        reply = self.send(f"auth {self.password}")
        if reply.data != "+OK accepted":
            raise PermissionError("FreeSWITCH refused the ESL password")

    def command(self, line: str, timeout: float = 5.0, job_uuid: str | None = None) -> Reply:
        """Send one command line (``api …``, ``bgapi …``, ``events plain …``).

        ``line`` never holds a line break: a newline is a second command (GUIDE §6).
        ``job_uuid`` (our own id, checked by the builder) names a ``bgapi`` job.
        """
        if "\n" in line or "\r" in line:
            raise ValueError("an ESL command is one line")
        if job_uuid is not None:
            if not UUID_RE.fullmatch(job_uuid):
                raise ValueError("a Job-UUID is one of our own uuids")
            line = f"{line}\nJob-UUID: {job_uuid}"
        try:
            with gevent.Timeout(timeout):
                return self.send(line)
        except gevent.Timeout:
            log.error("esl command timed out; connection closed", extra={"host": self.host})
            self.close()
            raise TimeoutError("FreeSWITCH did not answer in time") from None

    def close(self) -> None:
        """Drop the socket without waiting on FreeSWITCH (which may be gone)."""
        self._run = False
        self.connected = False
        self._fail_pending()
        try:
            self.sock.close()
        except (OSError, AttributeError):
            pass
