"""The entry points that run inside a worker process: a sync edit, and one item of an async or batch task.

Both are thin: they turn what they were handed into a :class:`~retouch.work.item.Job` and say what becomes of
the outcome (returned to the API, or recorded in the task store); :func:`~retouch.work.item.process` does the
work. The local pool and the Celery workers call the same :func:`run_item`, so the job logic never forks.
"""

from __future__ import annotations

from typing import Any

from retouch import logs, tracing
from retouch.contracts.edit import EditRequest, EditResult, UploadData
from retouch.contracts.tasks import BatchEditRequest
from retouch.downloads import Fetched
from retouch.work.context import current
from retouch.work.item import Failure, Job, Outcome, drain_commits, process

__all__ = ["edit_now", "run_item", "worker_exit"]


def _answer(outcome: Outcome) -> EditResult:
    if isinstance(outcome, Failure):
        outcome.raise_()
    assert isinstance(outcome, EditResult)
    return outcome


def edit_now(job: Job) -> EditResult:
    """A sync edit or an upload, whole, in this worker: read (or take the handed-over input), edit, write,
    and the response's ``data`` object."""
    with logs.bind(request_id=job.request_id, account=job.account), tracing.resumed(job.trace, "retouch.edit"):
        result = process(current(), job, _answer)
    assert result is not None
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


def run_item(item_id: int, kind: str, overlap_write: bool = False, fetched: Fetched = None) -> str:
    """Process one item once. Returns "done" when its outcome was recorded, "skipped" when there was nothing to
    do (a redelivery of a finished item, a cancelled task), "deferred" when the write and the record run on this
    worker's commit thread (``overlap_write``, see :func:`~retouch.work.item.process`).

    ``fetched``: the input, when the executor downloaded it before handing the item over (downloads.py) - a
    handoff file, the bytes, or why the download failed; None: read it here.
    """
    ctx = current()
    store = ctx.tasks
    assert store is not None, "run_item needs the task store"
    work = store.start_item(item_id, lease_seconds=ctx.settings.item_lease_seconds)
    if work is None:
        return "skipped"  # already finished (a redelivery) or the task was cancelled
    request = _request(work.task_id, kind, work.request)
    job = Job(
        work.account_id,
        request.operations,
        request.output,
        source=work.source,
        data=fetched,
        out_name=work.output_rel,
        task_id=work.task_id,
    )

    def record(outcome: Outcome) -> str:
        if isinstance(outcome, Failure):
            described = outcome.input.model_dump() if outcome.input is not None else None
            task_id = store.finish_item(item_id, None, f"{work.source}: {outcome.message}", described)
        else:
            result = {
                "input_object": outcome.input.model_dump(),
                "output_object": outcome.output.model_dump(exclude_none=True),
                "input_source": work.source,  # which input made it: a batch's before/after needs both
            }
            task_id = store.finish_item(item_id, result, None, None)
        # finish_item also moved the task to its terminal state when this was its last item.
        return "done" if task_id is not None else "skipped"

    # (an overlapped write logs from the commit thread, without these ids: its failures name the item anyway)
    attributes = {"retouch.task_id": work.task_id, "retouch.item_id": item_id}
    ids = {"request_id": work.request_id, "account": work.account, "task_id": work.task_id, "item_id": item_id}
    with logs.bind(**ids), tracing.span("retouch.item", attributes):
        recorded = process(ctx, job, record, overlap_write=overlap_write)
    return "deferred" if recorded is None else recorded


def worker_exit() -> None:
    """A pool worker's last act (the pool's finalizer): finish the overlapped write, export the buffered spans."""
    drain_commits()
    tracing.shutdown()
