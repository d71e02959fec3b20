"""The embedded executor: a dispatcher thread moves item ids from the task store to the worker pool.

Items are claimed only when a worker is free, so the store — not process memory — holds the queue:
a batch of 100,000 items costs a few rows in flight, and a crash loses nothing (the next start
puts RUNNING items back to PENDING; outputs are written atomically, results recorded once).

Each claimed item goes through ``ItemRouter`` (router.py): an input across a network is downloaded first, on
threads of this process, and reaches the pool with its bytes in a handoff file, so a hanging origin never holds
a worker. Accounts whose downloads are at their limit are left out of the claim until one finishes.
"""

from __future__ import annotations

import logging
import threading

from retouch.downloads import Downloads
from retouch.executors.pool import WorkerPool
from retouch.executors.router import Inputs, ItemRouter
from retouch.handoff import Handoff
from retouch.settings import Settings
from retouch.stores.tasks import TaskStore

__all__ = ["LocalExecutor"]

log = logging.getLogger("retouch.executor")

#: Items queued per worker beyond the one it runs, and the claim size per worker (see _dispatch).
AHEAD, CHUNK = 4, 2


class LocalExecutor:
    def __init__(
        self,
        store: TaskStore,
        pool: WorkerPool,
        settings: Settings,
        *,
        downloads: Downloads | None = None,
        inputs: Inputs | None = None,
        handoff: Handoff | None = None,
    ) -> None:
        self.store = store
        self.pool = pool
        self.downloads = downloads
        self.lease = settings.item_lease_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.router = ItemRouter(
            store,
            pool,
            settings.item_timeout_seconds,
            downloads=downloads,
            inputs=inputs,
            handoff=handoff,
            on_done=self._wake.set,
        )
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
                claimed = self.store.claim(wanted, lease_seconds=self.lease, skip_accounts=busy) if wanted else []
                # (sync requests take pool slots too; free_slots() already counts them)
                for item in claimed:
                    self.router.route(item.item_id, item.kind, item.account_id, item.source)
            except Exception:  # the dispatcher must survive a database hiccup
                log.exception("dispatch failed; retrying")
                claimed = []
            # Claimed a full set: look again at once when a worker frees up; else sleep until notified.
            self._wake.wait(timeout=0.5 if not claimed else 0.05)
            self._wake.clear()
