"""Listing a batch's inputs into items, in the background: a folder of 100,000 objects must not hold up the
answer to the request that named it. Listing is leased, so a listing cut short by a crash or a restart is taken
up again by the next start (:meth:`Lister.resume`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from retouch.contracts.operations import ImageOperations
from retouch.contracts.tasks import BatchEditRequest
from retouch.errors import RetouchError
from retouch.formats import output_name
from retouch.jobs.listing import expand
from retouch.storage.registry import parse_storage_uri
from retouch.stores.storages import StorageCatalog
from retouch.stores.tasks import ItemSpec, TaskStore

__all__ = ["Lister", "queue_for"]

log = logging.getLogger("retouch.lister")

#: Items are added (and the executor woken) this many at a time, so workers start before the listing ends.
CHUNK = 500
LEASE_SECONDS = 120.0


def queue_for(ops: ImageOperations) -> str:
    """Model work goes to its own queue so a batch of 4x upscales does not starve plain resizes."""
    return "ai" if ops.ai_operations() or (ops.resizing and ops.resizing.fit.crop == "smart") else "fast"


class Lister:
    def __init__(self, tasks: TaskStore, storages: StorageCatalog, notify: Callable[[], None]) -> None:
        self.tasks, self.storages, self.notify = tasks, storages, notify
        self._threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="retouch-list")

    def submit(self, task_id: int) -> None:
        self._threads.submit(self.list_task, task_id)

    def resume(self) -> None:
        for task_id in self.tasks.unlisted_tasks():  # listings cut short by a crash or restart
            self.submit(task_id)

    def stop(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    def list_task(self, task_id: int) -> None:
        if not self.tasks.take_listing(task_id, LEASE_SECONDS):
            return
        try:
            account_id, raw = self.tasks.request_of(task_id)
            request = BatchEditRequest.model_validate(raw)
            fmt = request.output.format.type
            queue = queue_for(request.operations)
            problems: list[str] = []
            dest = request.output.destination
            destination = None
            if dest is not None:
                dest_uri = parse_storage_uri(dest)
                destination = (self.storages.connector(account_id, dest_uri.name), dest_uri.path)
            specs = expand(
                request.sources(),
                lambda name: self.storages.connector(account_id, name),
                lambda name, ext: output_name(name, ext, fmt),
                problems,
                destination,
            )
            chunk: list[ItemSpec] = []
            seq = 0
            for spec in specs:
                chunk.append(spec)
                if len(chunk) >= CHUNK:
                    self.tasks.add_items(task_id, chunk, seq, queue)
                    seq += len(chunk)
                    chunk = []
                    self.tasks.extend_listing(task_id, LEASE_SECONDS)
                    self.notify()
            self.tasks.add_items(task_id, chunk, seq, queue)
            self.tasks.mark_listed(task_id, " ".join(problems) or None)
        except RetouchError as exc:
            self.tasks.mark_listed(task_id, exc.public_message)
        except Exception:
            log.exception("listing of task %s failed", task_id)
            self.tasks.mark_listed(task_id, "Internal error while listing the inputs.")
        self.notify()
        self.tasks.maybe_finish(task_id)
