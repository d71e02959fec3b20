"""How an item reaches an image worker, the same on both executors: straight to the pool, or through a download
first when its input lies across a network.

The local dispatcher hands it items it claimed from the store; a Celery worker hands it the items the broker
delivered. Either way a hanging origin holds a download slot of this process (limited in total, per account and
per host, ``downloads.py``) and never an image worker: the item reaches the pool only with its bytes in hand
(a handoff file). The pool's deadline, a crashed worker and a failed download all end up recorded on the item.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol

from retouch.downloads import DownloadFailed, Downloads, Fetched
from retouch.errors import RetouchError, ShuttingDown
from retouch.executors.pool import DeadlineExceeded, PoolShutDown, WorkerCrashed, WorkerPool
from retouch.handoff import Handoff
from retouch.stores.tasks import TaskStore
from retouch.work.entry import run_item

__all__ = ["PRIORITY", "Inputs", "ItemRouter"]

log = logging.getLogger("retouch.executor")

# Sync requests (priority 0) overtake async items (1), which overtake batch items (2).
PRIORITY = {"async": 1, "batch": 2}
#: A worker that dies on the same item this many times marks the item failed (a poison input).
MAX_ATTEMPTS = 2


class Inputs(Protocol):
    """Where inputs come from (``downloader.NetworkInputs``): which ones cross a network, and how to read one."""

    def remote_host(self, account_id: int, source: str) -> str | None: ...

    def download_input(self, account_id: int, source: str) -> tuple[Path | bytes, str]: ...


class ItemRouter:
    def __init__(
        self,
        store: TaskStore,
        pool: WorkerPool,
        item_timeout: float,
        *,
        downloads: Downloads | None = None,
        inputs: Inputs | None = None,
        handoff: Handoff | None = None,
        on_done: Callable[[], None] = lambda: None,
    ) -> None:
        self.store, self.pool, self.item_timeout = store, pool, item_timeout
        self.downloads, self.inputs, self.handoff = downloads, inputs, handoff
        #: Called after each item ends (the local dispatcher looks for more work).
        self.on_done = on_done

    def route(self, item_id: int, kind: str, account_id: int, source: str) -> None:
        """To the pool at once, or through a download first when the item's input crosses a network."""
        host = self.inputs.remote_host(account_id, source) if self.inputs is not None else None
        if host is None or self.downloads is None or self.inputs is None:
            self._submit(item_id, kind, None)
            return
        download = self.downloads.submit(
            account_id, host, functools.partial(self.inputs.download_input, account_id, source)
        )
        download.add_done_callback(functools.partial(self._downloaded, item_id, kind))

    def _downloaded(self, item_id: int, kind: str, download: Future[tuple[Path | bytes, str]]) -> None:
        if download.cancelled():  # shutting down: the item goes back to the store for the next worker
            self.store.release([item_id])
            return
        fetched: Fetched
        try:
            fetched = download.result()[0]
        except ShuttingDown:  # this process stopped mid-download: not the input's fault, the next worker runs it
            self.store.release([item_id])
            return
        except RetouchError as exc:
            fetched = DownloadFailed(exc.public_message, exc)
        except Exception:
            log.exception("download for item %s failed", item_id)
            fetched = DownloadFailed("internal error while downloading the input.")
        try:
            self._submit(item_id, kind, fetched)
        except RuntimeError:  # the pool is shut down: back to the store for the next worker
            self._release(fetched)
            self.store.release([item_id])

    def _submit(self, item_id: int, kind: str, fetched: Fetched) -> None:
        # overlap_write: the worker writes and records this item while it decodes the next.
        future = self.pool.submit(
            run_item, item_id, kind, True, fetched, priority=PRIORITY.get(kind, 2), deadline=self.item_timeout
        )
        future.add_done_callback(functools.partial(self._done, item_id, fetched))

    def _release(self, fetched: Fetched) -> None:
        if isinstance(fetched, Path) and self.handoff is not None:
            self.handoff.release(fetched, reuse=False)

    def _done(self, item_id: int, fetched: Fetched, future: Future[str]) -> None:
        if future.cancelled():  # the pool shut down before a worker took it: back to the store at once
            self._release(fetched)
            self.store.release([item_id])
            self.on_done()
            return
        if isinstance(fetched, Path) and self.handoff is not None:
            # Read whole before the worker answers (overlapped writes hold the result, not the input).
            # A killed or cancelled job's worker may not have read it: never reuse that file.
            killed = isinstance(future.exception(), (DeadlineExceeded, WorkerCrashed))
            self.handoff.release(fetched, reuse=not killed)
        try:
            future.result()
        except DeadlineExceeded:
            self.store.fail_item(item_id, f"processing took longer than the limit of {self.item_timeout:g} seconds.")
        except PoolShutDown:  # this process stops: the next worker (or the next start) runs the item
            self.store.give_back(item_id)
        except WorkerCrashed as exc:
            self.store.requeue(item_id, MAX_ATTEMPTS, f"the image worker crashed on this input twice ({exc}).")
        except Exception:
            log.exception("item %s failed outside the pipeline", item_id)
            self.store.requeue(item_id, MAX_ATTEMPTS, "internal error while processing")
        self.on_done()
