"""The one unit of work: read the input -> edit -> write the output -> describe it.

Every path runs an image through :func:`process`: a sync edit and an upload (the pool, ``work.runner.edit_now``),
async and batch items on the local pool and on Celery workers (``work.runner.run_item``), ``retouch batch``
(``localbatch``) and ``retouch edit`` (``cli``). What differs between them is only where the input comes from
(a :class:`Job` carries a source to read, or bytes already in hand) and where the outcome goes (returned,
recorded in the task store, counted in a report).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from retouch import metrics
from retouch.contracts.edit import EditResult, OutputObject
from retouch.contracts.operations import ImageOperations
from retouch.downloads import DownloadFailed
from retouch.errors import ImageError, RetouchError, StorageError
from retouch.formats import output_name
from retouch.pipeline import Encoded, run
from retouch.pipeline.load import probe
from retouch.pipeline.style_transfer import reference_error
from retouch.work.context import WorkContext
from retouch.work.job import Failure, Job, Outcome, check_available, describe
from retouch.work.output import write_output

__all__ = [
    "Failure",
    "Job",
    "Outcome",
    "check_available",
    "describe",
    "drain_commits",
    "local_style_reference",
    "process",
]

log = logging.getLogger("retouch.work")

T = TypeVar("T")


def _read(ctx: WorkContext, job: Job) -> tuple[bytes, str]:
    data = job.data
    if isinstance(data, DownloadFailed):
        raise data.error if data.error is not None else StorageError(data.message)
    if isinstance(data, Path):
        return data.read_bytes(), job.name or data.name
    if isinstance(data, bytes):
        return data, job.name
    if job.source is None or ctx.inputs is None:
        raise RetouchError("The job has no input.")
    with metrics.stage("fetch"):
        return ctx.inputs.read(job.account_id, job.source)


def local_style_reference(operations: ImageOperations) -> bytes | None:
    """``retouch edit`` and ``retouch batch`` have no network and no storages: their style reference is a local
    file. Its bytes, or None when no style transfer is asked for; a file that cannot be read names the field."""
    st = operations.generative.style_transfer if operations.generative is not None else None
    if st is None:
        return None
    path = Path(st.style_reference_image)
    try:
        return path.read_bytes()
    except OSError as exc:
        why = f"cannot read the local file {path}: {exc.strerror} (the command line reads the style image from a file)"
        raise reference_error(ImageError(why)) from None


#: Style references this worker read for a task's items, newest last: a batch of 1,000 photos in one style reads
#: its reference once per worker, not once per photo. Keyed by the task (and account), so a later task reads the
#: reference afresh (the object behind a URL may have changed); two entries cover tasks running side by side, and
#: bound what is held (a reference may be as large as an input).
_references: OrderedDict[tuple[int, int, str], bytes] = OrderedDict()
_REFERENCES_KEPT = 2


def _read_reference(ctx: WorkContext, job: Job) -> bytes | None:
    """The style reference's bytes, read through the same guarded reader (SSRF guard, byte cap, timeouts) and
    storages as the input; any failure is a 422 naming the field. Read here, in the image worker: the reference
    is one more small download, not worth a trip through the download process."""
    st = job.operations.generative.style_transfer if job.operations.generative is not None else None
    if st is None or st.style_strength * st.denoising_strength <= 0:
        return None  # nothing to paint: the reference is not needed
    if job.style_reference is not None:
        return job.style_reference
    key = (job.task_id, job.account_id, st.style_reference_image) if job.task_id is not None else None
    if key is not None and key in _references:
        _references.move_to_end(key)
        return _references[key]
    if ctx.inputs is None:
        raise reference_error(StorageError("this process reads no URLs or storages"))
    try:
        data = ctx.inputs.read(job.account_id, st.style_reference_image)[0]
    except RetouchError as exc:
        raise reference_error(exc) from None  # not kept: the next item tries again
    if key is not None:
        _references[key] = data
        while len(_references) > _REFERENCES_KEPT:
            _references.popitem(last=False)
    return data


def _edit(ctx: WorkContext, job: Job) -> tuple[Encoded, str] | Failure:
    data = b""
    try:
        data, name = _read(ctx, job)
        metrics.input_bytes(len(data))
        check_available(job.operations)
        style = _read_reference(ctx, job)
        return run(data, job.operations, job.output, ctx.limits, style_reference=style), name
    except RetouchError as exc:
        # Say what the input was when its header can be read (only on this path: success needs no second probe).
        try:
            info = probe(data, ctx.limits)
            return Failure(exc.public_message, exc, describe(info.ext, info.width, info.height))
        except RetouchError:
            return Failure(exc.public_message, exc)
    except Exception:  # a bug must cost one image, never the batch or the worker
        log.exception("editing %s failed", job.source or job.name or "an upload")
        return Failure("internal error while processing.")


def _write(ctx: WorkContext, job: Job, result: Encoded, name: str) -> Outcome:
    source = describe(result.source.ext, result.source.width, result.source.height)
    try:
        out_name = job.out_name or output_name(name, result.source.ext, result.format)
        with metrics.stage("write"):
            where = write_output(
                ctx,
                job.account_id,
                job.output.destination,
                out_name,
                result.data,
                result.format,
                job.source,
                job.out_file,
            )
        metrics.output_bytes(len(result.data))
        # Only the fields that apply are set: an answer leaves the others out (never null).
        fields: dict[str, object] = {**describe(result.format, result.width, result.height).model_dump(), **where}
        if result.frames_dropped:
            fields["frames_dropped"] = result.frames_dropped
        return EditResult(input=source, output=OutputObject.model_validate(fields))
    except RetouchError as exc:
        return Failure(exc.public_message, exc, source)
    except Exception:
        log.exception("writing the output of %s failed", job.source or job.name or "an upload")
        return Failure("internal error while writing the output.", None, source)


def process(ctx: WorkContext, job: Job, done: Callable[[Outcome], T], *, overlap_write: bool = False) -> T | None:
    """Read, edit, write and describe one image; ``done(outcome)`` says what becomes of the outcome, and its
    answer is returned.

    ``overlap_write`` (the local pool's batch items): the last step - write the output, then ``done`` (which
    records the item) - runs on this worker's commit thread while the caller goes on to decode the next image,
    and None is returned. Under a batch's load the fsync waited 2.5 ms on average (p99 32 ms) with the core
    idle; overlapped, it costs nothing. The order inside the step is unchanged, so an item is recorded DONE
    only once its output is durable; a worker that dies with a write in flight leaves the item RUNNING under
    its lease, and it is run again (the output is rewritten atomically under the same name). At most one write
    is in flight per worker (one result's bytes held), and the pool drains it before a worker exits.
    """
    edited = _edit(ctx, job)
    if isinstance(edited, Failure):
        if edited.error is not None:  # the input's or the request's fault: worth a line, not a stack
            log.info("not edited: %s", edited.message, extra={"source": job.source or job.name or "an upload"})
        return done(_counted(job, edited))
    result, name = edited
    if not overlap_write:
        return done(_counted(job, _write(ctx, job, result, name)))
    global _in_flight
    drain_commits()  # at most one in flight: wait for the previous image's (long done, as a rule)
    _in_flight = _committer().submit(lambda: done(_counted(job, _write(ctx, job, result, name))))
    return None


def _counted(job: Job, outcome: Outcome) -> Outcome:
    """``retouch_images_edited_total``: once per operation family the job asked for, by outcome."""
    if metrics.enabled():
        ops = job.operations
        families = [name for name in type(ops).model_fields if getattr(ops, name) is not None] or ["none"]
        if not isinstance(outcome, Failure):
            verdict = "ok"
        elif outcome.error is not None and outcome.error.status < 500:
            verdict = "rejected"  # the input's or the request's fault
        else:
            verdict = "error"
        metrics.image_done(families, verdict)
    return outcome


_commit_thread: ThreadPoolExecutor | None = None
_in_flight: Future[object] | None = None


def _committer() -> ThreadPoolExecutor:
    global _commit_thread
    if _commit_thread is None:
        _commit_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retouch-commit")
    return _commit_thread


def drain_commits() -> None:
    """Wait for this worker's overlapped write, if any (the pool calls it before a worker exits)."""
    global _in_flight
    pending, _in_flight = _in_flight, None
    if pending is not None:
        try:
            pending.result()
        except Exception:  # the write records its own failures; this is a failure to record
            log.exception("an overlapped write failed")
