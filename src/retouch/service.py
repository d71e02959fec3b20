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
from retouch.database import make_engine
from retouch.errors import OperationUnavailable, RetouchError, StorageError
from retouch.pipeline import Encoded, configure_vips, run
from retouch.pipeline.load import FORMATS
from retouch.settings import Limits, Settings
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

    async def read_input(self, source: str) -> tuple[bytes, str]:
        """Bytes and file name of an input URI."""
        if source.startswith(("http://", "https://")):
            fetched = await asyncio.to_thread(fetch, source, self.fetch_policy, client=self._http)
            return fetched.data, fetched.name
        raise StorageError(
            f"Cannot read {source}: storage:// inputs need a storage connector, which this version does not have yet."
        )

    async def edit(self, request: EditRequest) -> dict[str, Any]:
        check_available(request.operations)
        self._check_destination(request.output)
        data, name = await self.read_input(request.input)
        return await self._edit_data(data, name, request.operations, request.output)

    async def edit_upload(self, data: bytes, filename: str, upload: UploadData) -> dict[str, Any]:
        check_available(upload.operations)
        self._check_destination(upload.output)
        return await self._edit_data(data, filename or "image", upload.operations, upload.output)

    def _check_destination(self, output: OutputOptions) -> None:
        if output.destination is not None:
            raise StorageError(
                f"Cannot write to {output.destination}: storage:// destinations need a storage connector, "
                "which this version does not have yet."
            )

    async def _edit_data(
        self, data: bytes, name: str, operations: ImageOperations, output: OutputOptions
    ) -> dict[str, Any]:
        result = await self._process(data, operations, output)
        out_name = output_name(name, result.source.ext, result.format)
        url = await asyncio.to_thread(self.tmp.put, out_name, result.data)
        out = image_object(result.format, result.width, result.height) | {"tmp_url": url}
        if result.frames_dropped:
            out["frames_dropped"] = result.frames_dropped
        return {"input": image_object(result.source.ext, result.source.width, result.source.height), "output": out}
