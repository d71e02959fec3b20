"""The functions a process hands to its image workers, named by reference.

A job crosses to a worker process pickled, and a function pickles as its module and name: the sender must import
the module that defines it. These two are the pool's entry points; they import the unit of work (the image stack)
only when they run, in the worker, so the API process and a Celery worker's parent hand jobs over without loading
pyvips, numpy and the models (docs/performance.md, "Memory"). A worker imports the real ones at start
(``init_worker``), so the first job pays no import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retouch.contracts.edit import EditResult
    from retouch.downloads import Fetched
    from retouch.work.job import Job

__all__ = ["edit_now", "run_item", "worker_exit"]


def edit_now(job: Job) -> EditResult:
    """:func:`retouch.work.runner.edit_now`: a sync edit or an upload, whole."""
    from retouch.work import runner

    return runner.edit_now(job)


def run_item(item_id: int, kind: str, overlap_write: bool = False, fetched: Fetched = None) -> str:
    """:func:`retouch.work.runner.run_item`: one item of an async or batch task."""
    from retouch.work import runner

    return runner.run_item(item_id, kind, overlap_write, fetched)


def worker_exit() -> None:
    """:func:`retouch.work.runner.worker_exit`: the pool's finalizer."""
    from retouch.work import runner

    runner.worker_exit()
