"""The worker pool on real processes: results, priorities, deadlines, crashes, prefetching, shutdown."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError

import pytest

from retouch.executors.pool import PREFETCH_MAX_BYTES, DeadlineExceeded, PoolShutDown, WorkerCrashed, WorkerPool


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _echo(value: object) -> object:
    return value


def _fail(message: str) -> None:
    raise ValueError(message)


def _die() -> None:
    os._exit(3)  # a decoder crash: the process is gone without a word


def _length(data: bytes) -> int:
    return len(data)


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    pool = WorkerPool(2, default_deadline=30)
    yield pool
    pool.shutdown()


def test_results_and_exceptions_come_back(pool: WorkerPool) -> None:
    assert pool.submit(pow, 2, 10).result(timeout=30) == 1024
    with pytest.raises(ValueError, match="bad input"):
        pool.submit(_fail, "bad input").result(timeout=30)
    # A failed job does not cost the worker: the next ones run.
    assert [pool.submit(_echo, k).result(timeout=30) for k in range(5)] == list(range(5))


def test_many_jobs_all_complete_on_both_workers(pool: WorkerPool) -> None:
    futures = [pool.submit(_pid_after, 0.02) for _ in range(40)]
    pids = {f.result(timeout=60) for f in futures}
    assert pids == set(pool.pids())  # both workers took part; nothing was lost or run twice


def test_a_stuck_job_is_killed_alone_and_the_queue_goes_on() -> None:
    pool = WorkerPool(1, default_deadline=30)
    try:
        first = pool.submit(_pid_after, 0.2)
        pid = first.result(timeout=30)
        stuck = pool.submit(_pid_after, 60, deadline=1.0)
        # Queued behind the stuck job (this one is sent ahead into the same worker's pipe).
        after = [pool.submit(_pid_after, 0.01) for _ in range(3)]
        with pytest.raises(DeadlineExceeded):
            stuck.result(timeout=30)
        new_pids = {f.result(timeout=30) for f in after}
        assert pid not in new_pids  # the worker was replaced, and the waiting jobs ran on its successor
    finally:
        pool.shutdown()


def test_a_crash_fails_only_the_job_that_ran() -> None:
    pool = WorkerPool(1, default_deadline=30)
    try:
        pool.submit(_echo, 0).result(timeout=30)  # the worker is up
        crash = pool.submit(_die)
        waiting = [pool.submit(_echo, k) for k in range(3)]  # one of these sits in the dead worker's pipe
        with pytest.raises(WorkerCrashed, match="exit code 3"):
            crash.result(timeout=30)
        assert [f.result(timeout=30) for f in waiting] == [0, 1, 2]
    finally:
        pool.shutdown()


def test_lower_priority_value_runs_first() -> None:
    pool = WorkerPool(1, default_deadline=30)
    order: list[str] = []
    try:
        pool.submit(_echo, 0).result(timeout=30)
        blocker = pool.submit(_pid_after, 0.5)
        time.sleep(0.1)  # the blocker runs; from here jobs queue
        batch = [pool.submit(_echo, f"batch{k}", priority=2) for k in range(4)]
        sync = pool.submit(_echo, "sync", priority=0)
        for future in [blocker, *batch, sync]:
            future.add_done_callback(lambda f: order.append(str(f.result())))
        sync.result(timeout=30)
        for future in batch:
            future.result(timeout=30)
        # At most one batch job was already in the worker's pipe; the sync job overtook the rest.
        assert order.index("sync") <= 2, order
    finally:
        pool.shutdown()


def test_large_jobs_wait_for_a_free_worker_and_still_run(pool: WorkerPool) -> None:
    big = b"x" * (4 * PREFETCH_MAX_BYTES)
    futures = [pool.submit(_length, big) for _ in range(6)]
    assert [f.result(timeout=60) for f in futures] == [len(big)] * 6


def test_free_slots_counts_held_and_queued_jobs() -> None:
    pool = WorkerPool(1, default_deadline=30)
    try:
        pool.submit(_echo, 0).result(timeout=30)
        assert pool.free_slots(ahead=2) == 3
        futures = [pool.submit(_pid_after, 0.3) for _ in range(2)]
        time.sleep(0.1)
        assert pool.free_slots(ahead=2) == 1  # one running, one ahead in the pipe (or queued)
        for future in futures:
            future.result(timeout=30)
    finally:
        pool.shutdown()


def test_shutdown_ends_every_future() -> None:
    pool = WorkerPool(1, default_deadline=30)
    pool.submit(_echo, 0).result(timeout=30)
    futures = [pool.submit(_pid_after, 5) for _ in range(4)]
    time.sleep(0.2)
    pool.shutdown()
    for future in futures:
        with pytest.raises((WorkerCrashed, CancelledError)):
            future.result(timeout=30)


def test_a_draining_shutdown_lets_running_jobs_answer_and_cancels_the_queue() -> None:
    """`retouch worker` on SIGTERM: the job running and the one sent ahead into the worker's pipe finish and answer
    as usual (before, they failed the moment the pool closed while their worker went on running them); the job
    still queued is cancelled at once."""
    pool = WorkerPool(1, default_deadline=30)
    pool.submit(_echo, 0).result(timeout=30)
    futures = [pool.submit(_pid_after, 0.8) for _ in range(3)]  # running, sent ahead, queued
    time.sleep(0.3)
    started = time.monotonic()
    pool.shutdown(wait_for_running=True)
    assert time.monotonic() - started < 10
    assert futures[0].result(timeout=0) == futures[1].result(timeout=0)  # both ran, on the one worker
    assert futures[2].cancelled()


def test_a_shutdown_cuts_what_outlives_the_drain_with_pool_shut_down() -> None:
    pool = WorkerPool(1, default_deadline=60)
    pool.submit(_echo, 0).result(timeout=30)
    future = pool.submit(_pid_after, 30)
    time.sleep(0.3)
    started = time.monotonic()
    pool.shutdown()  # the API process: 2 s, then the worker is killed
    assert 1.5 < time.monotonic() - started < 8
    with pytest.raises(PoolShutDown):
        future.result(timeout=0)


def _slow_start(seconds: float) -> None:
    time.sleep(seconds)  # stands for importing the image stack


def test_workers_say_when_they_are_ready_and_a_deadline_starts_then() -> None:
    """/readyz waits for ready_workers(); a job sent to a worker still starting is not charged the start."""
    pool = WorkerPool(2, initializer=_slow_start, initargs=(1.0,), default_deadline=0.8)
    try:
        assert pool.ready_workers() == 0
        future = pool.submit(_echo, "first")  # sent while both workers are still starting
        assert future.result(timeout=30) == "first"  # 1 s of start-up did not break its 0.8 s deadline
        deadline = time.monotonic() + 10
        while pool.ready_workers() < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        pool.shutdown()


def test_a_worker_that_never_starts_is_replaced_and_its_jobs_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    from retouch.executors import pool as pool_module

    monkeypatch.setattr(pool_module, "START_TIMEOUT", 0.5)  # read by the supervisor, in this process
    pool = WorkerPool(1, initializer=_slow_start, initargs=(3.0,), default_deadline=30)
    try:
        first = pool.pids()
        future = pool.submit(_echo, "kept")
        deadline = time.monotonic() + 10
        while pool.pids() == first:
            assert time.monotonic() < deadline, "the hung worker was not replaced"
            time.sleep(0.05)
        assert not future.done()  # back in the queue, not failed: it never started
    finally:
        pool.shutdown()
