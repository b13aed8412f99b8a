"""Every command string the platform sends FreeSWITCH, built from whitelisted tokens only.

FreeSWITCH's command syntax has no escaping that is safe to rely on: inside ``{…}`` a
comma silently truncates a value, a space splits the command, quotes and ``}`` break it,
and a newline starts a second command (GUIDE §6). So no builder escapes anything: each
argument must match a strict pattern (digits, our own uuids and ids, known enumerations,
media paths already checked by :func:`cpaas.telephony.plans.check_media_name`) or the
builder raises ``ValueError`` before a byte is sent. Free text never gets here: it is
rendered to audio first and only that file's name travels.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from cpaas.telephony.plans import check_media_name

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: A channel variable's value (GUIDE §6's whitelist).
TOKEN_RE = re.compile(r"^[A-Za-z0-9_.@+:-]{1,64}$")
VAR_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
DIGITS_RE = re.compile(r"^[0-9]{1,15}$")
#: What an originate dials: ``sofia/gateway/<gw>/<digits>``, ``user/<ext>`` (@domain), …
DIAL_RE = re.compile(r"^[A-Za-z0-9_.@+:/-]{1,200}$")
#: An absolute folder on the node (media root, recordings): no spaces, no dots-only parts.
DIR_RE = re.compile(r"^/[A-Za-z0-9_./-]{0,300}$")
#: A prompt URL on the platform (freeswitch.media): host, port, path of safe segments.
URL_RE = re.compile(r"^https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(/[A-Za-z0-9_.-]{1,600}){1,8}$")
#: Hangup causes we ever ask for.
KILL_CAUSES = frozenset({"NORMAL_CLEARING", "ORIGINATOR_CANCEL", "NO_ANSWER", "MANAGER_REQUEST"})
#: Events the listener subscribes to.
EVENTS = ("BACKGROUND_JOB", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_ANSWER",
          "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP_COMPLETE", "DTMF",
          "PLAYBACK_START", "PLAYBACK_STOP", "RECORD_START", "RECORD_STOP", "HEARTBEAT")
MAX_SECONDS = 3600


def _check(value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not allowed in a FreeSWITCH command")
    return value


def _uuid(value: object) -> str:
    return _check(value, UUID_RE, "uuid")


def _seconds(value: object, what: str) -> int:
    if type(value) is not int or not 1 <= value <= MAX_SECONDS:
        raise ValueError(f"{what} must be 1..{MAX_SECONDS} seconds")
    return value


def node_path(root: str, name: str) -> str:
    """``name`` (a plan's media or recording name) under the node's folder ``root``."""
    _check(root, DIR_RE, "folder")
    if ".." in root:
        raise ValueError("folder must not climb")
    return f"{root.rstrip('/')}/{check_media_name(name)}"


def _path(path: object) -> str:
    _check(path, DIR_RE, "path")
    if ".." in str(path) or str(path).endswith("/"):
        raise ValueError(f"path {path!r} is not a file under a known folder")
    return str(path)


def _dial(value: object) -> str:
    _check(value, DIAL_RE, "dial string")
    if ".." in str(value):
        raise ValueError("a dial string names no path")
    return str(value)


def dial_string(template: str, number: str) -> str:
    """A configured dial template (``sofia/gateway/trunk/{number}``, ``user/{ext}``)
    with validated digits in it; the result must still be one safe token."""
    _check(number, DIGITS_RE, "number")
    return _dial(template.replace("{number}", number).replace("{ext}", number))


def originate(leg_uuid: str, dial: str, caller_id: str, ring_timeout: int,
              variables: Mapping[str, str]) -> str:
    """``bgapi originate`` of one leg that parks when answered (run with a Job-UUID).

    ``variables`` are our ``cpaas_*`` attributions; every leg also parks (never hangs up)
    when a bridge it is in breaks, so transfers and holds are ours to decide.
    """
    pairs = {"origination_uuid": _uuid(leg_uuid),
             "origination_caller_id_number": _check(caller_id, DIGITS_RE, "caller id"),
             "origination_caller_id_name": caller_id,
             "originate_timeout": str(_seconds(ring_timeout, "ring timeout")),
             "ignore_early_media": "true", "hangup_after_bridge": "false",
             "park_after_bridge": "true"}
    for name, value in variables.items():
        if not name.startswith("cpaas_"):
            raise ValueError(f"channel variable {name!r} is not ours")
        pairs[_check(name, VAR_NAME_RE, "variable name")] = _check(value, TOKEN_RE, name)
    block = ",".join(f"{name}={value}" for name, value in pairs.items())
    return f"bgapi originate {{{block}}}{_dial(dial)} &park()"


def _url(url: object) -> str:
    _check(url, URL_RE, "url")
    if ".." in str(url):
        raise ValueError("a prompt URL does not climb")
    return str(url)


def broadcast_playback(leg_uuid: str, path: str, secret: bool = False) -> str:
    """Play one file (a path on the node, or a prompt URL of ours) to a leg once
    (``PLAYBACK_STOP`` when done); the leg stays parked.

    A URL is read by a named module, never whichever registered ``http`` last: a shared
    prompt by ``mod_http_cache`` (a bounded cache that evicts), a ``secret`` one by
    ``mod_httapi`` with no HEAD first (the URL is single-use). We serve a secret with
    ``Cache-Control: no-store``, for which ``mod_httapi`` deletes its downloaded copy
    when the playback closes, so nothing of it stays on the node.
    """
    if not str(path).startswith(("http://", "https://")):
        return f"bgapi uuid_broadcast {_uuid(leg_uuid)} playback::{_path(path)} aleg"
    url = _url(path)
    if secret:
        scheme, rest = url.split("://", 1)
        media = f"{{modname=mod_httapi}}{scheme}://(nohead=true){rest}"
    else:
        media = f"{{modname=mod_http_cache}}{url}"
    return f"bgapi uuid_broadcast {_uuid(leg_uuid)} playback::{media} aleg"


def bridge(a_uuid: str, b_uuid: str) -> str:
    """Connect two answered legs."""
    return f"bgapi uuid_bridge {_uuid(a_uuid)} {_uuid(b_uuid)}"


#: Per-recording flags ``uuid_record`` takes (FreeSWITCH reads them before the channel's).
RECORD_FLAGS = frozenset({"RECORD_STEREO", "RECORD_STEREO_SWAP", "RECORD_READ_ONLY",
                          "RECORD_WRITE_ONLY"})


def record_start(leg_uuid: str, path: str, flags: tuple[str, ...] = ()) -> str:
    """Start recording a leg into ``path`` (closed, with ``RECORD_STOP``, at hangup).

    ``path`` is a file on the node, or an upload URL of ours: ``mod_httapi`` then records
    into a file of its own and PUTs it there when the recording closes.
    ``flags`` belong to this recording alone (``{RECORD_STEREO=true,…}`` after the
    limit, 0 = none), so two recordings of one leg never share a setting. Stereo puts
    the leg's own party left and its peer right; ``RECORD_STEREO_SWAP`` the reverse.
    """
    if str(path).startswith(("http://", "https://")):
        target = f"{{modname=mod_httapi}}{_url(path)}"
    else:
        target = _path(path)
    line = f"api uuid_record {_uuid(leg_uuid)} start {target}"
    if not flags:
        return line
    if not isinstance(flags, tuple) or not set(flags) <= RECORD_FLAGS:
        raise ValueError(f"recording flags {flags!r} are not ones we send")
    return f"{line} 0 {{{','.join(f'{name}=true' for name in flags)}}}"


def park(leg_uuid: str) -> str:
    """Take a leg out of whatever it runs (a bridge) and park it: hold."""
    return f"bgapi uuid_transfer {_uuid(leg_uuid)} park inline"


def kill(leg_uuid: str, cause: str = "NORMAL_CLEARING") -> str:
    """Hang a leg up (a CANCEL before it answers, a BYE after)."""
    if cause not in KILL_CAUSES:
        raise ValueError(f"hangup cause {cause!r} is not one we send")
    return f"bgapi uuid_kill {_uuid(leg_uuid)} {cause}"


def exists(leg_uuid: str) -> str:
    """Whether a channel still exists (answers ``true``/``false``)."""
    return f"api uuid_exists {_uuid(leg_uuid)}"


def show_channels() -> str:
    """Every channel the node has (JSON rows; written to its core db a moment after a
    channel appears, so a fresh one may be missing)."""
    return "api show channels as json"


def getvar(leg_uuid: str, name: str) -> str:
    """One channel variable's value (``_undef_`` when unset)."""
    return f"api uuid_getvar {_uuid(leg_uuid)} {_check(name, VAR_NAME_RE, 'variable name')}"


def subscribe() -> str:
    """The listener's subscription."""
    return "events plain " + " ".join(EVENTS)
