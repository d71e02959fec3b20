"""An in-memory connector: the reference behaviour the contract tests pin down, and a test double."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from retouch.storage.base import ObjectInfo, ObjectMissing, check_relative, is_hidden, join_key

__all__ = ["MemoryConnector"]


class MemoryConnector:
    kind = "memory"
    read_only = False

    def __init__(self, name: str = "memory", path: str = "") -> None:
        self.name = name
        self.path = path.strip("/")
        self.objects: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def _full(self, key: str) -> str:
        return join_key(self.path, check_relative(key))

    def list(self, prefix: str, recursive: bool) -> Iterator[ObjectInfo]:
        base = join_key(self.path, check_relative(prefix))
        base = base + "/" if base and not base.endswith("/") else base
        with self._lock:
            keys = sorted(self.objects)
        for full in keys:
            if not full.startswith(base) or full.endswith("/"):
                continue
            rel = full[len(base) :]
            if (not recursive and "/" in rel) or is_hidden(rel):
                continue
            yield ObjectInfo(full[len(self.path) + 1 :] if self.path else full, len(self.objects[full][0]))

    def read(self, key: str) -> bytes:
        try:
            return self.objects[self._full(key)][0]
        except KeyError:
            raise ObjectMissing(f"storage://{self.name}/{key} does not exist.") from None

    def write(self, key: str, data: bytes, content_type: str) -> None:
        with self._lock:
            self.objects[self._full(key)] = (bytes(data), content_type)

    def exists(self, key: str) -> bool:
        return self._full(key) in self.objects

    def locate(self, key: str) -> tuple[str | None, str, str]:
        full = self._full(key)
        return None, full, f"memory://{self.name}/{full}"
