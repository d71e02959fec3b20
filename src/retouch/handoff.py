"""Large request bodies go to the worker process through a RAM-backed file, not the pool's pipe.

An upload of a few MB sent through the pool's pipe is pickled, pushed through the pipe 64 KB at a time
(each chunk waking the worker), received and unpickled: measured, the API process spent a fifth of its
time per upload in the pipe send alone. Copying it into a file under ``/dev/shm`` (tmpfs: a memcpy)
and handing over the path costs the API one copy and the worker one read.

The API process owns the files: it writes one per request and deletes it when the worker's answer (or
its crash, or the deadline) comes back, so a worker that dies leaves nothing behind. The folder is
removed at shutdown. Where ``/dev/shm`` is missing, or full (Docker gives it 64 MB), the caller
falls back to sending the bytes.
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

    def put(self, stream: BinaryIO) -> Path | None:
        """The stream's content (from its start) in a new file, or None when it does not fit."""
        path = self.folder / uuid.uuid4().hex
        try:
            stream.seek(0)
            with path.open("wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
        except OSError:  # ENOSPC on a small tmpfs, or the folder was removed: send the bytes instead
            path.unlink(missing_ok=True)
            return None
        return path

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
