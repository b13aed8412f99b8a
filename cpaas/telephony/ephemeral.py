"""Per-call audio files (an OTP prompt): who deletes them, and when.

The call job places the call first and renders the prompt while it rings, so the file
may appear after the engine has already finished the plan (a busy number ends in
milliseconds). Both sides therefore follow one rule, whatever the engine:

* the engine, when a plan ends: :func:`release` marks the plan ended, then deletes;
* the job, once a file is in place: :func:`settle` deletes it if the plan has ended.

Whichever of the two runs last finds the file and deletes it, so no prompt outlives its
call and none is deleted while the call may still play it.

The files carry secrets: they live in a folder only the platform's user can enter
(:func:`private_folder`), or only it and a FreeSWITCH that shares a group with it, and
are no more readable than that folder (see :func:`cpaas.telephony.audio.replace_atomically`).
"""
from __future__ import annotations

import logging
import grp
import os
import stat
from collections.abc import Iterable
from pathlib import Path

import redis

from cpaas.telephony.plans import media_path

log = logging.getLogger(__name__)

ENDED_KEY = "cpaas:plan:{plan_id}:ended"
#: Long past any render: the mark only has to outlive the job that renders the prompt.
ENDED_TTL = 3600


def private_folder(path: Path, group: str | None = None) -> Path:
    """``path`` as a folder that only this user may list or enter (0700), made if need be;
    with ``group`` (a name or a gid), one that group may read too and no one else (2750:
    files made in it take its group).

    ``chmod`` as well as ``mkdir``: the umask may narrow ``mkdir``'s mode, and a folder
    made by an older release (or by hand) may be open to others.
    """
    mode = 0o700 if group is None else 0o2750
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if group is not None:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        if path.stat().st_gid != gid:
            os.chown(path, -1, gid)
    if stat.S_IMODE(path.stat().st_mode) != mode:
        path.chmod(mode)
    return path


def _ended_key(plan_id: str) -> str:
    return ENDED_KEY.format(plan_id=plan_id)


def remove(paths: Iterable[str]) -> None:
    """Delete per-call audio files; only plain absolute paths are touched."""
    for path in paths:
        if not os.path.isabs(path) or ".." in path.split(os.sep):
            log.warning("refusing to delete an ephemeral file", extra={"path": path})
            continue
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError:
            log.exception("cannot delete an ephemeral file", extra={"path": path})


def release(r: redis.Redis, plan_id: str, names: Iterable[str], media_dir: Path) -> None:
    """Engine side: the plan has ended; mark it so, then delete its files (``names``
    inside ``media_dir``, as the plan lists them)."""
    names, paths = list(names), []
    for name in names:
        try:
            paths.append(str(media_path(media_dir, name)))
        except ValueError:
            log.warning("refusing to delete an ephemeral file", extra={"path": name})
    if names:
        try:
            r.set(_ended_key(plan_id), 1, ex=ENDED_TTL)
        except redis.RedisError:
            # Still delete what is there; only a prompt rendered later could linger.
            log.warning("cannot mark plan ended", extra={"plan_id": plan_id})
    remove(paths)


def settle(r: redis.Redis, plan_id: str, path: str) -> bool:
    """Job side: ``path`` is now in place; delete it if its plan already ended.

    Returns whether the file was kept for the call.
    """
    if r.exists(_ended_key(plan_id)):
        remove([path])
        return False
    return True
