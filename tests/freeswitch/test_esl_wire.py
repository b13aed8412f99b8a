"""Our text/event-plain parser and the greenswitch connection built on it, against the
ESL double (a real TCP server speaking the wire format)."""
from __future__ import annotations

import io
import threading

import gevent
import pytest
from greenswitch.esl import ESLEvent

from freeswitch.esl import Connection, ProtocolError, parse_event_plain, read_frame
from tests.freeswitch.esl_double import EslDouble, event_frame

#: As FreeSWITCH orders them: core headers first, channel variables after.
FORGING = {"Event-Name": "CHANNEL_HANGUP_COMPLETE", "Unique-ID": "u1", "Hangup-Cause": "USER_BUSY",
           "variable_cpaas_note": "x\nHangup-Cause: FORGED"}


def test_a_newline_in_a_variable_cannot_forge_a_header():
    frame = read_frame(io.BytesIO(event_frame(FORGING)))
    event = parse_event_plain(frame.body)
    assert event.get("Hangup-Cause") == "USER_BUSY"
    assert event.get("variable_cpaas_note") == "x\nHangup-Cause: FORGED"
    assert event.name == "CHANNEL_HANGUP_COMPLETE"


def test_greenswitch_own_parser_is_forged_by_the_same_bytes():
    """Why we parse ourselves (GUIDE §6): greenswitch decodes before splitting lines."""
    body = read_frame(io.BytesIO(event_frame(FORGING))).body.decode()
    assert ESLEvent(body).headers["Hangup-Cause"] == "FORGED"


def test_an_event_body_is_kept_apart_from_its_headers():
    raw = event_frame({"Event-Name": "BACKGROUND_JOB", "Job-UUID": "j1"}, "-ERR USER_BUSY\n")
    event = parse_event_plain(read_frame(io.BytesIO(raw)).body)
    assert event.body == "-ERR USER_BUSY\n"
    assert event.get("Content-Length") == str(len("-ERR USER_BUSY\n"))
    assert event.get("Job-UUID") == "j1"


def test_frames_in_a_row_and_a_body_that_arrives_in_pieces():
    first = event_frame({"Event-Name": "DTMF", "DTMF-Digit": "5"})
    second = b"Content-Type: command/reply\nReply-Text: +OK\n\n"

    class Trickle(io.BytesIO):
        def read(self, n: int = -1) -> bytes:   # a socket returns what it has
            return super().read(min(n, 7))

    stream = Trickle(first + b"\n" + second)
    assert parse_event_plain(read_frame(stream).body).get("DTMF-Digit") == "5"
    assert read_frame(stream).headers["Reply-Text"] == "+OK"
    assert read_frame(stream) is None


@pytest.mark.parametrize("raw", [b"Content-Length: 10\n\nshort", b"no header line\n\n",
                                 b"Content-Length: -1\n\n"])
def test_broken_frames_are_refused(raw):
    with pytest.raises(ProtocolError):
        read_frame(io.BytesIO(raw))


def _in_thread(fn):
    """Run ``fn`` in its own OS thread (its own gevent hub), as a driver does."""
    out: dict = {}

    def body():
        try:
            out["value"] = fn()
        except BaseException as err:   # handed to the test thread
            out["error"] = err

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(20)
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.fixture
def double():
    server = EslDouble(password="s3cret").start()
    yield server
    server.stop()


def test_connect_authenticate_api_and_events(double):
    def session():
        conn = Connection("127.0.0.1", double.port, "s3cret", timeout=3)
        conn.connect()
        seen = []
        conn.register_handle("*", seen.append)
        assert conn.command("events plain CHANNEL_ANSWER BACKGROUND_JOB").ok
        exists = conn.command("api uuid_exists 0e6a6c5e-0a44-4d5d-9a53-2a1f6f1f7a10")
        double.emit(FORGING)
        double.emit({"Event-Name": "BACKGROUND_JOB", "Job-UUID": "j2"}, "+OK done\n")
        with gevent.Timeout(5):
            while len(seen) < 2:
                gevent.sleep(0.01)
        conn.close()
        return exists.data, seen

    data, seen = _in_thread(session)
    assert data == "false"
    assert seen[0].get("Hangup-Cause") == "USER_BUSY"
    assert seen[1].body == "+OK done\n"
    assert double.wire().startswith(b"auth s3cret\n\nevents plain CHANNEL_ANSWER BACKGROUND_JOB\n\n")


def test_a_wrong_password_is_refused(double):
    def session():
        conn = Connection("127.0.0.1", double.port, "wrong", timeout=3)
        conn.connect()

    with pytest.raises(PermissionError):
        _in_thread(session)


def test_a_command_with_a_line_break_never_reaches_the_wire(double):
    def session():
        conn = Connection("127.0.0.1", double.port, "s3cret", timeout=3)
        conn.connect()
        try:
            for line in ("api status\nbgapi fsctl shutdown", "api status\r", "api x\r\n"):
                with pytest.raises(ValueError):
                    conn.command(line)
            with pytest.raises(ValueError):
                conn.command("bgapi status", job_uuid="1\nX: y")
            return conn.command("api status").data
        finally:
            conn.close()

    _in_thread(session)
    assert double.wire() == b"auth s3cret\n\napi status\n\n"


def test_nothing_listening_fails_fast():
    def session():
        server = EslDouble().start()
        port = server.port
        server.stop()
        conn = Connection("127.0.0.1", port, "ClueCon", timeout=2)
        conn.connect()

    with pytest.raises(OSError):
        _in_thread(session)


def test_every_way_of_reading_an_event_s_headers_decodes_them():
    event = parse_event_plain(read_frame(io.BytesIO(event_frame(FORGING))).body)
    assert event.headers["variable_cpaas_note"] == "x\nHangup-Cause: FORGED"
    assert dict(event.headers) == FORGING   # items() decodes too
    assert "Hangup-Cause: FORGED" not in list(event.headers)


def test_a_header_without_a_space_after_its_colon_and_a_line_that_is_no_header():
    assert parse_event_plain(b"Event-Name:DTMF\nDTMF-Digit: 7\n\n").get("Event-Name") == "DTMF"
    with pytest.raises(ProtocolError):
        parse_event_plain(b"Event-Name: DTMF\nnot a header\n\n")
