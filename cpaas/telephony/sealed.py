"""Sealed secrets: what must cross Redis but never be read there (an OTP's spoken text).

A call job's arguments sit in Redis, in its append-only file and on the RQ dashboard,
and RQ logs them when the job starts. So the secret part of a plan travels sealed:
AES-256-GCM (``cryptography``'s ``AESGCM``), authenticated, bound to its plan id (the
associated data), so a token cannot be altered or replayed into another plan. Only the
call job opens it, just before it renders the prompt.

The key is ``CPAAS_SECRET_KEY`` (URL-safe base64 of 32 bytes) when set; otherwise the
file ``secret.key`` in the data folder, mode 0600, made by whichever platform process
needs it first (the web process seals, the worker opens; both share the data folder).
"""
from __future__ import annotations

import base64
import binascii
import logging
import os
import stat
import tempfile
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cpaas.config import Settings

log = logging.getLogger(__name__)

KEY_FILE = "secret.key"
KEY_BYTES = 32
NONCE_BYTES = 12
PREFIX = "sealed1."


class SealError(ValueError):
    """A token that is malformed, altered, or sealed under another key or plan; or a bad key."""


class Box:
    """Seals and opens short texts under one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SealError(f"a sealing key is {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    def seal(self, plain: str, context: str) -> str:
        """``plain`` as an opaque token (a safe ASCII string) that only ``open`` with the
        same ``context`` (the plan id) reads."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain.encode("utf-8"), context.encode("utf-8"))
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, token: str, context: str) -> str:
        """The text ``token`` seals; :class:`SealError` unless it is intact and for ``context``."""
        if not token.startswith(PREFIX):
            raise SealError("not a sealed token")
        try:
            raw = base64.urlsafe_b64decode(token[len(PREFIX):].encode("ascii"))
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode("utf-8"))
        except (binascii.Error, UnicodeEncodeError, InvalidTag, ValueError):
            raise SealError("sealed token altered, or sealed under another key or plan") from None
        return plain.decode("utf-8")


def _decode_key(text: bytes | str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip())
    except (binascii.Error, ValueError):   # ValueError: a str that is not ASCII
        raise SealError(f"{where} is not URL-safe base64") from None
    if len(key) != KEY_BYTES:
        raise SealError(f"{where} holds {len(key)} bytes; a key is {KEY_BYTES}")
    return key


def _read_key_file(path: Path) -> bytes:
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        # Made by hand or copied without its mode: only the platform's user may read it.
        log.warning("secret key file was readable by others; made 0600", extra={"path": str(path)})
        path.chmod(0o600)
    return _decode_key(path.read_bytes(), str(path))


def _key_file(path: Path) -> bytes:
    """The key in ``path``, made first if there is none (safe against a concurrent maker)."""
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".secret-key.", dir=path.parent)   # O_EXCL, 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(base64.urlsafe_b64encode(os.urandom(KEY_BYTES)) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            # A hard link appears whole, and only if no other process linked its key first.
            os.link(tmp, path)
            log.info("secret key file created", extra={"path": str(path)})
        except FileExistsError:
            # Another process linked its key first: that key is the platform's, read below.
            log.debug("secret key file made by another process", extra={"path": str(path)})
    finally:
        os.unlink(tmp)
    return _read_key_file(path)


_boxes: dict[tuple[str | None, str], Box] = {}
_lock = threading.Lock()


def box(settings: Settings) -> Box:
    """The platform's :class:`Box` (its key read or made once per process)."""
    source = (settings.secret_key, str(settings.secret_key_file))
    with _lock:
        if source not in _boxes:
            key = (_decode_key(settings.secret_key, "CPAAS_SECRET_KEY")
                   if settings.secret_key else _key_file(settings.secret_key_file))
            _boxes[source] = Box(key)
        return _boxes[source]
