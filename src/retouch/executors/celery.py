"""The scale-out executor: item ids travel through Celery (Redis broker) to `retouch worker` processes.

Only ids move. A worker runs items the way the embedded executor does: ``ItemRouter`` hands each to the image
worker pool of the worker process - through a download first when its input crosses a network - and the pool
runs the same :func:`retouch.work.runner.run_item`, so the job logic never forks. Celery's own pool is ``solo``:
the consumer's thread takes a message when an image worker is free, routes it, and acknowledges it: a message never
holds a core, and an item waiting on a hanging origin holds only a download slot of the worker process.

Why solo and not threads: with ``--pool=threads`` the acknowledgement runs on a pool thread, and when Redis
restarts kombu reconnects on the consumer's thread at the same time; an ack that lands mid-reconnection finds the
channel's connection gone (``AttributeError: 'NoneType' object has no attribute 'hostname'`` in kombu's
``_connparams``), which Celery reports as an "Unrecoverable error" and stops the worker. On one thread the ack and
the reconnection cannot interleave.

Delivery is at-least-once and made exactly-once in effect by the store: the database is the source of truth.
An item is RUNNING under a lease from the moment the dispatcher claims it; idempotent ``start_item`` and
``finish_item`` and atomic outputs make a second run harmless; items the broker or a worker lost (a Redis restart
without persistence, a worker killed mid-item, a message acknowledged before its item ran) are claimed and sent
again once their lease runs out, and a worker that stops cleanly gives its not-yet-started items back at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any

from celery import Celery, signals
from celery.worker import state as celery_state

from retouch import tracing
from retouch.downloader import DownloadProcess
from retouch.downloads import Downloads
from retouch.executors.metrics_server import MetricsServer
from retouch.executors.pool import WorkerPool
from retouch.executors.router import ItemRouter
from retouch.handoff import Handoff
from retouch.settings import Settings
from retouch.stores.tasks import TaskStore
from retouch.work.context import WorkContext

__all__ = ["CeleryExecutor", "WorkerRuntime", "hold_sigterm", "make_celery", "run_worker"]

log = logging.getLogger("retouch.celery")
TASK_NAME = "retouch.run_item"
QUEUES = ("fast", "ai")
#: Items queued per image worker beyond the one it runs (as the local dispatcher).
AHEAD = 1


@dataclass
class WorkerRuntime:
    """What `retouch worker` runs under Celery: the image pool, the downloads, and the router between them."""

    work: WorkContext
    pool: WorkerPool
    downloads: Downloads
    downloader: DownloadProcess
    handoff: Handoff
    router: ItemRouter
    room: threading.Event
    #: The worker's own /metrics (RETOUCH_WORKER_METRICS_PORT), None when off.
    metrics_server: MetricsServer | None = None

    def feed(self, item_id: int, kind: str, account_id: int, source: str) -> str:
        """The consumer: wait until an image worker is free (or nearly), then route the item and return."""
        while self.pool.free_slots(ahead=AHEAD) <= 0:
            self.room.wait(timeout=0.2)
            self.room.clear()
        self.router.route(item_id, kind, account_id, source)
        return "routed"

    def close(self) -> None:
        # Items not started yet go back to the store at once (the pool cancels its queue; the router releases them).
        self.downloads.shutdown()
        self.pool.shutdown(wait_for_running=True)
        self.downloader.close()
        self.handoff.close()
        self.work.close()
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None
        tracing.shutdown()


_runtime: WorkerRuntime | None = None


def make_celery(settings: Settings) -> Celery:
    if not settings.broker_url:
        raise RuntimeError("RETOUCH_EXECUTOR=celery needs RETOUCH_BROKER_URL (e.g. redis://127.0.0.1:6379/0).")
    app = Celery("retouch", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # Acknowledge once the item is routed; a message a worker reserved but never ran goes back to the queue.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Redis redelivers an unacknowledged message after this long: just above the item lease, so a
        # dead worker's reserved messages come back in minutes (Celery's default is one hour).
        broker_transport_options={"visibility_timeout": int(settings.item_lease_seconds) + 30},
        task_default_queue="fast",
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )

    @app.task(name=TASK_NAME, acks_late=True)  # type: ignore[untyped-decorator]
    def run_item_task(item_id: int, kind: str, account_id: int, source: str) -> str:
        if _runtime is None:
            raise RuntimeError("this process is not a retouch worker")
        return _runtime.feed(item_id, kind, account_id, source)

    return app


def hold_sigterm() -> None:
    """From now until Celery installs its own handler, SIGTERM asks for the warm shutdown instead of killing.

    Celery installs its SIGTERM handler late, once the worker is set up, a second or more after `retouch worker`
    starts its image processes and serves /metrics. A deploy that stops a worker in that window (a rollout replaced
    too soon, a scale-up undone) killed it with the signal: exit -15, which supervisors and CI count as a crash.
    This handler does what Celery's warm-shutdown handler does - set ``celery.worker.state.should_stop`` - which the
    consumer checks before connecting, between connection retries and in its loop; ``run_worker`` checks it before
    starting Celery at all. The worker then exits 0: at that point it holds no item."""

    def _stop(signum: int, frame: object) -> None:
        celery_state.should_stop = 0  # Celery's EX_OK: a warm shutdown

    signal.signal(signal.SIGTERM, _stop)


def run_worker(settings: Settings, runtime: WorkerRuntime, queues: list[str]) -> None:
    """`retouch worker`: a Celery worker in the foreground feeding ``runtime`` (built by ``bootstrap.open_worker``);
    SIGTERM finishes the running items, gives the queued ones back, then exits."""
    global _runtime
    app = make_celery(settings)
    _runtime = runtime

    @signals.worker_shutdown.connect(weak=False)  # type: ignore[untyped-decorator]
    def _stop(**_: Any) -> None:
        if _runtime is not None:
            _runtime.close()

    # Celery's entry points drop the worker's exit code (click in non-standalone mode returns it, and worker_main
    # ignores what it gets), so a worker that stopped on an "Unrecoverable error" (kombu can raise one while it
    # reconnects to a restarted Redis) exited 0, and a supervisor restarting on failure would leave it down. The
    # worker itself keeps the code: read it from the WorkController and exit with it.
    controllers: list[Any] = []

    @signals.worker_init.connect(weak=False)  # type: ignore[untyped-decorator]
    def _started(sender: Any = None, **_: Any) -> None:
        controllers.append(sender)

    try:
        if celery_state.should_stop is not None:  # stopped (hold_sigterm) while the runtime was being built
            log.info("stopped before the Celery worker started")
            return
        app.worker_main(
            [
                "worker",
                "--concurrency=1",
                f"--queues={','.join(queues)}",
                "--pool=solo",  # see the module docstring: acks on the consumer's thread
                "--loglevel=INFO",
                f"--hostname=retouch-{socket.gethostname()}-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
            ]
        )
        code = controllers[-1].exitcode if controllers else None
        if code:
            log.error("the Celery worker stopped with exit code %s", code)
            raise SystemExit(code)
    finally:
        if _runtime is not None:
            _runtime.close()
            _runtime = None


class CeleryExecutor:
    """API side: claims runnable items from the store and publishes their ids, keeping at most
    ``RETOUCH_CELERY_MAX_INFLIGHT`` items running or queued. The window is small on purpose: the broker
    is FIFO, so fairness between accounts (the claim order) only holds if the queue stays short; set it
    to about 2-4x the total worker concurrency. No account holds more than its fair share of the window
    (the window over the accounts with work), so one account's items stuck on a hanging origin cannot fill it."""

    def __init__(self, store: TaskStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.app = make_celery(settings)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._dispatch, name="retouch-celery-dispatch", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def cancel(self, task_id: int) -> None:
        # The store marked the task CANCELLED: a worker that receives one of its items skips it.
        self._wake.set()

    def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _dispatch(self) -> None:
        window = self.settings.celery_max_inflight
        while not self._stop.is_set():
            sent = 0
            full = False
            try:
                # The window is kept per account (TaskStore.claim): each gets its share of it.
                claimed = self.store.claim(200, lease_seconds=self.settings.item_lease_seconds, fair_window=window)
                full = not claimed and self.store.running_count() > 0
                for item in claimed:
                    try:
                        # The source travels with the id: the worker routes it without reading the item again.
                        args = [item.item_id, item.kind, item.account_id, item.source]
                        self.app.send_task(TASK_NAME, args=args, queue=item.queue)
                        sent += 1
                    except Exception as exc:  # broker down: put the rest back, try again soon
                        log.warning("broker unavailable (%s); %d items wait", exc, len(claimed) - sent)
                        self.store.release([item.item_id for item in claimed[sent:]])
                        break
            except Exception:
                log.exception("dispatch failed; retrying")
            # Workers do not tell this process when they finish: with items in flight and none sent, look again
            # soon so they never run dry; with nothing in flight, sleep until notified (or half a second).
            self._wake.wait(timeout=0.05 if sent else 0.1 if full else 0.5)
            self._wake.clear()
