"""Large request bodies go to the worker process through a RAM-backed file, not the pool's pipe.

An upload of a few MB sent through the pool's pipe is pickled, pushed through the pipe 64 KB at a time
(each chunk waking the worker), received and unpickled: measured, the API process spent a fifth of its
time per upload in the pipe send alone. Copying it into a file under ``/dev/shm`` (tmpfs: a memcpy)
and handing over the path costs the API one copy and the worker one read.

The API process owns the files: it writes one per request (streamed straight from the multipart
body, :mod:`retouch.api.upload`) and deletes it when the worker's answer (or its crash, or the
deadline) comes back, so a worker that dies leaves nothing behind. The folder is removed at shutdown.
Where ``/dev/shm`` is missing, or full (Docker gives it 64 MB), the upload is kept in memory and
sent as bytes instead.

Files are reused: a new tmpfs file has every page allocated and zeroed by the kernel as it is
written, and freed again on unlink - 1.2 ms of API CPU per 3 MB upload, against 0.25 ms for writing
over the pages of a spare file. Up to ``SPARE_FILES`` files of at most ``SPARE_BYTES`` each are kept
(~50 MB of RAM at 3 MB photos); a file goes back to the spares only once the worker's answer came
back, never when the request was cancelled while a worker may still be reading it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import BinaryIO

__all__ = ["Handoff"]

_RAM = Path("/dev/shm")
SPARE_FILES = 16
SPARE_BYTES = 32 * 1024 * 1024


class Handoff:
    """Used from the event loop (uploads, sync downloads) and the download threads (batch items)."""

    def __init__(self) -> None:
        where = _RAM if _RAM.is_dir() and os.access(_RAM, os.W_OK) else None
        self.folder = Path(tempfile.mkdtemp(prefix="retouch-handoff-", dir=where))
        self._spare: list[Path] = []
        self._lock = threading.Lock()

    def create(self) -> tuple[Path, BinaryIO] | None:
        """A file open for writing from its start - a spare one if there is one, else a new one - or
        None when the folder is unusable (removed, full). Close it with :meth:`seal`."""
        while True:
            with self._lock:
                if not self._spare:
                    break
                path = self._spare.pop()
            try:
                return path, path.open("r+b")
            except OSError:  # removed under us: take another
                path.unlink(missing_ok=True)
        path = self.folder / uuid.uuid4().hex
        try:
            return path, path.open("wb")
        except OSError:
            return None

    def take_spare(self) -> Path | None:
        """A spare file's path for another process to write over (the download process), or None."""
        with self._lock:
            return self._spare.pop() if self._spare else None

    @staticmethod
    def seal(handle: BinaryIO) -> None:
        """Close a file from :meth:`create`, cut where the writing stopped: a spare file's older, longer
        contents must not trail the new ones."""
        try:
            handle.truncate()
        finally:
            handle.close()

    @property
    def spares(self) -> list[Path]:
        return list(self._spare)

    def release(self, path: Path, reuse: bool = True) -> None:
        """The caller is done with ``path``: keep it as a spare, or remove it. ``reuse=False`` when a
        worker might still read it (the request was cancelled mid-edit)."""
        if reuse and len(self._spare) < SPARE_FILES:
            try:
                size = path.stat().st_size
            except OSError:
                return
            with self._lock:
                if size <= SPARE_BYTES and len(self._spare) < SPARE_FILES:
                    self._spare.append(path)
                    return
        path.unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
