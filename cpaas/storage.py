"""Object storage: a local folder (the embedded default) or S3 through boto3.

Keys are ``/``-separated relative paths. Callers build them with :func:`account_key`,
which confines a user-supplied file name to the account's own prefix, so no name a
user sends can reach another account's files or leave the bucket.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import IO, Iterator

from cpaas import config

#: A user-visible file name: one path segment, no dot-files, no separators.
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.()+-]{0,199}$")
#: Suffix of a file still being written (never listed; its leading dot keeps it out of
#: FILE_NAME_RE, so no user name can address one).
_PART = ".part"


class InvalidName(ValueError):
    """A file name that could escape its prefix or is not a plain name."""


class NotFound(KeyError):
    """No object under that key."""


def account_prefix(account_name: str) -> str:
    """The folder every file of one account lives under."""
    return f"accounts/{account_name}/"


def account_key(account_name: str, file_name: str, folder: str = "files") -> str:
    """Key of a user-named file inside the account's prefix; refuses paths."""
    name = file_name.strip()
    if not FILE_NAME_RE.fullmatch(name) or ".." in name:
        raise InvalidName("must be a plain file name (letters, digits, space, _ . ( ) + -), no folders")
    return f"{account_prefix(account_name)}{folder}/{name}"


class LocalStorage:
    """Objects as files under one root folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        # Keys are built by account_key, but check again: a bug must not become a traversal.
        if self.root not in path.parents:
            raise InvalidName(key)
        return path

    def put_file(self, key: str, local_path: str | Path) -> None:
        """Store a local file under ``key`` (atomically replaces)."""
        with open(local_path, "rb") as source:
            self.put_stream(key, source, sys.maxsize)

    def put_stream(self, key: str, stream: IO[bytes], max_bytes: int) -> int:
        """Store a stream, refusing more than ``max_bytes``; returns the size.

        The object appears whole or not at all: it is written to a temporary file of its
        own (writers of the same key at once never share one) and renamed over the key,
        so the last writer to finish wins and a reader sees one complete version.
        """
        dst = self._path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=_PART)
        tmp = Path(tmp_name)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(1 << 20):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ValueError("file too large")
                    out.write(chunk)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would differ from the files written before
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        return size

    def open(self, key: str) -> IO[bytes]:
        """A binary reader for the object."""
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise NotFound(key) from None

    def exists(self, key: str) -> bool:
        """Whether an object exists under ``key``."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove an object if present."""
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object under ``prefix``."""
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.endswith(_PART):
                yield str(path.relative_to(self.root)), path.stat().st_size


#: Server-side encryption modes S3 accepts in ``ServerSideEncryption`` (CPAAS_S3_SSE).
SSE_MODES = ("AES256", "aws:kms")


def sse_args(sse: str | None, kms_key_id: str | None = None) -> dict[str, str]:
    """The ``ExtraArgs`` that make S3 encrypt an uploaded object at rest (empty: none)."""
    if not sse:
        return {}
    if sse not in SSE_MODES:
        raise ValueError(f"CPAAS_S3_SSE must be one of {', '.join(SSE_MODES)}, not {sse!r}")
    args = {"ServerSideEncryption": sse}
    if sse == "aws:kms" and kms_key_id:
        args["SSEKMSKeyId"] = kms_key_id
    return args


class S3Storage:
    """Objects in an S3 (or S3-compatible) bucket, optionally under a prefix.

    With ``sse`` every upload asks S3 to encrypt the object at rest (``AES256``: keys S3
    manages; ``aws:kms``: the KMS key ``kms_key_id``, or the account's default S3 key).
    """

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 sse: str | None = None, kms_key_id: str | None = None) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = boto3.client("s3", endpoint_url=endpoint_url)
        self.extra_args = sse_args(sse, kms_key_id)

    def _key(self, key: str) -> str:
        return self.prefix + key

    def put_file(self, key: str, local_path: str | Path) -> None:
        """Upload a local file under ``key``."""
        self.client.upload_file(str(local_path), self.bucket, self._key(key),
                                ExtraArgs=self.extra_args or None)

    def put_stream(self, key: str, stream: IO[bytes], max_bytes: int) -> int:
        """Upload a stream (multipart for large ones), refusing more than ``max_bytes``."""
        counted = _LimitedReader(stream, max_bytes)
        self.client.upload_fileobj(counted, self.bucket, self._key(key),
                                   ExtraArgs=self.extra_args or None)
        return counted.size

    def open(self, key: str) -> IO[bytes]:
        """A streaming reader for the object."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self.client.exceptions.NoSuchKey:
            raise NotFound(key) from None

    def exists(self, key: str) -> bool:
        """Whether an object exists under ``key``."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError:
            return False

    def delete(self, key: str) -> None:
        """Remove an object if present."""
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object under ``prefix``."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for obj in page.get("Contents", []):
                yield obj["Key"][len(self.prefix):], obj["Size"]


class _LimitedReader:
    """File-like wrapper that counts bytes and stops past a limit."""

    def __init__(self, stream: IO[bytes], max_bytes: int) -> None:
        self.stream, self.max_bytes, self.size = stream, max_bytes, 0

    def read(self, n: int = -1) -> bytes:
        chunk = self.stream.read(n)
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise ValueError("file too large")
        return chunk


Storage = LocalStorage | S3Storage


def open_storage(url: str, endpoint_url: str | None = None, sse: str | None = None,
                 kms_key_id: str | None = None) -> Storage:
    """Storage for ``url``: ``s3://bucket[/prefix]`` (``sse``: see :class:`S3Storage`)
    or a local folder."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[5:].partition("/")
        return S3Storage(bucket, prefix, endpoint_url, sse, kms_key_id)
    return LocalStorage(url)


def storage_for(settings: config.Settings) -> Storage:
    """The storage ``settings`` configure (URL, endpoint, server-side encryption)."""
    return open_storage(settings.effective_storage_url, settings.s3_endpoint_url,
                        settings.s3_sse, settings.s3_sse_kms_key_id)


@lru_cache(maxsize=1)
def get_storage() -> Storage:
    """The process's storage, from configuration."""
    return storage_for(config.load())
