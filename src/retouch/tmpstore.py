"""Results kept by the service when a request names no destination, served at an unguessable tmp_url.

Layout: ``{root}/{token}/{file name}``; the token is 128 random bits, so the URL is the only
credential (as with Claid's temporary bucket). Files are written atomically and removed after the
retention period by :meth:`TmpStore.cleanup`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["SharedTmpStore", "TmpStore", "write_atomic"]


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, fsync, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _safe_name(name: str) -> str:
    name = name.replace("/", "_").replace("\\", "_").strip() or "image"
    return "_" + name if name.startswith(".") else name


class TmpStore:
    def __init__(self, root: Path, public_url: str, retention_hours: float) -> None:
        self.root = root
        self.public_url = public_url.rstrip("/")
        self.retention_seconds = retention_hours * 3600

    def put(self, name: str, data: bytes) -> str:
        """Store ``data`` as ``name``; return its public URL."""
        token = secrets.token_urlsafe(16)
        name = _safe_name(name)
        write_atomic(self.root / token / name, data)
        return f"{self.public_url}/v1/tmp/{token}/{quote(name)}"

    def fetch(self, token: str, name: str) -> Path | bytes | None:
        return self.path(token, name)

    def path(self, token: str, name: str) -> Path | None:
        """The file for a token and name, or None if unknown, expired or malformed."""
        if not token or "/" in token or token.startswith(".") or name != _safe_name(name):
            return None
        path = self.root / token / name
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return None
        return path if age <= self.retention_seconds else None

    def cleanup(self) -> int:
        """Delete expired results; returns how many folders were removed."""
        removed = 0
        cutoff = time.time() - self.retention_seconds
        if not self.root.is_dir():
            return 0
        for folder in self.root.iterdir():
            try:
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            except OSError:
                continue
        return removed


class SharedTmpStore:
    """Tmp results in a storage shared by every replica (``RETOUCH_TMP_STORAGE=storage://name/prefix/``),
    served through any API replica. The token starts with its creation time, so expiry needs no
    metadata; deleting old objects is left to the bucket's lifecycle rule (docs/deploy.md)."""

    def __init__(self, connector: Any, prefix: str, public_url: str, retention_hours: float) -> None:
        self.connector = connector
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.public_url = public_url.rstrip("/")
        self.retention_seconds = retention_hours * 3600

    def put(self, name: str, data: bytes) -> str:
        token = f"{int(time.time()):08x}{secrets.token_urlsafe(16)}"
        name = _safe_name(name)
        self.connector.write(f"{self.prefix}{token}/{name}", data, "application/octet-stream")
        return f"{self.public_url}/v1/tmp/{token}/{quote(name)}"

    def fetch(self, token: str, name: str) -> Path | bytes | None:
        try:
            created = int(token[:8], 16)
        except ValueError:
            return None
        if time.time() - created > self.retention_seconds or name != _safe_name(name) or "/" in token:
            return None
        try:
            data: bytes = self.connector.read(f"{self.prefix}{token}/{name}")
        except Exception:
            return None
        return data

    def cleanup(self) -> int:
        return 0  # the bucket's lifecycle rule deletes old objects
