"""The storage interface every connector implements, and what they share (keys, retries, filters).

A connector is bound to one configured storage: its root (bucket + path, or a folder) is fixed, and
every key it takes is relative to that root. Keys use ``/`` whatever the backend.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from retouch.errors import StorageError
from retouch.formats import is_image_name
from retouch.keys import key_problem

__all__ = [
    "Connector",
    "ObjectInfo",
    "ObjectMissing",
    "TransientStorageError",
    "is_hidden",
    "is_image_key",
    "join_key",
    "retry",
]


class ObjectMissing(StorageError):
    """The object does not exist (permanent: never retried)."""

    status = 404


class TransientStorageError(StorageError):
    """A timeout, 5xx or throttling answer: worth another try."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the connector's root
    size: int | None = None


@runtime_checkable
class Connector(Protocol):
    """One storage. Implementations: memory, local, s3, gcs, web_folder."""

    #: ``s3``, ``gcs``, ``web_folder``, ``local``, ``memory``
    kind: str
    read_only: bool

    def list(self, prefix: str, recursive: bool) -> Iterator[ObjectInfo]:
        """Objects under the folder ``prefix`` ("" = root), lazily, page by page. Directory markers
        and hidden files (a segment starting with '.') are skipped. Non-recursive lists only the
        folder's own objects."""
        ...

    def read(self, key: str) -> bytes:
        """The object's bytes; :class:`ObjectMissing` when there is none."""
        ...

    def write(self, key: str, data: bytes, content_type: str) -> None:
        """Write atomically: readers see the old object or the whole new one, never a part."""
        ...

    def exists(self, key: str) -> bool: ...

    def locate(self, key: str) -> tuple[str | None, str, str]:
        """(bucket, key in the bucket, URI) of an object, for the response's object_* fields."""
        ...


def join_key(*parts: str) -> str:
    """Join storage path and relative key with single slashes; a trailing slash is kept (folder)."""
    cleaned = [p.strip("/") for p in parts if p and p.strip("/")]
    joined = "/".join(cleaned)
    if parts and parts[-1].endswith("/") and joined:
        joined += "/"
    return joined


def is_hidden(key: str) -> bool:
    return any(part.startswith(".") for part in key.split("/") if part)


def is_image_key(key: str) -> bool:
    return not key.endswith("/") and not is_hidden(key) and is_image_name(key)


def check_relative(key: str) -> str:
    """Refuse keys that could escape a root ('..') or that a file system or object store refuses (control
    characters, over-long names: see ``key_problem``); empty segments are folded."""
    problem = key_problem(key)
    if problem is not None:
        raise StorageError(f"The path {key[:200]!r} is not allowed: {problem}.")
    parts = [p for p in key.split("/") if p not in ("", ".")]
    return "/".join(parts) + ("/" if key.endswith("/") and parts else "")


T = TypeVar("T")


def retry(action: Callable[[], T], *, attempts: int = 4, base_delay: float = 0.2) -> T:
    """Run ``action``, retrying :class:`TransientStorageError` with exponential backoff and jitter."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except TransientStorageError:
            if attempt == attempts:
                raise
            time.sleep(base_delay * 2 ** (attempt - 1) * (0.5 + random.random()))
    raise AssertionError("unreachable")
