"""A process pool whose workers can be killed one at a time.

``concurrent.futures.ProcessPoolExecutor`` cannot stop one stuck task: a decoder spinning on a
hostile file would hold a worker forever, and killing a worker breaks the whole executor. Here
each worker has its own pipe, a supervisor thread watches deadlines, kills an overdue worker
(SIGKILL: a stuck C decoder ignores anything gentler), fails that task alone and starts a new
worker. Jobs wait in a priority queue so a sync request overtakes a queued batch.

Each worker is also handed its next job while it runs the current one (``PREFETCH``): a worker
that finished an item reads the next from its pipe at once instead of idling while this process —
busy with HTTP and the dispatcher on the same cores — answers. That round trip idled the workers
~5 ms per 50 ms item (a batch went 36.7 -> see bench/results/batch.md).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import ForkingPickler
from typing import Any

from retouch import metrics
from retouch.children import Child

__all__ = ["DeadlineExceeded", "WorkerCrashed", "WorkerPool"]

log = logging.getLogger("retouch.pool")

#: Jobs handed to a busy worker ahead of time, each waiting in its pipe. One is enough to hide the
#: round trip; more would only make a sync request wait behind more batch items.
PREFETCH = 1
#: Only a job this small is sent ahead: a larger one could fill the pipe's buffer, and the send
#: would then block this supervisor until the worker reads it (an upload passed as bytes).
#: A worker that has not loaded the image stack by then is hung (a cold start takes about a second).
START_TIMEOUT = 60.0
PREFETCH_MAX_BYTES = 32 * 1024


class WorkerCrashed(Exception):
    """The worker process died while running the task (crash, OOM killer)."""


class DeadlineExceeded(Exception):
    """The task ran past its deadline; its worker was killed."""


class PoolShutDown(WorkerCrashed):
    """The pool stopped before the task ended: the service is stopping, which is not the input's fault (an item
    cut this way goes back to the store without counting an attempt)."""


#: How long ``shutdown`` lets running jobs finish: a stopping `retouch worker` (SIGTERM) drains, the API process
#: only briefly (its items are resumed at the next start).
DRAIN_SECONDS = {True: 30.0, False: 2.0}


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    fn: Callable[..., Any] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    deadline: float | None = field(compare=False)
    future: Future[Any] = field(compare=False)
    payload: bytes | None = field(default=None, compare=False)  # pickled once, when first sent or weighed

    def pickled(self) -> bytes:
        if self.payload is None:
            self.payload = bytes(ForkingPickler.dumps((self.seq, self.fn, self.args)))
        return self.payload


def _worker_main(
    conn: Connection,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
    finalizer: Callable[[], None] | None = None,
) -> None:
    started = initializer(*initargs) if initializer is not None else None
    # Say so once the image stack is loaded: /readyz waits for it, and a job's deadline starts here, not at spawn.
    # What the initializer returned (the libvips version) rides along: the API process never loads the stack.
    conn.send(("ready", -1, started))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = None  # the parent is gone: nothing more will come
        if message is None:
            # Work the tasks left running in the background (deferred commits) and export the buffered spans
            # before the process ends, in that order (interpreter shutdown would not order them).
            if finalizer is not None:
                finalizer()
            return
        job_id, fn, args = message
        try:
            result = ("ok", job_id, fn(*args))
        except BaseException as exc:
            result = ("err", job_id, exc)
        try:
            conn.send(result)
        except Exception as exc:  # an unpicklable result or exception: say so rather than hang
            conn.send(("err", job_id, RuntimeError(f"worker could not return the result: {exc!r}")))


class _Worker:
    def __init__(
        self,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
        finalizer: Callable[[], None] | None,
    ) -> None:
        self.process = Child(_worker_main, (initializer, initargs, finalizer), role="image-worker")
        self.conn = self.process.conn
        # jobs[0] runs since `started`; the rest wait in the worker's pipe, in order.
        self.jobs: deque[_Job] = deque()
        self.started = 0.0
        self.ready = False  # its initializer has run (the worker said "ready")
        self.started_with: Any = None  # what its initializer returned
        self.spawned = time.monotonic()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class WorkerPool:
    def __init__(
        self,
        size: int,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        finalizer: Callable[[], None] | None = None,
        default_deadline: float | None = None,
    ) -> None:
        self.size = max(1, size)
        self._initializer = initializer
        self._initargs = initargs
        self._finalizer = finalizer
        self._default_deadline = default_deadline
        self._queue: list[_Job] = []
        self._seq = itertools.count()
        self._lock = threading.RLock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._closed = False
        self._drain_until = 0.0  # set by shutdown
        self._workers = [self._spawn() for _ in range(self.size)]
        self._thread = threading.Thread(target=self._supervise, name="retouch-pool", daemon=True)
        self._thread.start()

    def _spawn(self) -> _Worker:
        return _Worker(self._initializer, self._initargs, self._finalizer)

    # ------------------------------------------------------------------ public

    def submit(
        self, fn: Callable[..., Any], *args: Any, priority: int = 1, deadline: float | None = None
    ) -> Future[Any]:
        """Queue ``fn(*args)`` (lower priority runs first). ``deadline`` in seconds of running time."""
        future: Future[Any] = Future()
        limit = deadline if deadline is not None else self._default_deadline
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            heapq.heappush(self._queue, _Job(priority, next(self._seq), fn, args, limit, future))
        self._wake()
        return future

    def free_slots(self, ahead: int = 0) -> int:
        """How many more jobs keep every worker busy plus ``ahead`` queued per worker: a feeder that
        queues one job ahead per worker hides its own latency without building a long queue (a sync
        request still overtakes queued jobs: it waits for at most one job per worker)."""
        with self._lock:
            held = sum(len(w.jobs) for w in self._workers)
            return self.size * (1 + ahead) - held - len(self._queue)

    def load(self) -> tuple[int, int]:
        """(jobs waiting for a worker, jobs held by the workers - running or sent ahead): what /metrics shows."""
        with self._lock:
            return len(self._queue), sum(len(w.jobs) for w in self._workers)

    def ready_workers(self) -> int:
        """How many workers have finished their initializer (a fresh or replaced worker imports the image
        stack first, about a second): what /readyz waits for."""
        with self._lock:
            return sum(w.ready for w in self._workers)

    def started_with(self) -> Any:
        """What a ready worker's initializer returned (``init_worker``: the libvips version), None before any is
        ready: /readyz reports it without loading libvips in the API process."""
        with self._lock:
            return next((w.started_with for w in self._workers if w.ready), None)

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def shutdown(self, wait_for_running: bool = False) -> None:
        """Stop: queued jobs are cancelled at once; running ones (and those sent ahead into a worker's pipe) get
        ``DRAIN_SECONDS`` to finish and answer as usual; what is still running then is killed and fails with
        ``PoolShutDown``. Before, running jobs failed the moment the pool closed, while their workers went on
        running them: the item went back to the store as if its worker had crashed (an attempt counted), and
        another worker could start it again before the first one finished."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drain_until = time.monotonic() + DRAIN_SECONDS[wait_for_running]
            queued, self._queue = self._queue, []
        for job in queued:
            # A job put back from a dead worker is already running: cancel() cannot end it.
            if not job.future.cancel() and not job.future.done():
                job.future.set_exception(PoolShutDown("the pool was shut down"))
        self._wake()
        self._thread.join(timeout=DRAIN_SECONDS[wait_for_running] + 5)
        with self._lock:
            workers, leftover = list(self._workers), self._queue
        # An idle worker ends once its deferred work (the last item's write and record, spans) is done; one still
        # running a job past the drain time is killed at once.
        idle = [worker for worker in workers if all(job.future.done() for job in worker.jobs)]
        for worker in idle:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        ends = time.monotonic() + DRAIN_SECONDS[wait_for_running]
        for worker in workers:
            if worker in idle:
                worker.process.join(timeout=max(0.0, ends - time.monotonic()))
            worker.kill()
            metrics.process_dead(worker.process.pid)
        # Only now, with no worker left to finish them, do the jobs still open fail.
        for job in [*leftover, *(job for worker in workers for job in worker.jobs)]:
            if not job.future.done():
                job.future.set_exception(PoolShutDown("the pool was shut down"))
        self._wake_r.close()
        self._wake_w.close()

    # ------------------------------------------------------------------ supervisor

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _assign(self) -> None:
        with self._lock:
            # Idle workers first, then one job ahead for each busy one (small jobs only).
            for depth in range(1 + PREFETCH):
                for index in range(len(self._workers)):
                    while len(self._workers[index].jobs) == depth and self._queue:
                        job = self._queue[0]
                        if depth and len(job.pickled()) > PREFETCH_MAX_BYTES:
                            break  # left for a free worker
                        heapq.heappop(self._queue)
                        # A job put back from a dead worker's pipe is already running (and not cancellable).
                        if not job.future.running() and not job.future.set_running_or_notify_cancel():
                            continue  # cancelled while queued
                        self._send(index, job)

    def _send(self, index: int, job: _Job) -> None:
        worker = self._workers[index]
        try:
            worker.conn.send_bytes(job.pickled())
        except (OSError, ValueError) as exc:
            # The worker died before this job reached it (its pipe is closed): the job never started, so it
            # goes back to the queue for the replacement; the job the worker ran fails, with the exit code.
            heapq.heappush(self._queue, job)
            worker.process.join(timeout=1)
            code = worker.process.exitcode
            reason = f"exit code {code}" if code is not None else str(exc)
            self._retire(index, WorkerCrashed(f"the image worker stopped unexpectedly ({reason})"))
            return
        job.payload = None  # sent: the bytes are not needed again
        if not worker.jobs:
            worker.started = time.monotonic()
        worker.jobs.append(job)

    def _retire(self, index: int, error: Exception) -> None:
        """Kill a worker and start another in its place. The job it ran fails with ``error``; the jobs
        that sat unread in its pipe never started, so they go back to the queue and run elsewhere."""
        with self._lock:  # re-entrant: _send calls this with the lock held
            worker = self._workers[index]
            worker.kill()
            metrics.process_dead(worker.process.pid)
            metrics.worker_restarted("deadline" if isinstance(error, DeadlineExceeded) else "crash")
            self._workers[index] = self._spawn()
            running = worker.jobs.popleft() if worker.jobs else None
            for waiting in worker.jobs:
                if not waiting.future.done():
                    heapq.heappush(self._queue, waiting)
        if running is not None and not running.future.done():
            running.future.set_exception(error)

    def _supervise(self) -> None:
        while True:
            with self._lock:
                closed = self._closed
                busy = any(w.jobs for w in self._workers)
            if closed and (not busy or time.monotonic() >= self._drain_until):
                return  # shutdown() ends the workers and fails what they did not finish
            if not closed:
                self._assign()
            timeout = self._next_deadline_in()
            if closed:  # draining: collect answers until the running jobs end or the drain time is up
                left = max(0.0, self._drain_until - time.monotonic())
                timeout = left if timeout is None else min(timeout, left)
            ready = wait([self._wake_r, *[w.conn for w in self._workers]], timeout=timeout)
            for item in ready:
                if item is self._wake_r:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                    continue
                self._collect(item)  # type: ignore[arg-type]
            self._enforce_deadlines()

    def _next_deadline_in(self) -> float | None:
        now = time.monotonic()
        waits = [
            w.started + w.jobs[0].deadline - now
            for w in self._workers
            if w.ready and w.jobs and w.jobs[0].deadline is not None
        ]
        waits += [w.spawned + START_TIMEOUT - now for w in self._workers if not w.ready]
        return max(0.0, min(waits)) if waits else None

    def _collect(self, conn: Connection) -> None:
        index = next((i for i, w in enumerate(self._workers) if w.conn is conn), None)
        if index is None:
            return  # a worker replaced earlier in this round
        worker = self._workers[index]
        try:
            status, _job_id, payload = conn.recv()
        except (EOFError, OSError):
            worker.process.join(timeout=1)
            code = worker.process.exitcode
            self._retire(index, WorkerCrashed(f"the image worker stopped unexpectedly (exit code {code})"))
            return
        if status == "ready":
            worker.ready = True
            worker.started_with = payload
            worker.started = time.monotonic()  # a job sent while it was starting runs from now
            return
        if not worker.jobs:
            return
        job = worker.jobs.popleft()
        worker.started = time.monotonic()  # the worker went straight on to the next job in its pipe
        if job.future.done():
            return
        if status == "ok":
            job.future.set_result(payload)
        else:
            job.future.set_exception(payload)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for index, worker in enumerate(self._workers):
            if not worker.ready and now - worker.spawned > START_TIMEOUT:
                log.warning("replacing worker %s: it did not start within %ss", worker.process.pid, START_TIMEOUT)
                with self._lock:  # none of its jobs started: they go back to the queue, not to an error
                    for waiting in worker.jobs:
                        if not waiting.future.done():
                            heapq.heappush(self._queue, waiting)
                    worker.jobs.clear()
                self._retire(index, WorkerCrashed(f"the image worker did not start within {START_TIMEOUT:g} seconds"))
                continue
            job = worker.jobs[0] if worker.jobs and worker.ready else None  # starting: its clock has not begun
            if job is None or job.deadline is None or now - worker.started < job.deadline:
                continue
            log.warning("killing worker %s: task ran past its %ss deadline", worker.process.pid, job.deadline)
            self._retire(index, DeadlineExceeded(f"processing took longer than {job.deadline:g} seconds"))


def _self_test() -> None:  # pragma: no cover - a manual smoke check: python -m retouch.executors.pool
    pool = WorkerPool(2, default_deadline=1)
    print(pool.submit(pow, 2, 10).result(), os.getpid())
    pool.shutdown()


if __name__ == "__main__":  # pragma: no cover
    _self_test()
