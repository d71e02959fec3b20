"""Run one item inside a worker process: read, edit, write, record. The same function serves the
local pool and the Celery workers, so the job logic never forks."""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from retouch.allocator import tune_malloc
from retouch.contracts.edit import EditRequest, UploadData
from retouch.contracts.tasks import BatchEditRequest
from retouch.downloads import DownloadFailed, Fetched
from retouch.errors import RetouchError, StorageError
from retouch.pipeline import configure_vips
from retouch.pipeline.load import probe
from retouch.settings import Settings

__all__ = ["drain_commits", "edit_in_worker", "init_worker", "run_item", "worker_service"]

log = logging.getLogger("retouch.worker")

_settings: Settings | None = None
_service: Any = None


def init_worker(settings: Settings) -> None:
    """Worker process start: one vips thread (one worker per core is the fast layout)."""
    global _settings
    _settings = settings
    if settings.worker_nice:
        # Image work yields to the API process: under full load its event loop still answers at once (a keyless
        # junk body's 401 took 2.7 s with 2 busy workers on 2 cores). Idle cores still go to the workers.
        os.nice(settings.worker_nice)
    configure_vips(threads=1)
    tune_malloc()  # the same multi-MB buffers every image: keep them in the heap (retouch/allocator.py)
    from retouch import models

    # Models get every core: a lone request (a sync background removal) then takes the whole machine
    # (1 MP removal 0.66 -> 0.39 s on 2 cores), and under load the models' threads sleep instead of
    # spinning, so N workers x N threads costs little: 100 removals 2.13 -> 2.32 img/s, waifu2x -6 %.
    models.configure(threads=settings.model_threads or os.cpu_count() or 1)
    # Celery raises the root logger to INFO; libvips' per-image notes would flood worker logs.
    logging.getLogger("pyvips").setLevel(logging.WARNING)


def worker_service() -> Any:
    """The worker's own Service (database, storages, fetcher), built on first use."""
    global _service
    if _service is None:
        from retouch.service import Service

        assert _settings is not None, "init_worker was not called"
        _service = Service(_settings, worker=True)
    return _service


def edit_in_worker(
    account_id: int, source: str | None, data: bytes | None, name: str, operations: Any, output: Any
) -> dict[str, Any]:
    """A sync edit, run whole in the worker: it fetches (or gets the upload), edits and writes."""
    result: dict[str, Any] = worker_service().edit_result(account_id, source, data, name, operations, output)
    return result


_requests: dict[int, UploadData] = {}


def _request(task_id: int, kind: str, raw: dict[str, Any]) -> UploadData:
    """The task's request, validated once per task in this worker (every item of a batch shares it)."""
    request = _requests.get(task_id)
    if request is None:
        request = BatchEditRequest.model_validate(raw) if kind == "batch" else EditRequest.model_validate(raw)
        if len(_requests) > 256:
            _requests.clear()
        _requests[task_id] = request
    return request


def run_item(item_id: int, kind: str, defer_commit: bool = False, fetched: Fetched = None) -> str:
    """Process one item once. Returns its final item status (or 'skipped'; 'deferred' when the commit
    runs in the background, see below).

    ``defer_commit`` (the local pool): the last step - write the output (temp file, fsync, rename),
    then record the item - runs on this worker's commit thread while the next item is decoded. Under
    a batch's load the fsync waited 2.5 ms on average (p99 32 ms) with the core idle; overlapped, it
    costs nothing. The order inside the step is unchanged, so an item is DONE only once its output
    is durable; a worker that dies with a commit in flight leaves the item RUNNING under its lease,
    and it is run again (the output is rewritten atomically under the same name). At most one commit
    is in flight per worker (one result's bytes held), and the pool drains it before a worker exits.

    ``fetched``: the input, when the executor downloaded it before handing the item over (downloads.py) -
    a handoff file, the bytes, or why the download failed; None: read it here.
    """
    from retouch.service import edit_bytes, image_object

    service = worker_service()
    store = service.tasks
    work = store.start_item(item_id, lease_seconds=service.settings.item_timeout_seconds * 2 + 60)
    if work is None:
        return "skipped"  # already finished (a redelivery) or the task was cancelled
    request = _request(work.task_id, kind, work.request)
    input_object: dict[str, Any] | None = None
    data = b""
    try:
        if isinstance(fetched, DownloadFailed):
            raise StorageError(fetched.message)
        if isinstance(fetched, Path):
            data = fetched.read_bytes()
        elif isinstance(fetched, bytes):
            data = fetched
        else:
            data, _name = service.read_input(work.account_id, work.source)
        result = edit_bytes(data, request.operations, request.output, service.limits)
    except RetouchError as exc:
        # Say what the input was when its header can be read (only on this path: success needs no second probe).
        try:
            info = probe(data, service.limits)
            input_object = image_object(info.ext, info.width, info.height)
        except RetouchError:
            pass
        return _recorded(store.finish_item(item_id, None, f"{work.source}: {exc.public_message}", input_object))
    except Exception:  # a bug must cost one item, never the batch
        log.exception("item %s (%s) failed", item_id, work.source)
        return _recorded(store.finish_item(item_id, None, f"{work.source}: internal error while processing.", None))
    del data

    def commit() -> str:
        source_object = image_object(result.source.ext, result.source.width, result.source.height)
        try:
            where = service.write_output_sync(
                work.account_id, request.output.destination, work.output_rel, result.data, result.format, work.source
            )
            output = image_object(result.format, result.width, result.height) | {
                k: v for k, v in where.items() if v is not None
            }
            if result.frames_dropped:
                output["frames_dropped"] = result.frames_dropped
            outcome = {"input_object": source_object, "output_object": output}
            task_id = store.finish_item(item_id, outcome, None, None)
        except RetouchError as exc:
            task_id = store.finish_item(item_id, None, f"{work.source}: {exc.public_message}", source_object)
        except Exception:
            log.exception("item %s (%s) failed while writing", item_id, work.source)
            message = f"{work.source}: internal error while writing the output."
            task_id = store.finish_item(item_id, None, message, source_object)
        # finish_item also moved the task to its terminal state when this was its last item.
        return _recorded(task_id)

    if not defer_commit:
        return commit()
    global _in_flight
    drain_commits()  # at most one in flight: wait for the previous item's (long done, as a rule)
    _in_flight = _committer().submit(commit)
    return "deferred"


def _recorded(task_id: int | None) -> str:
    return "done" if task_id is not None else "skipped"


_commit_thread: ThreadPoolExecutor | None = None
_in_flight: Future[str] | None = None


def _committer() -> ThreadPoolExecutor:
    global _commit_thread
    if _commit_thread is None:
        _commit_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retouch-commit")
    return _commit_thread


def drain_commits() -> None:
    """Wait for this worker's deferred commit, if any (the pool calls it before a worker exits)."""
    global _in_flight
    pending, _in_flight = _in_flight, None
    if pending is not None:
        try:
            pending.result()
        except Exception:  # commit() records its own failures; this is a failure to record
            log.exception("a deferred commit failed")
