"""`retouch batch`: a local folder in, a local folder out, no server and no database.

Uses the same worker pool and pipeline as the service. Outputs are written atomically, so an
interrupted run leaves only whole files, and ``--resume`` can trust any output that exists.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from retouch.contracts.edit import EditResult, UploadData
from retouch.errors import RetouchError
from retouch.executors.pool import DeadlineExceeded, WorkerCrashed, WorkerPool
from retouch.formats import guess_ext, output_name, unique_name
from retouch.settings import Settings
from retouch.storage.base import is_image_key
from retouch.storage.local import LocalConnector
from retouch.work.context import current, init_worker
from retouch.work.item import Failure, Job, Outcome, local_style_reference, process

__all__ = ["BatchReport", "plan_batch", "run_local_batch"]


@dataclass
class BatchReport:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


def _raise(outcome: Outcome) -> EditResult:
    if isinstance(outcome, Failure):
        outcome.raise_()
    assert isinstance(outcome, EditResult)
    return outcome


def edit_file(source: str, target: str, request: UploadData) -> tuple[int, int]:
    """Runs in a worker: the service's unit of work, with a local file for input and output (written atomically)."""
    path = Path(source)
    style = local_style_reference(request.operations)  # a local file here too; read per image (small, cached by the OS)
    job = Job(
        0, request.operations, request.output, data=path, name=path.name, out_file=Path(target), style_reference=style
    )
    result = process(current(), job, _raise)
    assert result is not None
    return result.output.width, result.output.height


def _relative_inside(outer: Path, inner: Path) -> str | None:
    """``inner`` as a key prefix under ``outer`` ("" = the same folder: nothing is skipped), or None."""
    outer, inner = outer.resolve(), inner.resolve()
    if inner == outer or outer not in inner.parents:
        return None
    return inner.relative_to(outer).as_posix() + "/"


def plan_batch(in_dir: Path, out_dir: Path, recursive: bool, out_format: str) -> Iterator[tuple[Path, Path]]:
    """(input, output) pairs in listing order; sub-paths kept; output names unique."""
    taken: set[str] = set()
    inside = _relative_inside(in_dir, out_dir)
    for info in LocalConnector("input", in_dir).list("", recursive):
        if not is_image_key(info.key):
            continue
        if inside is not None and (info.key + "/").startswith(inside):
            continue  # an output folder inside the input folder: earlier outputs are not inputs
        rel = PurePosixPath(info.key)
        name = output_name(rel.name, guess_ext(rel.name), out_format)
        target = unique_name(str(rel.parent / name) if str(rel.parent) != "." else name, taken.__contains__)
        taken.add(target)
        yield in_dir / info.key, out_dir / target


def run_local_batch(
    in_dir: Path,
    out_dir: Path,
    request: UploadData,
    settings: Settings,
    *,
    recursive: bool,
    workers: int,
    resume: bool,
    timeout: float,
    on_progress: Callable[[BatchReport, int | None], None] = lambda report, total: None,
) -> BatchReport:
    report = BatchReport()
    pairs = list(plan_batch(in_dir, out_dir, recursive, request.output.format.type))
    total = len(pairs)
    # The service's worker start (vips, allocator, models), without the database: local files only.
    pool = WorkerPool(
        workers or os.cpu_count() or 1, initializer=init_worker, initargs=(settings, False), default_deadline=timeout
    )
    started = time.monotonic()
    pending: list[tuple[Path, Future[tuple[int, int]]]] = []
    try:
        for source, target in pairs:
            if resume and target.exists():
                report.skipped += 1
                continue
            if target.resolve() == source.resolve():
                report.failed += 1
                report.failures.append((str(source), "the output would overwrite the input; choose another OUT_DIR"))
                continue
            future = pool.submit(edit_file, str(source), str(target), request)
            pending.append((source, future))
        on_progress(report, total)
        for source, future in pending:
            try:
                future.result()
                report.done += 1
            except RetouchError as exc:
                report.failed += 1
                report.failures.append((str(source), exc.public_message))
            except (DeadlineExceeded, WorkerCrashed, OSError) as exc:
                report.failed += 1
                report.failures.append((str(source), str(exc)))
            report.seconds = time.monotonic() - started
            on_progress(report, total)
    finally:
        pool.shutdown()
    report.seconds = time.monotonic() - started
    return report
