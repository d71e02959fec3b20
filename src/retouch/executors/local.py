"""The embedded executor: a dispatcher thread moves item ids from the task store to the worker pool.

Items are claimed only when a worker is free, so the store — not process memory — holds the queue:
a batch of 100,000 items costs a few rows in flight, and a crash loses nothing (the next start
puts RUNNING items back to PENDING; outputs are written atomically, results recorded once).
"""

from __future__ import annotations

import functools
import logging
import threading
from concurrent.futures import Future

from retouch.executors.pool import DeadlineExceeded, WorkerCrashed, WorkerPool
from retouch.jobs.runner import run_item
from retouch.jobs.store import TaskStore

__all__ = ["LocalExecutor"]

log = logging.getLogger("retouch.executor")

# Sync requests (priority 0) overtake async items (1), which overtake batch items (2).
PRIORITY = {"async": 1, "batch": 2}
#: Items queued per worker beyond the one it runs, and the claim size per worker (see _dispatch).
AHEAD, CHUNK = 4, 2
#: A worker that dies on the same item this many times marks the item failed (a poison input).
MAX_ATTEMPTS = 2


class LocalExecutor:
    def __init__(self, store: TaskStore, pool: WorkerPool, item_timeout: float) -> None:
        self.store = store
        self.pool = pool
        self.item_timeout = item_timeout
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
                claimed = self.store.claim(wanted, lease_seconds=self.item_timeout * 2 + 60) if wanted else []
                # (sync requests take pool slots too; free_slots() already counts them)
                for item_id, kind, _queue in claimed:
                    # defer_commit: the worker writes and records this item while it decodes the next.
                    future = self.pool.submit(
                        run_item, item_id, kind, True, priority=PRIORITY.get(kind, 2), deadline=self.item_timeout
                    )
                    future.add_done_callback(functools.partial(self._done, item_id))
            except Exception:  # the dispatcher must survive a database hiccup
                log.exception("dispatch failed; retrying")
                claimed = []
            # Claimed a full set: look again at once when a worker frees up; else sleep until notified.
            self._wake.wait(timeout=0.5 if not claimed else 0.05)
            self._wake.clear()

    def _done(self, item_id: int, future: Future[str]) -> None:
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
