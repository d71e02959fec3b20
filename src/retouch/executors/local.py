"""The embedded executor: a dispatcher thread moves item ids from the task store to the worker pool.

Items are claimed only when a worker is free, so the store — not process memory — holds the queue:
a batch of 100,000 items costs a few rows in flight, and a crash loses nothing (the next start
puts RUNNING items back to PENDING; outputs are written atomically, results recorded once).

An item whose input lies across a network is downloaded first (``downloads.Downloads``, on threads of
this process) and reaches the pool with its bytes in a handoff file, so a hanging origin never holds a
worker. Accounts whose downloads are at their limit are left out of the claim until one finishes.
"""

from __future__ import annotations

import functools
import logging
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol

from retouch.downloads import DownloadFailed, Downloads, Fetched
from retouch.errors import RetouchError
from retouch.executors.pool import DeadlineExceeded, WorkerCrashed, WorkerPool
from retouch.handoff import Handoff
from retouch.jobs.runner import run_item
from retouch.jobs.store import TaskStore

__all__ = ["Inputs", "LocalExecutor"]

log = logging.getLogger("retouch.executor")

# Sync requests (priority 0) overtake async items (1), which overtake batch items (2).
PRIORITY = {"async": 1, "batch": 2}
#: Items queued per worker beyond the one it runs, and the claim size per worker (see _dispatch).
AHEAD, CHUNK = 4, 2
#: A worker that dies on the same item this many times marks the item failed (a poison input).
MAX_ATTEMPTS = 2


class Inputs(Protocol):
    """Where inputs come from (the service): which ones cross a network, and how to read one."""

    def remote_host(self, account_id: int, source: str) -> str | None: ...

    def download_input(self, account_id: int, source: str) -> tuple[Path | bytes, str]: ...


class LocalExecutor:
    def __init__(
        self,
        store: TaskStore,
        pool: WorkerPool,
        item_timeout: float,
        *,
        downloads: Downloads | None = None,
        inputs: Inputs | None = None,
        handoff: Handoff | None = None,
    ) -> None:
        self.store = store
        self.pool = pool
        self.item_timeout = item_timeout
        self.downloads, self.inputs, self.handoff = downloads, inputs, handoff
        self._wake = threading.Event()
        self._stop = threading.Event()
        released = store.release_running()
        if released:
            log.info("resuming %d items left running by the previous process", released)
        self._thread = threading.Thread(target=self._dispatch, name="retouch-dispatch", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def cancel(self, task_id: int) -> None:
        self._wake.set()  # pending items were cancelled in the store; nothing queued here to drop

    def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            try:
                # Keep exactly the free workers busy: the queue stays in the database.
                # Up to AHEAD items queued per worker, claimed in chunks of CHUNK per worker: fewer,
                # larger claims (each is a transaction) while the workers never run dry.
                free = self.pool.free_slots(ahead=AHEAD)
                wanted = free if free >= CHUNK * self.pool.size else 0
                # Items in download do not take pool slots; their accounts sit out while at their limit.
                busy = self.downloads.saturated() if self.downloads is not None else set()
                lease = self.item_timeout * 2 + 60
                claimed = self.store.claim(wanted, lease_seconds=lease, skip_accounts=busy) if wanted else []
                # (sync requests take pool slots too; free_slots() already counts them)
                for item_id, kind, _queue in claimed:
                    self._route(item_id, kind)
            except Exception:  # the dispatcher must survive a database hiccup
                log.exception("dispatch failed; retrying")
                claimed = []
            # Claimed a full set: look again at once when a worker frees up; else sleep until notified.
            self._wake.wait(timeout=0.5 if not claimed else 0.05)
            self._wake.clear()

    def _route(self, item_id: int, kind: str) -> None:
        """To the pool at once, or through a download first when the item's input crosses a network."""
        found = self.store.item_source(item_id) if self.downloads is not None else None
        host = self.inputs.remote_host(*found) if found is not None and self.inputs is not None else None
        if found is None or host is None or self.downloads is None or self.inputs is None:
            self._submit(item_id, kind, None)
            return
        account_id, source = found
        download = self.downloads.submit(
            account_id, host, functools.partial(self.inputs.download_input, account_id, source)
        )
        download.add_done_callback(functools.partial(self._downloaded, item_id, kind))

    def _downloaded(self, item_id: int, kind: str, download: Future[tuple[Path | bytes, str]]) -> None:
        fetched: Fetched
        try:
            fetched = download.result()[0]
        except RetouchError as exc:
            fetched = DownloadFailed(exc.public_message)
        except Exception:
            log.exception("download for item %s failed", item_id)
            fetched = DownloadFailed("internal error while downloading the input.")
        try:
            self._submit(item_id, kind, fetched)
        except Exception:  # the pool is shut down: the item stays RUNNING under its lease and comes back
            log.exception("item %s could not be handed to a worker", item_id)

    def _submit(self, item_id: int, kind: str, fetched: Fetched) -> None:
        # defer_commit: the worker writes and records this item while it decodes the next.
        future = self.pool.submit(
            run_item, item_id, kind, True, fetched, priority=PRIORITY.get(kind, 2), deadline=self.item_timeout
        )
        future.add_done_callback(functools.partial(self._done, item_id, fetched))

    def _done(self, item_id: int, fetched: Fetched, future: Future[str]) -> None:
        if isinstance(fetched, Path) and self.handoff is not None:
            # Read whole before the worker answers (deferred commits hold the result, not the input).
            # A killed or cancelled job's worker may not have read it: never reuse that file.
            killed = future.cancelled() or isinstance(future.exception(), (DeadlineExceeded, WorkerCrashed))
            self.handoff.release(fetched, reuse=not killed)
        try:
            future.result()
        except DeadlineExceeded:
            self.store.fail_item(item_id, f"processing took longer than the limit of {self.item_timeout:g} seconds.")
        except WorkerCrashed as exc:
            self.store.requeue(item_id, MAX_ATTEMPTS, f"the image worker crashed on this input twice ({exc}).")
        except Exception:
            log.exception("item %s failed outside the pipeline", item_id)
            self.store.requeue(item_id, MAX_ATTEMPTS, "internal error while processing")
        self._wake.set()
