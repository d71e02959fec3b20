"""A folder on the server, confined to its root: no '..', no absolute keys, no symlinks out."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from retouch.errors import StorageError
from retouch.storage.base import ObjectInfo, ObjectMissing, check_relative, is_hidden
from retouch.tmpstore import write_atomic

__all__ = ["LocalConnector", "check_local_root"]


def check_local_root(path: str, roots: list[Path]) -> Path:
    """The storage folder, resolved, if it lies under one of the configured roots."""
    folder = Path(path)
    if not folder.is_absolute():
        why = f"must be an absolute folder, received {path[:200]!r}"
        raise StorageError(f"A local storage path {why}.", details={"parameters.path": [why]})
    resolved = folder.resolve()
    for root in roots:
        root = root.resolve()
        if resolved == root or root in resolved.parents:
            return resolved
    allowed = ", ".join(str(r) for r in roots) or "(none configured)"
    why = f"not under an allowed local storage root: {allowed}"
    raise StorageError(f"The folder {path} is {why}.", details={"parameters.path": [why]})


class LocalConnector:
    kind = "local"
    read_only = False

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        rel = check_relative(key)
        path = (self.root / rel) if rel else self.root
        # Resolve symlinks: a link inside the root that points outside it must not be followed.
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise StorageError(f"storage://{self.name}/{key} points outside the storage folder.")
        return resolved

    def list(self, prefix: str, recursive: bool) -> Iterator[ObjectInfo]:
        base = self._path(prefix)
        if not base.is_dir():
            return
        # os.scandir streams the folder (no full list in memory); sorted per folder for stable output.
        stack = [base]
        while stack:
            folder = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            subfolders = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        subfolders.append(Path(entry.path))
                    continue
                if not entry.is_file(follow_symlinks=False) and not self._inside(entry.path):
                    continue
                rel = Path(entry.path).relative_to(self.root).as_posix()
                if not is_hidden(rel) and not rel.split("/")[-1].startswith(".part-"):
                    yield ObjectInfo(rel, entry.stat(follow_symlinks=True).st_size)
            stack.extend(reversed(subfolders))

    def _inside(self, path: str) -> bool:
        resolved = Path(path).resolve()
        return resolved.is_file() and self.root in resolved.parents

    def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"storage://{self.name}/{key} does not exist.") from None
        except IsADirectoryError:
            raise StorageError(f"storage://{self.name}/{key} is a folder, not a file.") from None
        except OSError as exc:
            raise StorageError(f"Cannot read storage://{self.name}/{key}: {exc.strerror}.") from None

    def write(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        try:
            write_atomic(path, data)
        except OSError as exc:
            raise StorageError(f"Cannot write storage://{self.name}/{key}: {exc.strerror}.") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def locate(self, key: str) -> tuple[str | None, str, str]:
        path = self._path(key)
        return None, path.relative_to(self.root).as_posix(), path.as_uri()
