"""Use cases: the only place that joins the pipeline, inputs, outputs and the stores.

HTTP routes and CLI commands both call into :class:`Service`; neither knows how an image is
fetched, processed or stored.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from retouch.accounts import KeyStore
from retouch.contracts.edit import EditRequest, UploadData
from retouch.contracts.operations import ImageOperations
from retouch.contracts.output import FORMAT_EXTENSIONS, OutputOptions
from retouch.contracts.storages import StorageIn
from retouch.contracts.tasks import BatchEditRequest
from retouch.database import Account, check_schema, make_engine
from retouch.downloader import DownloadProcess
from retouch.downloads import Downloads
from retouch.errors import InputError, OperationUnavailable, RetouchError, StorageError
from retouch.executors.base import Executor
from retouch.executors.local import LocalExecutor
from retouch.executors.pool import DeadlineExceeded, WorkerCrashed, WorkerPool
from retouch.handoff import Handoff
from retouch.inputs import InputReader, fetch_policy
from retouch.jobs.janitor import Janitor
from retouch.jobs.listing import expand, guess_ext, relative_inside
from retouch.jobs.models import Task
from retouch.jobs.runner import drain_commits, init_worker
from retouch.jobs.store import ItemSpec, TaskStore
from retouch.jobs.webhooks import WebhookSender, WebhookStore
from retouch.net import guarded_client
from retouch.pipeline import Encoded, run
from retouch.pipeline.load import FORMATS
from retouch.settings import Limits, Settings
from retouch.storage.base import retry
from retouch.storage.catalog import StorageCatalog
from retouch.storage.local import LocalConnector
from retouch.storage.registry import parse_storage_uri
from retouch.storage.secrets import SecretBox, load_or_create_key
from retouch.tmpstore import SharedTmpStore, TmpStore

__all__ = ["Service", "check_available", "edit_bytes", "image_object", "output_name"]

log = logging.getLogger("retouch.service")

# Operations of the contract with no offline model and no honest classical stand-in: validated, then
# refused with a message that says so (docs/operations.md).
_NO_OFFLINE_MODEL = "no offline model for it ships with retouch"


def check_available(ops: ImageOperations) -> None:
    """Refuse, before any work, operations this installation cannot perform."""
    names: list[str] = []
    bg = ops.background
    if bg is not None and ((bg.remove and bg.remove.selective) or (bg.blur and bg.blur.selective)):
        names.append("background.selective (text-prompted object)")
    if ops.generative and ops.generative.style_transfer:
        names.append("generative.style_transfer")
    if ops.resizing and ops.resizing.fit.type == "outpaint":
        names.append("resizing.fit.outpaint")
    if names:
        raise OperationUnavailable(
            f"Operation {', '.join(names)} is not available: {_NO_OFFLINE_MODEL}.",
            details={name.split(" ")[0]: ["not available in this installation"] for name in names},
        )
    from retouch import models

    for operation in ops.ai_operations():
        models.require(operation)


def queue_for(ops: ImageOperations) -> str:
    """Model work goes to its own queue so a batch of 4x upscales does not starve plain resizes."""
    return "ai" if ops.ai_operations() or (ops.resizing and ops.resizing.fit.crop == "smart") else "fast"


def output_name(input_name: str, input_ext: str, out_format: str) -> str:
    """Input stem + the output format's extension; the input's own extension is kept as written
    when the format does not change (``IMG_1.JPG`` stays ``IMG_1.JPG``)."""
    path = PurePosixPath(input_name or "image")
    suffix = path.suffix
    same = out_format == input_ext or (input_ext == "heif" and out_format == "heif")
    known = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".avif", ".tif", ".tiff", ".gif", ".bmp", ".heic", ".heif"}
    if suffix.lower() in known:
        if same:
            return path.name
        return path.stem + FORMAT_EXTENSIONS[out_format]
    return path.name + FORMAT_EXTENSIONS[out_format]


def image_object(ext: str, width: int, height: int) -> dict[str, Any]:
    fmt, mime = FORMATS[ext]
    return {"ext": ext, "mps": width * height / 1e6, "mime": mime, "format": fmt, "width": width, "height": height}


def edit_bytes(data: bytes, operations: ImageOperations, output: OutputOptions, limits: Limits) -> Encoded:
    """Run one edit in this process (the CLI and the worker processes call this)."""
    check_available(operations)
    return run(data, operations, output, limits)


def _name_from_url(url: str) -> str:
    segment = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return segment or "image"


@dataclass
class Service:
    """The use cases. ``worker=True`` builds only what a worker process needs (no pool, no threads);
    the API calls :meth:`start` to run the worker pool, the dispatcher, listers and webhooks."""

    settings: Settings
    worker: bool = False

    def __post_init__(self) -> None:
        home = self.settings.resolved_home
        home.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(self.settings.resolved_database_url)
        self.keys = KeyStore(self.engine)
        self.tasks = TaskStore(self.engine)
        self._local_tmp = TmpStore(
            self.settings.tmp_dir, self.settings.resolved_public_url, self.settings.tmp_retention_hours
        )
        self._shared_tmp: SharedTmpStore | None = None
        self._handoff: Handoff | None = None
        self.limits = self.settings.limits
        self.fetch_policy = fetch_policy(self.settings)
        self._http = guarded_client(self.fetch_policy)
        box = SecretBox(load_or_create_key(self.settings.secret_key, home))
        self.box = box
        self.storages = StorageCatalog(self.engine, box, self.fetch_policy, self.settings.storage_roots)
        self.inputs = InputReader(self.storages, self.fetch_policy, self._http)
        self.webhooks = WebhookStore(self.engine, box)
        self._pool: WorkerPool | None = None
        self._executor: Executor | None = None
        self._background: list[Any] = []
        self._listers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="retouch-list")
        self._downloads: Downloads | None = None
        self._downloader: DownloadProcess | None = None

    def start(self) -> None:
        """Start the worker pool, the dispatcher, pending listings, webhook delivery and clean-up."""
        if self._pool is not None:
            return
        celery = self.settings.executor == "celery"
        if celery and self.engine.dialect.name != "sqlite":
            check_schema(self.engine)
        # Sync edits always run on this replica's own pool (answered in the request, never queued
        # behind a batch); in Celery mode async and batch items go to the workers instead.
        self._pool = WorkerPool(
            self.worker_count,
            initializer=init_worker,
            initargs=(self.settings,),
            finalizer=drain_commits,
            default_deadline=self.settings.item_timeout_seconds,
        )
        self._downloads = Downloads(
            self.settings.fetch_concurrency, self.settings.fetch_per_account, self.settings.fetch_per_host
        )
        self._downloader = DownloadProcess(self.settings, self.handoff.folder, self.settings.fetch_concurrency)
        if celery:
            from retouch.executors.celery import CeleryExecutor

            self._executor = CeleryExecutor(self.tasks, self.settings)
        else:
            self._executor = LocalExecutor(
                self.tasks,
                self._pool,
                self.settings.item_timeout_seconds,
                downloads=self._downloads,
                inputs=self,
                handoff=self.handoff,
            )
        sender = WebhookSender(self.tasks, self.webhooks, self._http, self.result_url, self.settings, self.fetch_policy)
        janitor = Janitor(self)
        self._background = [sender, janitor]
        for task_id in self.tasks.unlisted_tasks():  # listings cut short by a crash or restart
            self._listers.submit(self._list_task, task_id)

    @property
    def tmp(self) -> TmpStore | SharedTmpStore:
        """Where results without a destination go: a local folder, or RETOUCH_TMP_STORAGE when replicas share."""
        uri = self.settings.tmp_storage
        if not uri:
            return self._local_tmp
        if self._shared_tmp is None:
            target = parse_storage_uri(uri)
            with Session(self.engine) as session:
                account = session.scalar(select(Account).where(Account.name == self.settings.tmp_storage_account))
            if account is None:
                raise RetouchError(f"RETOUCH_TMP_STORAGE: no account named {self.settings.tmp_storage_account!r}.")
            connector = self.storages.connector(account.id, target.name)
            self._shared_tmp = SharedTmpStore(
                connector, target.path, self.settings.resolved_public_url, self.settings.tmp_retention_hours
            )
        return self._shared_tmp

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

    # ---------------------------------------------------------------- worker pool

    @property
    def worker_count(self) -> int:
        return self.settings.workers or os.cpu_count() or 1

    @property
    def handoff(self) -> Handoff:
        if self._handoff is None:
            self._handoff = Handoff()  # created on first upload: workers and the CLI never need one
        return self._handoff

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            raise RuntimeError("Service.start() was not called")
        return self._pool

    def close(self) -> None:
        for part in self._background:
            part.stop()
        self._listers.shutdown(wait=False, cancel_futures=True)
        if self._executor is not None:
            self._executor.shutdown()
        if self._downloads is not None:
            self._downloads.shutdown()
        if self._downloader is not None:
            self._downloader.close()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self._http.close()
        self.engine.dispose()
        if self._handoff is not None:
            self._handoff.close()

    # ---------------------------------------------------------------- use cases

    @property
    def downloads(self) -> Downloads:
        if self._downloads is None:
            raise RuntimeError("Service.start() was not called")
        return self._downloads

    def remote_host(self, account_id: int, source: str) -> str | None:
        """Where an input's bytes come from when that is across a network - an http(s) origin's host, or a
        cloud storage - as the key its downloads are limited by; None for local files (read in the worker)."""
        if source.startswith(("http://", "https://")):
            return "url:" + urlsplit(source).netloc.rsplit("@", 1)[-1].lower()
        try:
            uri = parse_storage_uri(source)
            if uri.is_folder or isinstance(self.storages.connector(account_id, uri.name), LocalConnector):
                return None
        except RetouchError:
            return None  # the job itself will say what is wrong with it
        return f"storage:{account_id}:{uri.name}"

    def read_input(self, account_id: int, source: str) -> tuple[bytes, str]:
        """Bytes and file name of an input: an http(s) URL or a storage:// file."""
        return self.inputs.read(account_id, source)

    def download_input(self, account_id: int, source: str) -> tuple[Path | bytes, str]:
        """On a download thread of the API process: the input in a handoff file, fetched by the download process
        (downloader.py), so the API process neither parses the HTTP nor holds a whole body (200 concurrent 12 MP
        URL edits took it to 354 MB when it held them)."""
        if self._downloader is None:
            raise RuntimeError("Service.start() was not called")
        return self._downloader.read(account_id, source, self.handoff.take_spare())

    def _drop_download(self, download: Future[tuple[Path | bytes, str]]) -> None:
        """A download whose request went away before it finished: release its file."""
        if not download.cancelled() and download.exception() is None:
            fetched = download.result()[0]
            if isinstance(fetched, Path):
                self.handoff.release(fetched)

    def write_output_sync(
        self, account_id: int, destination: str | None, name: str, data: bytes, out_format: str, source: str | None
    ) -> dict[str, Any]:
        """Write a result; returns the output-location fields of the response. ``source`` is the request's
        input: an output that would land on it is refused unless RETOUCH_ALLOW_OVERWRITE_INPUT is set."""
        if destination is None:
            return {"tmp_url": self.tmp.put(PurePosixPath(name).name, data)}
        uri = parse_storage_uri(destination)
        connector = self.storages.connector(account_id, uri.name)
        if connector.read_only:
            raise StorageError(f"Cannot write to {destination}: {connector.kind} storages are read-only.")
        key = uri.path + name if uri.is_folder else uri.path
        if source is not None and source.startswith("storage://") and not self.settings.allow_overwrite_input:
            source_uri = parse_storage_uri(source)
            source_connector = self.storages.connector(account_id, source_uri.name)
            if source_connector.locate(source_uri.path)[2] == connector.locate(key)[2]:
                raise InputError(
                    f"The output storage://{uri.name}/{key} would overwrite the input {source}. Write to another "
                    "path; the operator can allow it with RETOUCH_ALLOW_OVERWRITE_INPUT=true.",
                    details={"output.destination": ["the same file as the input"]},
                )
        retry(lambda: connector.write(key, data, FORMATS[out_format][1]))
        bucket, object_key, object_uri = connector.locate(key)
        return {
            "object_key": object_key,
            "object_bucket": bucket,
            "object_uri": object_uri,
            "claid_storage_uri": f"storage://{uri.name}/{key}",
        }

    async def edit(self, account_id: int, request: EditRequest) -> dict[str, Any]:
        check_available(request.operations)
        if request.output.destination is not None:
            parse_storage_uri(request.output.destination)  # a malformed destination fails before any work
        if request.input.startswith("storage://"):
            self.storages.connector(account_id, parse_storage_uri(request.input).name)  # unknown storage: 400 now
        host = self.remote_host(account_id, request.input)
        if host is None:
            # A local file: the worker reads it and writes the result itself, the bytes never pass through here.
            return await self._in_worker(account_id, request.input, None, "", request.operations, request.output)
        # Across a network: downloaded here first (downloads.py), so a hanging origin holds no image worker.
        read = functools.partial(self.download_input, account_id, request.input)
        download = self.downloads.submit(account_id, host, read)
        try:
            fetched, name = await asyncio.wrap_future(download)
        except asyncio.CancelledError:
            download.add_done_callback(self._drop_download)
            raise
        path = fetched if isinstance(fetched, Path) else None
        try:
            return await self._in_worker(account_id, request.input, fetched, name, request.operations, request.output)
        except asyncio.CancelledError:
            if path is not None:  # the worker may still read it
                self.handoff.release(path, reuse=False)
                path = None
            raise
        finally:
            if path is not None:
                self.handoff.release(path)

    async def edit_upload(
        self, account_id: int, image: Path | bytes, filename: str, upload: UploadData
    ) -> dict[str, Any]:
        """``image``: the upload's bytes, or the handoff file holding them (the caller deletes it)."""
        check_available(upload.operations)
        return await self._in_worker(account_id, None, image, filename or "image", upload.operations, upload.output)

    async def _in_worker(
        self,
        account_id: int,
        source: str | None,
        data: bytes | Path | None,
        name: str,
        operations: ImageOperations,
        output: OutputOptions,
    ) -> dict[str, Any]:
        from retouch.jobs.runner import edit_in_worker

        # Priority 0: a sync request overtakes queued async and batch items.
        future = self.pool.submit(edit_in_worker, account_id, source, data, name, operations, output, priority=0)
        try:
            result: dict[str, Any] = await asyncio.wrap_future(future)
        except WorkerCrashed:
            raise RetouchError("The image worker stopped unexpectedly while processing this image.") from None
        except DeadlineExceeded:
            raise RetouchError(
                f"Processing took longer than the limit of {self.settings.item_timeout_seconds:g} seconds."
            ) from None
        return result

    def edit_result(
        self,
        account_id: int,
        source: str | None,
        data: bytes | Path | None,
        name: str,
        ops: ImageOperations,
        output: OutputOptions,
    ) -> dict[str, Any]:
        """One sync edit, start to end, in this (worker) process: read, edit, write, describe."""
        if isinstance(data, Path):
            data = data.read_bytes()  # an upload or download the API process handed over as a file (handoff)
        if data is None:
            assert source is not None
            data, name = self.read_input(account_id, source)
        result = edit_bytes(data, ops, output, self.limits)
        out_name = output_name(name, result.source.ext, result.format)
        where = self.write_output_sync(account_id, output.destination, out_name, result.data, result.format, source)
        out = image_object(result.format, result.width, result.height) | {
            k: v for k, v in where.items() if v is not None
        }
        if result.frames_dropped:
            out["frames_dropped"] = result.frames_dropped
        return {"input": image_object(result.source.ext, result.source.width, result.source.height), "output": out}

    # ---------------------------------------------------------------- async and batch

    def result_url(self, kind: str, task_id: int) -> str:
        return f"{self.settings.resolved_public_url}/v1/image/edit/{kind}/{task_id}"

    def submit_async(self, account_id: int, request: EditRequest, raw: dict[str, Any]) -> dict[str, Any]:
        check_available(request.operations)
        if request.output.destination is not None:
            parse_storage_uri(request.output.destination)
        if request.input.startswith("storage://"):
            self.storages.connector(account_id, parse_storage_uri(request.input).name)  # unknown storage: 400 now
        task = self.tasks.create(account_id, "async", raw)
        name = _name_from_url(request.input)
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
        task = self.tasks.create(account_id, "batch", raw)
        # Listing happens in the background: a folder of 100,000 objects must not hold up the answer.
        self._listers.submit(self._list_task, task.id)
        return self.tasks.view(task, self.result_url("batch", task.id)) | {"status": "ACCEPTED"}

    def _list_task(self, task_id: int) -> None:
        lease = 120.0
        if not self.tasks.take_listing(task_id, lease):
            return
        try:
            with Session(self.engine) as session:
                task = session.get(Task, task_id)
                assert task is not None
                account_id, raw = task.account_id, dict(task.request)
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
                if len(chunk) >= 500:
                    self.tasks.add_items(task_id, chunk, seq, queue)
                    seq += len(chunk)
                    chunk = []
                    self.tasks.extend_listing(task_id, lease)
                    self._notify()
            self.tasks.add_items(task_id, chunk, seq, queue)
            self.tasks.mark_listed(task_id, " ".join(problems) or None)
        except RetouchError as exc:
            self.tasks.mark_listed(task_id, exc.public_message)
        except Exception:
            log.exception("listing of task %s failed", task_id)
            self.tasks.mark_listed(task_id, "Internal error while listing the inputs.")
        self._notify()
        self.tasks.maybe_finish(task_id)

    def _notify(self) -> None:
        if self._executor is not None:
            self._executor.notify()

    def task_view(self, account_id: int, kind: str, task_id: int, offset: int, limit: int | None) -> dict[str, Any]:
        task = self.tasks.get(account_id, task_id, kind)
        return self.tasks.view(task, self.result_url(kind, task_id), offset, limit)

    def cancel(self, account_id: int, kind: str, task_id: int) -> dict[str, Any]:
        task = self.tasks.cancel(account_id, task_id, kind)
        if self._executor is not None:
            self._executor.cancel(task_id)
        return self.tasks.view(task, self.result_url(kind, task_id))
