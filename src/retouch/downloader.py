"""The download process: network inputs are fetched in a process of their own, not in the API process.

Downloads run ahead of the image workers (see ``downloads.py``) so that waiting for an origin never holds a
core. Run on threads of the API process they cost it ~7 ms of CPU per 3 MB input against ~3.5 ms alone:
HTTP parsing in Python contends for the GIL with the event loop, and the sync URL benchmark fell from 0.87x
to 0.77x the raw baseline. Here they have a GIL of their own: the API process sends (account, source) down a
pipe and gets back the path of a handoff file the body was streamed into, or the error to answer with.

The process builds what reading an input needs (storages, the guarded HTTP client; not the image stack) and
runs up to ``threads`` downloads at once. If it dies, the downloads in flight fail with a message that
says so and a new process is started; the API process keeps the limits and the order (``Downloads``). When its
owner stops, it exits at once without waiting for the downloads in flight, which fail with ``ShuttingDown``: their
items go back to the store rather than failing.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retouch import metrics
from retouch.allocator import tune_malloc
from retouch.children import Child
from retouch.errors import FetchError, RetouchError, ShuttingDown
from retouch.handoff import Handoff
from retouch.inputs import InputReader, fetch_policy

if TYPE_CHECKING:
    from retouch.net import FetchPolicy
    from retouch.settings import Settings
    from retouch.stores.storages import StorageCatalog
    from retouch.work.context import WorkContext

__all__ = ["DownloadProcess", "NetworkInputs"]

log = logging.getLogger("retouch.downloader")


def _into_file(inputs: InputReader, account_id: int, source: str, path: Path, spare: bool) -> str:
    """Stream the input into ``path`` (over a spare file's pages when ``spare``); the input's file name."""
    try:
        handle = path.open("r+b") if spare else path.open("wb")
    except FileNotFoundError:  # the spare was removed meanwhile
        handle = path.open("wb")
    with handle:
        _, name = inputs.read(account_id, source, sink=handle)
        handle.truncate()  # a spare's older, longer contents must not trail the new ones
    return name


def _reader(policy: FetchPolicy, settings: bytes) -> InputReader:
    """An input reader whose storages (SQLAlchemy, the secret box: ~15 MB) are opened on first use: a download
    process serving URL inputs never imports them. ``settings``: the service's ``Settings``, pickled; unpickled
    with the storages, so a process that only fetches URLs never loads pydantic either (~13 MB; docs/performance.md,
    "Memory")."""
    from retouch.net import guarded_client

    client = guarded_client(policy)
    context: list[WorkContext] = []
    lock = threading.Lock()

    def catalog() -> StorageCatalog:
        with lock:
            if not context:
                from retouch.work.context import WorkContext

                # Its storages share this process's guarded client, not a second one.
                context.append(WorkContext.lazy(pickle.loads(settings), http=client))
        storages = context[0].storages
        assert storages is not None
        return storages

    return InputReader(catalog, policy, client)


def _main(conn: Connection, policy: FetchPolicy, settings: bytes, folder: str, threads: int) -> None:
    # The same multi-MB socket buffers every download: from the heap, not fresh page-faulted mappings; one arena
    # for all the download threads, so they reuse one another's freed buffers (allocator.py).
    tune_malloc(arenas=1)
    # What reading an input needs - the guarded client now, the database (storages) and the secret box on the
    # first storage:// input; without the image stack.
    inputs = _reader(policy, settings)
    send_lock = threading.Lock()

    def download(job: int, account_id: int, source: str, spare: str | None) -> None:
        # Over a spare file when the API process has one: a new tmpfs file has every page allocated and zeroed
        # by the kernel as it is written (1.2 ms per 3 MB), writing over old pages does not (handoff.py).
        path = Path(spare) if spare else Path(folder) / uuid.uuid4().hex
        reply: tuple[int, str, Any]
        try:
            try:
                reply = (job, "ok", (str(path), _into_file(inputs, account_id, source, path, spare is not None), b""))
            except OSError:
                # The handoff folder is full or gone (Docker gives /dev/shm 64 MB): send the bytes down the pipe.
                path.unlink(missing_ok=True)
                data, name = inputs.read(account_id, source)
                reply = (job, "ok", (None, name, data))
        except RetouchError as exc:
            path.unlink(missing_ok=True)
            reply = (job, "err", exc)  # RetouchError pickles whole (errors.py)
        except BaseException:
            path.unlink(missing_ok=True)
            log.exception("download of %s failed", source)
            reply = (job, "err", RetouchError("Internal error while downloading the input."))
        with send_lock:
            conn.send(reply)

    pool = ThreadPoolExecutor(threads, thread_name_prefix="retouch-download")
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = None  # the parent is gone
        if message is None:
            break
        pool.submit(download, *message)
    # Asked to stop (or orphaned): the parent gives back the items of the downloads still in flight (ShuttingDown),
    # so waiting for them - a hanging origin holds one for the whole fetch timeout - would only delay the stop
    # (the parent waited 5 s, then killed this process). A half-written handoff file goes with the handoff folder.
    pool.shutdown(wait=False, cancel_futures=True)
    logging.shutdown()
    os._exit(0)


class DownloadProcess:
    def __init__(self, settings: Settings, folder: Path, threads: int) -> None:
        self.settings, self.folder, self.threads = settings, folder, threads
        self._lock = threading.Lock()
        self._pending: dict[int, Future[tuple[Path | bytes, str]]] = {}
        self._ids = itertools.count()
        self._closed = False
        self._start()

    def _start(self) -> None:
        args = (fetch_policy(self.settings), pickle.dumps(self.settings), str(self.folder), self.threads)
        process = Child(_main, args, role="download")
        self._conn, self._process = process.conn, process
        threading.Thread(target=self._receive, args=(process.conn,), name="retouch-downloads-in", daemon=True).start()

    def read(self, account_id: int, source: str, spare: Path | None = None) -> tuple[Path | bytes, str]:
        """Download ``source`` into a handoff file: (its path, the input's file name). Blocks the calling thread
        (a ``Downloads`` thread) until the download ends; raises the error to answer with. ``spare``: a handoff
        file to write over (``Handoff.take_spare``); the answer's path is then that file. Where the handoff
        folder cannot take the file, the answer holds the bytes instead."""
        future: Future[tuple[Path | bytes, str]] = Future()
        with self._lock:
            if self._closed:
                raise ShuttingDown("The service is shutting down; try again.")
            job = next(self._ids)
            self._pending[job] = future
            try:
                self._conn.send((job, account_id, source, str(spare) if spare is not None else None))
            except OSError:  # the process just died: its receiver fails the pending and starts another
                self._pending.pop(job, None)
                raise FetchError("The download process stopped; try again.") from None
        # The fetch has its own deadline; this one only guards against a download process that hangs.
        return future.result(timeout=self.settings.fetch_timeout_seconds * 2 + 30)

    def _receive(self, conn: Connection) -> None:
        while True:
            try:
                job, kind, payload = conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                future = self._pending.pop(job, None)
            if future is None:
                continue
            if kind == "ok":
                path, name, data = payload
                future.set_result((Path(path), name) if path is not None else (data, name))
            else:
                future.set_exception(payload)
        # The process is gone (crashed, killed, or closed): fail what it held, and start another.
        with self._lock:
            pending, self._pending = self._pending, {}
            if not self._closed:
                log.error("the download process stopped; starting a new one")
                self._start()
        for future in pending.values():
            if self._closed:  # our own stop: the item is given back, not failed
                future.set_exception(ShuttingDown("The service is shutting down; try again."))
            else:
                future.set_exception(FetchError("The download process stopped while fetching this input; try again."))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            with contextlib.suppress(OSError):
                self._conn.send(None)
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        self._conn.close()

    def pid(self) -> int | None:
        return self._process.pid


class NetworkInputs:
    """What an executor and the sync path ask of inputs: which ones cross a network, and downloading one through
    the download process into a handoff file (written over a spare one when there is one)."""

    def __init__(self, reader: InputReader, downloader: DownloadProcess, handoff: Handoff) -> None:
        self.reader, self.downloader, self.handoff = reader, downloader, handoff

    def remote_host(self, account_id: int, source: str) -> str | None:
        return self.reader.remote_host(account_id, source)

    def download_input(self, account_id: int, source: str) -> tuple[Path | bytes, str]:
        with metrics.stage("fetch"):  # timed here: the download process itself keeps no metrics
            return self.downloader.read(account_id, source, self.handoff.take_spare())
