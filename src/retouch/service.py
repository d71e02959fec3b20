"""Use cases: the only place that joins the pipeline, inputs, outputs and the stores.

HTTP routes and CLI commands both call into :class:`Service`; neither knows how an image is
fetched, processed or stored.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from retouch.accounts import KeyStore
from retouch.contracts.edit import EditRequest, UploadData
from retouch.contracts.operations import ImageOperations
from retouch.contracts.output import FORMAT_EXTENSIONS, OutputOptions
from retouch.contracts.storages import StorageIn
from retouch.database import make_engine
from retouch.errors import LimitExceeded, OperationUnavailable, RetouchError, StorageError
from retouch.pipeline import Encoded, configure_vips, run
from retouch.pipeline.load import FORMATS
from retouch.settings import Limits, Settings
from retouch.storage.base import ObjectMissing, retry
from retouch.storage.catalog import StorageCatalog
from retouch.storage.registry import parse_storage_uri
from retouch.storage.secrets import SecretBox, load_or_create_key
from retouch.storage.url import FetchPolicy, fetch, guarded_client
from retouch.tmpstore import TmpStore

__all__ = ["Service", "check_available", "edit_bytes", "image_object", "output_name"]

# Operations of the contract that need a model; they are validated now and answer 422 until the
# AI issue ships their offline models.
_AI_UNAVAILABLE = "needs an AI model that this installation does not have yet"


def check_available(ops: ImageOperations) -> None:
    """Refuse, before any work, operations this installation cannot perform."""
    names = ops.ai_operations()
    if names:
        raise OperationUnavailable(
            f"Operation {', '.join(names)} is not available: it {_AI_UNAVAILABLE}.",
            details={name: ["not available in this installation"] for name in names},
        )


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


def _worker_init() -> None:
    configure_vips(threads=1)


def _name_from_url(url: str) -> str:
    segment = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return segment or "image"


@dataclass
class Service:
    settings: Settings

    def __post_init__(self) -> None:
        home = self.settings.resolved_home
        home.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(self.settings.resolved_database_url)
        self.keys = KeyStore(self.engine)
        self.tmp = TmpStore(self.settings.tmp_dir, self.settings.resolved_public_url, self.settings.tmp_retention_hours)
        self.limits = self.settings.limits
        self.fetch_policy = FetchPolicy(
            allow_hosts=tuple(self.settings.fetch_allow_hosts),
            max_bytes=self.settings.max_input_bytes,
            timeout_seconds=self.settings.fetch_timeout_seconds,
            max_redirects=self.settings.fetch_max_redirects,
        )
        # One guarded client for the process: creating one per request costs ~20 ms of CPU (TLS
        # context, CA bundle) and loses keep-alive. httpx clients are safe to share between threads.
        self._http = guarded_client(self.fetch_policy)
        self._pool: ProcessPoolExecutor | None = None
        box = SecretBox(load_or_create_key(self.settings.secret_key, home))
        self.storages = StorageCatalog(self.engine, box, self.fetch_policy, self.settings.storage_roots)

    def first_start(self) -> str | None:
        """On an empty database: account `default`, its key (returned, and saved with mode 0600 under
        RETOUCH_HOME so it is not lost with the terminal) and `storage://local/` on RETOUCH_HOME/storage."""
        if self.keys.count():
            return None
        key = self.keys.create("default")
        principal = self.keys.authenticate(key)
        assert principal is not None
        folder = self.settings.storage_roots[0]
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

    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the API process runs threads (uvicorn, httpx) that fork would copy mid-lock.
            self._pool = ProcessPoolExecutor(
                max_workers=self.worker_count,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._http.close()
        self.engine.dispose()

    async def _process(self, data: bytes, operations: ImageOperations, output: OutputOptions) -> Encoded:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self.pool(), edit_bytes, data, operations, output, self.limits)
            return await asyncio.wait_for(future, timeout=self.settings.item_timeout_seconds)
        except BrokenProcessPool:
            # A worker died (a decoder crash or the OOM killer): replace the pool so later requests work.
            self._pool = None
            raise RetouchError("The image worker stopped unexpectedly while processing this image.") from None
        except TimeoutError:
            raise RetouchError(
                f"Processing took longer than the limit of {self.settings.item_timeout_seconds:g} seconds."
            ) from None

    # ---------------------------------------------------------------- use cases

    def read_input_sync(self, account_id: int, source: str) -> tuple[bytes, str]:
        """Bytes and file name of an input: an http(s) URL or a storage:// file."""
        if source.startswith(("http://", "https://")):
            fetched = fetch(source, self.fetch_policy, client=self._http)
            return fetched.data, fetched.name
        uri = parse_storage_uri(source)
        if uri.is_folder:
            raise StorageError(
                f"{source} is a folder; a single edit needs a file (use the batch endpoint for folders)."
            )
        connector = self.storages.connector(account_id, uri.name)
        try:
            data = retry(lambda: connector.read(uri.path))
        except ObjectMissing:
            raise StorageError(f"Cannot read {source}: the object does not exist.") from None
        if len(data) > self.limits.max_input_bytes:
            raise LimitExceeded(
                f"The input is {len(data)} bytes, over the input size limit of {self.limits.max_input_bytes} bytes."
            )
        return data, uri.path.rsplit("/", 1)[-1]

    def write_output_sync(
        self, account_id: int, destination: str | None, name: str, data: bytes, out_format: str
    ) -> dict[str, Any]:
        """Write a result; returns the output-location fields of the response."""
        if destination is None:
            return {"tmp_url": self.tmp.put(name, data)}
        uri = parse_storage_uri(destination)
        connector = self.storages.connector(account_id, uri.name)
        if connector.read_only:
            raise StorageError(f"Cannot write to {destination}: {connector.kind} storages are read-only.")
        key = uri.path + name if uri.is_folder else uri.path
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
        data, name = await asyncio.to_thread(self.read_input_sync, account_id, request.input)
        return await self._edit_data(account_id, data, name, request.operations, request.output)

    async def edit_upload(self, account_id: int, data: bytes, filename: str, upload: UploadData) -> dict[str, Any]:
        check_available(upload.operations)
        return await self._edit_data(account_id, data, filename or "image", upload.operations, upload.output)

    async def _edit_data(
        self, account_id: int, data: bytes, name: str, operations: ImageOperations, output: OutputOptions
    ) -> dict[str, Any]:
        result = await self._process(data, operations, output)
        out_name = output_name(name, result.source.ext, result.format)
        where = await asyncio.to_thread(
            self.write_output_sync, account_id, output.destination, out_name, result.data, result.format
        )
        out = image_object(result.format, result.width, result.height) | {
            k: v for k, v in where.items() if v is not None
        }
        if result.frames_dropped:
            out["frames_dropped"] = result.frames_dropped
        return {"input": image_object(result.source.ext, result.source.width, result.source.height), "output": out}
