"""The scale-out executor: item ids travel through Celery (Redis broker) to `retouch worker` processes.

Only ids move; the worker calls the same :func:`retouch.jobs.runner.run_item` as the local pool, so
the job logic never forks. Delivery is at-least-once and made exactly-once in effect by the store:
late acknowledgement, a broker visibility timeout derived from the item deadline, idempotent
``start_item``/``finish_item``, atomic outputs. The database stays the source of truth: items the
broker lost (a Redis restart without persistence, a worker killed mid-item) are claimed and sent
again once their lease runs out.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from celery import Celery, signals
from celery.exceptions import SoftTimeLimitExceeded

from retouch.jobs.store import TaskStore
from retouch.settings import Settings

__all__ = ["CeleryExecutor", "make_celery", "run_worker"]

log = logging.getLogger("retouch.celery")
TASK_NAME = "retouch.run_item"
QUEUES = ("fast", "ai")


def make_celery(settings: Settings) -> Celery:
    if not settings.broker_url:
        raise RuntimeError("RETOUCH_EXECUTOR=celery needs RETOUCH_BROKER_URL (e.g. redis://127.0.0.1:6379/0).")
    app = Celery("retouch", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # Acknowledge after the item ran, and give a killed worker's message back to the queue.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Redis redelivers an unacknowledged message after this long: just above the item lease, so a
        # dead worker's items come back in minutes (Celery's default is one hour).
        broker_transport_options={"visibility_timeout": int(settings.item_lease_seconds) + 30},
        task_soft_time_limit=settings.item_timeout_seconds,
        task_time_limit=settings.item_timeout_seconds + 15,
        task_default_queue="fast",
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_max_tasks_per_child=1000,  # bounded memory growth from long-lived decoders
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )

    @app.task(name=TASK_NAME, acks_late=True)  # type: ignore[untyped-decorator]
    def run_item_task(item_id: int, kind: str) -> str:
        from retouch.jobs.runner import run_item, worker_service

        try:
            return run_item(item_id, kind)
        except SoftTimeLimitExceeded:
            worker_service().tasks.fail_item(
                item_id, f"processing took longer than the limit of {settings.item_timeout_seconds:g} seconds."
            )
            return "timeout"

    @signals.worker_process_init.connect(weak=False)  # type: ignore[untyped-decorator]
    def _init(**_: Any) -> None:
        from retouch.jobs.runner import init_worker

        init_worker(settings)

    return app


def run_worker(settings: Settings, concurrency: int, queues: list[str]) -> None:
    """`retouch worker`: a Celery worker in the foreground; SIGTERM finishes running items, then exits."""
    app = make_celery(settings)
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={','.join(queues)}",
            "--pool=prefork",
            "--loglevel=INFO",
            f"--hostname=retouch-{socket.gethostname()}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )


class CeleryExecutor:
    """API side: claims runnable items from the store and publishes their ids, keeping at most
    ``RETOUCH_CELERY_MAX_INFLIGHT`` items running or queued. The window is small on purpose: the broker
    is FIFO, so fairness between accounts (the claim order) only holds if the queue stays short; set it
    to about 2-4x the total worker concurrency."""

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
        while not self._stop.is_set():
            sent = 0
            full = False
            try:
                room = self.settings.celery_max_inflight - self.store.running_count()
                full = room <= 0
                claimed = self.store.claim(min(room, 200), lease_seconds=self.settings.item_lease_seconds)
                for item_id, kind, queue in claimed:
                    try:
                        self.app.send_task(TASK_NAME, args=[item_id, kind], queue=queue)
                        sent += 1
                    except Exception as exc:  # broker down: put the rest back, try again soon
                        log.warning("broker unavailable (%s); %d items wait", exc, len(claimed) - sent)
                        self.store.release([i for i, _k, _q in claimed[sent:]])
                        break
            except Exception:
                log.exception("dispatch failed; retrying")
            # Workers do not tell this process when they finish: with the window full, look again soon
            # so they never run dry; with nothing to send, sleep until notified (or half a second).
            self._wake.wait(timeout=0.05 if sent else 0.1 if full else 0.5)
            self._wake.clear()
