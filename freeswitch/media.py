"""Prompts served to FreeSWITCH nodes over HTTP, for nodes that share no folder with us.

With ``FREESWITCH_MEDIA_URL`` set (the platform's address as the nodes reach it), a node
plays ``<url>/engine-media/<token>.wav``. The token is sealed with the platform's key
(:mod:`cpaas.telephony.sealed`: authenticated and opaque, so it names no file and
cannot be forged or altered) and carries the media name, its plan and an expiry.

A shared prompt (an announcement) is served cacheable, and the node's ``mod_http_cache``
keeps it in its bounded cache. A secret prompt (an OTP, one of the plan's
``ephemeral_files``) gets a token good for one fetch, one per round of the call, and is
served ``Cache-Control: no-store``: the node reads it with ``mod_httapi``, which deletes
its downloaded copy when that playback closes (freeswitch.commands.broadcast_playback).
So no copy is left on the node after the call, and the URL is dead once used
(tests/freeswitch/test_real_make_run.py checks the node's cache folders).

Recordings come back the same way: the node records with ``mod_httapi`` into a sealed,
single-use ``<url>/engine-recordings/<token>.wav`` and, when the recording closes at
hangup, PUTs the file there; we write it where the embedded engine's recordings land
(the data dir's ``engine-recordings/``), and the plan's finisher uploads it to object
storage as for a shared folder.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path

import redis
from flask import Blueprint, Response, abort, request, send_file

from cpaas.config import Settings
from cpaas.platform import platform
from cpaas.telephony import sealed
from cpaas.telephony.audio import replace_atomically
from cpaas.telephony.recordings import engine_folder
from cpaas.telephony.plans import check_media_name, media_path

log = logging.getLogger(__name__)

CONTEXT = "engine-media"
RECORDING_CONTEXT = "engine-recording"
TTL = 3600                   # seconds a prompt URL may be fetched after its call started
RECORDING_TTL = 86400        # a recording arrives when its call ends: allow a long call
MAX_RECORDING_BYTES = 1 << 30
USED_KEY = "cpaas:fs:media-used:{}"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.-]{1,600}$")
#: A recording's file name, as the FreeSWITCH driver makes it (``<plan>-<index>.wav``).
_RECORDING_RE = re.compile(r"^[A-Za-z0-9]{1,40}-[0-9]{1,4}\.wav$")

bp = Blueprint("engine_media", __name__)


def url_for(settings: Settings, name: str, plan_id: str, once: bool) -> str:
    """The URL a node fetches the media ``name`` of ``plan_id`` from."""
    body = json.dumps({"n": check_media_name(name), "p": plan_id, "e": int(time.time()) + TTL,
                       "o": once}, separators=(",", ":"))
    token = sealed.box(settings).seal(body, CONTEXT).rstrip("=")
    return f"{(settings.freeswitch_media_url or '').rstrip('/')}/engine-media/{token}.wav"


def recording_url(settings: Settings, plan_id: str, name: str) -> str:
    """The URL a node PUTs the recording ``name`` of ``plan_id`` to, once."""
    if not _RECORDING_RE.fullmatch(name):
        raise ValueError(f"recording name {name!r} is not one the driver makes")
    body = json.dumps({"n": name, "p": plan_id, "e": int(time.time()) + RECORDING_TTL},
                      separators=(",", ":"))
    token = sealed.box(settings).seal(body, RECORDING_CONTEXT).rstrip("=")
    return f"{(settings.freeswitch_media_url or '').rstrip('/')}/engine-recordings/{token}.wav"


def _open(settings: Settings, token: str, context: str) -> dict:
    if not _TOKEN_RE.fullmatch(token):
        raise ValueError("not a media token")
    try:
        grant = json.loads(sealed.box(settings).open(token + "=" * (-len(token) % 4), context))
    except sealed.SealError as err:
        raise ValueError(str(err)) from None
    if grant["e"] < time.time():
        raise ValueError("media token expired")
    return grant


def open_token(settings: Settings, token: str) -> dict:
    """What a prompt token grants; ``ValueError`` when it is not ours, altered or expired."""
    grant = _open(settings, token, CONTEXT)
    check_media_name(grant["n"])
    return grant


def open_recording_token(settings: Settings, token: str) -> dict:
    """What a recording token grants (``ValueError`` as :func:`open_token`)."""
    grant = _open(settings, token, RECORDING_CONTEXT)
    if not _RECORDING_RE.fullmatch(grant["n"]):
        raise ValueError("not a recording name")
    return grant


def _used_key(token: str) -> str:
    return USED_KEY.format(hashlib.sha256(token.encode()).hexdigest()[:32])


def first_use(r: redis.Redis, token: str, ttl: int = TTL) -> bool:
    """Mark a single-use token used (for ``ttl``, as long as the token is good); False
    when it was already."""
    return bool(r.set(_used_key(token), "1", nx=True, ex=ttl))


@bp.get("/engine-media/<token>.wav")
def serve(token: str) -> Response:
    """One prompt for a node (no account: the sealed token is the permission)."""
    settings = platform().settings
    try:
        grant = open_token(settings, token)
    except ValueError:
        abort(404)
    path = media_path(settings.media_dir, grant["n"])
    if grant["o"]:
        # A HEAD (a node checking freshness) does not spend a single-use token: only
        # the fetch that gets the audio does.
        r = platform().redis
        spent = (r.exists(_used_key(token)) if request.method == "HEAD"
                 else not first_use(r, token))
        if spent:
            log.warning("single-use prompt URL fetched again", extra={"plan_id": grant["p"]})
            abort(410)
    if not path.is_file():
        abort(404)
    log.info("prompt served to a node", extra={"plan_id": grant["p"], "single_use": grant["o"]})
    response = send_file(path, mimetype="audio/wav")
    response.headers["Cache-Control"] = "no-store" if grant["o"] else f"private, max-age={TTL}"
    return response


@bp.put("/engine-recordings/<token>.wav")
def receive_recording(token: str) -> Response:
    """A node's finished recording (the sealed, single-use token names where it goes)."""
    settings = platform().settings
    try:
        grant = open_recording_token(settings, token)
    except ValueError:
        abort(404)
    if (request.content_length or 0) > MAX_RECORDING_BYTES:
        abort(413)
    # mod_httapi PUTs chunked (no Content-Length): the server ends the stream, and this
    # cap, not the app's upload cap, bounds it.
    request.max_content_length = MAX_RECORDING_BYTES
    if not first_use(platform().redis, token, RECORDING_TTL):
        log.warning("recording URL used again", extra={"plan_id": grant["p"]})
        abort(410)
    size = 0

    def write(tmp: Path) -> None:
        nonlocal size
        with open(tmp, "wb") as out:
            while chunk := request.stream.read(1 << 16):
                size += len(chunk)
                out.write(chunk)

    # Written aside and renamed, so the finisher never reads half a file.
    replace_atomically(engine_folder(settings.data_dir) / grant["n"], write)
    log.info("recording received from a node", extra={"plan_id": grant["p"], "bytes": size})
    return Response(status=201)
