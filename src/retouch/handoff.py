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
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import BinaryIO

__all__ = ["Handoff"]

_RAM = Path("/dev/shm")


class Handoff:
    def __init__(self) -> None:
        where = _RAM if _RAM.is_dir() and os.access(_RAM, os.W_OK) else None
        self.folder = Path(tempfile.mkdtemp(prefix="retouch-handoff-", dir=where))

    def create(self) -> tuple[Path, BinaryIO] | None:
        """A new, empty file open for writing, or None when the folder is unusable (removed, full)."""
        path = self.folder / uuid.uuid4().hex
        try:
            return path, path.open("wb")
        except OSError:
            return None

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
