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
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time

import redis
from flask import Blueprint, Response, abort, request, send_file

from cpaas.config import Settings
from cpaas.platform import platform
from cpaas.telephony import sealed
from cpaas.telephony.plans import check_media_name, media_path

log = logging.getLogger(__name__)

CONTEXT = "engine-media"
TTL = 3600                   # seconds a prompt URL may be fetched after its call started
USED_KEY = "cpaas:fs:media-used:{}"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.-]{1,600}$")

bp = Blueprint("engine_media", __name__)


def url_for(settings: Settings, name: str, plan_id: str, once: bool) -> str:
    """The URL a node fetches the media ``name`` of ``plan_id`` from."""
    body = json.dumps({"n": check_media_name(name), "p": plan_id, "e": int(time.time()) + TTL,
                       "o": once}, separators=(",", ":"))
    token = sealed.box(settings).seal(body, CONTEXT).rstrip("=")
    return f"{(settings.freeswitch_media_url or '').rstrip('/')}/engine-media/{token}.wav"


def open_token(settings: Settings, token: str) -> dict:
    """What a token grants; ``ValueError`` when it is not ours, altered or expired."""
    if not _TOKEN_RE.fullmatch(token):
        raise ValueError("not a media token")
    try:
        grant = json.loads(sealed.box(settings).open(token + "=" * (-len(token) % 4), CONTEXT))
    except sealed.SealError as err:
        raise ValueError(str(err)) from None
    if grant["e"] < time.time():
        raise ValueError("media token expired")
    check_media_name(grant["n"])
    return grant


def _used_key(token: str) -> str:
    return USED_KEY.format(hashlib.sha256(token.encode()).hexdigest()[:32])


def first_use(r: redis.Redis, token: str) -> bool:
    """Mark a single-use token used; False when it was already."""
    return bool(r.set(_used_key(token), "1", nx=True, ex=TTL))


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
