"""The API's use cases: a sync edit, an upload, async and batch tasks, first start.

Built by :mod:`retouch.bootstrap` (which also starts the runtime: the pool, downloads, the executor); the HTTP
routes call it. The image work itself is :func:`retouch.work.item.process`, run in a worker process.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import os
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import Engine

from retouch import logs, tracing
from retouch.contracts.edit import EditRequest, EditResult, UploadData
from retouch.contracts.storages import StorageIn
from retouch.contracts.tasks import BatchEditRequest
from retouch.downloader import DownloadProcess, NetworkInputs
from retouch.downloads import Downloads
from retouch.errors import InputError, NotFound, RetouchError, StorageError
from retouch.executors.base import Executor
from retouch.executors.pool import DeadlineExceeded, WorkerCrashed, WorkerPool
from retouch.formats import guess_ext, name_from_url, output_name
from retouch.handoff import Handoff
from retouch.jobs.lister import Lister, queue_for
from retouch.jobs.listing import relative_inside
from retouch.jobs.webhooks import send_test
from retouch.net import FetchPolicy
from retouch.settings import Limits, Settings
from retouch.storage.registry import parse_storage_uri
from retouch.stores.accounts import KeyStore
from retouch.stores.storages import StorageCatalog
from retouch.stores.tasks import ItemSpec, TaskStore
from retouch.stores.webhooks import WebhookStore
from retouch.tmpstore import SharedTmpStore, TmpStore
from retouch.work.context import WorkContext
from retouch.work.entry import edit_now
from retouch.work.job import Job, check_available

__all__ = ["Runtime", "Service", "Stoppable"]


class Stoppable(Protocol):
    def stop(self) -> None: ...


@dataclass
class Runtime:
    """What ``serve`` runs besides the routes; built and started by ``bootstrap.start``."""

    pool: WorkerPool
    downloads: Downloads
    downloader: DownloadProcess
    inputs: NetworkInputs
    executor: Executor
    lister: Lister
    background: list[Stoppable] = field(default_factory=list)

    def close(self) -> None:
        for part in self.background:
            part.stop()
        self.lister.stop()
        self.executor.shutdown()
        self.downloads.shutdown()
        self.downloader.close()
        self.pool.shutdown()
        tracing.shutdown()  # export the spans still buffered


@dataclass
class Service:
    """The use cases. ``work`` holds the parts shared with the workers (database, storages, inputs, tmp store)."""

    settings: Settings
    work: WorkContext
    keys: KeyStore
    webhooks: WebhookStore
    runtime: Runtime | None = None
    _handoff: Handoff | None = None

    # ---------------------------------------------------------------- parts

    @property
    def engine(self) -> Engine:
        assert self.work.engine is not None
        return self.work.engine

    @property
    def tasks(self) -> TaskStore:
        assert self.work.tasks is not None
        return self.work.tasks

    @property
    def storages(self) -> StorageCatalog:
        assert self.work.storages is not None
        return self.work.storages

    @property
    def fetch_policy(self) -> FetchPolicy:
        assert self.work.fetch_policy is not None
        return self.work.fetch_policy

    @property
    def limits(self) -> Limits:
        return self.settings.limits

    @property
    def tmp(self) -> TmpStore | SharedTmpStore:
        return self.work.tmp

    @property
    def worker_count(self) -> int:
        return self.settings.workers or os.cpu_count() or 1

    @property
    def handoff(self) -> Handoff:
        if self._handoff is None:
            self._handoff = Handoff()  # created on first upload or download: the CLI never needs one
        return self._handoff

    def _running(self) -> Runtime:
        if self.runtime is None:
            raise RuntimeError("bootstrap.start() was not called")
        return self.runtime

    @property
    def pool(self) -> WorkerPool:
        return self._running().pool

    @property
    def downloads(self) -> Downloads:
        return self._running().downloads

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        self.work.close()
        if self._handoff is not None:
            self._handoff.close()

    def first_start(self) -> str | None:
        """On an empty database: account `default`, its key (returned, and saved with mode 0600 under
        RETOUCH_HOME so it is not lost with the terminal) and `storage://local/` on RETOUCH_HOME/storage/default."""
        if self.keys.count():
            return None
        key = self.keys.create("default")
        principal = self.keys.authenticate(key)
        assert principal is not None
        # A folder of its own under the root, not the root itself: other accounts' local storages go beside it
        # (a storage may not hold another account's folder; see StorageCatalog._check_own_folder).
        folder = self.settings.storage_roots[0] / "default"
        folder.mkdir(parents=True, exist_ok=True)
        spec = StorageIn.model_validate({"name": "local", "type": "local", "parameters": {"path": str(folder)}})
        self.storages.create(principal.account_id, spec)
        path = self.settings.resolved_home / "initial-api-key"
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key

    # ---------------------------------------------------------------- inputs across a network

    def remote_host(self, account_id: int, source: str) -> str | None:
        """Where an input's bytes come from when that is across a network - an http(s) origin's host, or a
        cloud storage - as the key its downloads are limited by; None for local files (read in the worker)."""
        return self._running().inputs.remote_host(account_id, source)

    def download_input(self, account_id: int, source: str) -> tuple[Path | bytes, str]:
        """On a download thread of the API process: the input in a handoff file, fetched by the download process
        (downloader.py), so the API process neither parses the HTTP nor holds a whole body (200 concurrent 12 MP
        URL edits took it to 354 MB when it held them)."""
        return self._running().inputs.download_input(account_id, source)

    def _drop_download(self, download: Future[tuple[Path | bytes, str]]) -> None:
        """A download whose request went away before it finished: release its file."""
        if not download.cancelled() and download.exception() is None:
            fetched = download.result()[0]
            if isinstance(fetched, Path):
                self.handoff.release(fetched)

    # ---------------------------------------------------------------- sync

    async def edit(self, account_id: int, request: EditRequest) -> EditResult:
        check_available(request.operations)
        if request.output.destination is not None:
            parse_storage_uri(request.output.destination)  # a malformed destination fails before any work
        if request.input.startswith("storage://"):
            self.storages.connector(account_id, parse_storage_uri(request.input).name)  # unknown storage: 400 now
        request_id, account = _ids()
        job = Job(
            account_id, request.operations, request.output, source=request.input, request_id=request_id, account=account
        )
        host = self.remote_host(account_id, request.input)
        if host is None:
            # A local file: the worker reads it and writes the result itself, the bytes never pass through here.
            return await self._in_worker(job)
        # Across a network: downloaded here first (downloads.py), so a hanging origin holds no image worker.
        # In this request's context (a download thread has none of its own): its fetch span joins the request's trace.
        read = functools.partial(contextvars.copy_context().run, self.download_input, account_id, request.input)
        download = self.downloads.submit(account_id, host, read)
        try:
            fetched, name = await asyncio.wrap_future(download)
        except asyncio.CancelledError:
            download.add_done_callback(self._drop_download)
            raise
        path = fetched if isinstance(fetched, Path) else None
        try:
            return await self._in_worker(dataclasses.replace(job, data=fetched, name=name))
        except asyncio.CancelledError:
            if path is not None:  # the worker may still read it
                self.handoff.release(path, reuse=False)
                path = None
            raise
        finally:
            if path is not None:
                self.handoff.release(path)

    async def edit_upload(self, account_id: int, image: Path | bytes, filename: str, upload: UploadData) -> EditResult:
        """``image``: the upload's bytes, or the handoff file holding them (the caller deletes it)."""
        check_available(upload.operations)
        request_id, account = _ids()
        job = Job(
            account_id,
            upload.operations,
            upload.output,
            data=image,
            name=filename or "image",
            request_id=request_id,
            account=account,
        )
        return await self._in_worker(job)

    async def _in_worker(self, job: Job) -> EditResult:
        # Priority 0: a sync request overtakes queued async and batch items.
        # The request's span context goes with the job: the worker's spans join the request's trace.
        future = self.pool.submit(edit_now, dataclasses.replace(job, trace=tracing.carrier()), priority=0)
        try:
            result: EditResult = await asyncio.wrap_future(future)
        except WorkerCrashed:
            raise RetouchError("The image worker stopped unexpectedly while processing this image.") from None
        except DeadlineExceeded:
            raise RetouchError(
                f"Processing took longer than the limit of {self.settings.item_timeout_seconds:g} seconds."
            ) from None
        return result

    # ---------------------------------------------------------------- async and batch

    def result_url(self, kind: str, task_id: int) -> str:
        return f"{self.settings.resolved_public_url}/v1/image/edit/{kind}/{task_id}"

    def submit_async(self, account_id: int, request: EditRequest, raw: dict[str, Any]) -> dict[str, Any]:
        check_available(request.operations)
        if request.output.destination is not None:
            parse_storage_uri(request.output.destination)
        if request.input.startswith("storage://"):
            self.storages.connector(account_id, parse_storage_uri(request.input).name)  # unknown storage: 400 now
        task = self.tasks.create(account_id, "async", raw, request_id=_ids()[0])
        name = name_from_url(urlsplit(request.input).path)
        spec = ItemSpec(request.input, output_name(name, guess_ext(name), request.output.format.type))
        self.tasks.add_items(task.id, [spec], 0, queue_for(request.operations))
        self.tasks.mark_listed(task.id)
        self._notify()
        # The accepting answer says ACCEPTED even if a worker already picked the item up (the contract's rule).
        return self.tasks.view(task, self.result_url("async", task.id)) | {"status": "ACCEPTED"}

    def submit_batch(self, account_id: int, request: BatchEditRequest, raw: dict[str, Any]) -> dict[str, Any]:
        check_available(request.operations)
        destination = None
        if request.output.destination is not None:
            dest = parse_storage_uri(request.output.destination)
            destination = (self.storages.connector(account_id, dest.name), dest.path)
            if destination[0].read_only:
                raise StorageError(f"Cannot write to {request.output.destination}: the storage is read-only.")
        for source in request.sources():
            if source.source.startswith("storage://"):
                uri = parse_storage_uri(source.source)
                connector = self.storages.connector(account_id, uri.name)
                same = destination is not None and relative_inside((connector, uri.path), destination) == ""
                if same and uri.is_folder and not self.settings.allow_overwrite_input:
                    raise InputError(
                        f"The destination {request.output.destination} is the input folder {source.source}: the "
                        "outputs would be written among (and over) the inputs. Write to another folder, e.g. a "
                        "sub-folder; the operator can allow it with RETOUCH_ALLOW_OVERWRITE_INPUT=true.",
                        details={"output.destination": ["the same folder as an input"]},
                    )
        task = self.tasks.create(account_id, "batch", raw, request_id=_ids()[0])
        # Listing happens in the background: a folder of 100,000 objects must not hold up the answer.
        self._running().lister.submit(task.id)
        return self.tasks.view(task, self.result_url("batch", task.id)) | {"status": "ACCEPTED"}

    def _notify(self) -> None:
        if self.runtime is not None:
            self.runtime.executor.notify()

    def task_view(self, account_id: int, kind: str, task_id: int, offset: int, limit: int | None) -> dict[str, Any]:
        task = self.tasks.get(account_id, task_id, kind)
        return self.tasks.view(task, self.result_url(kind, task_id), offset, limit)

    def cancel(self, account_id: int, kind: str, task_id: int) -> dict[str, Any]:
        task = self.tasks.cancel(account_id, task_id, kind)
        if self.runtime is not None:
            self.runtime.executor.cancel(task_id)
        return self.tasks.view(task, self.result_url(kind, task_id))

    # ---------------------------------------------------------------- account

    def recent_tasks(self, account_id: int, limit: int) -> list[dict[str, Any]]:
        return self.tasks.recent(account_id, limit, self.result_url)

    def usage(self, account_id: int) -> dict[str, Any]:
        return self.tasks.usage(account_id)

    def test_webhook(self, account_id: int) -> dict[str, Any]:
        assert self.work.http is not None
        sent = send_test(
            self.webhooks, self.work.http, self.fetch_policy, account_id, self.settings.webhook_timeout_seconds
        )
        if sent is None:
            raise NotFound("No webhook is configured.")
        return sent


def _ids() -> tuple[str | None, str | None]:
    """The request's id and account, for the worker's log lines."""
    ids = logs.context()
    return ids.get("request_id"), ids.get("account")
