"""The composition root: every part of a running retouch is built here, from ``Settings``, and nowhere else.

``open_service`` builds what the API's use cases need (the database, the stores, the storages, the input reader,
the tmp store); ``start`` adds the runtime of ``serve`` - the image worker pool, the downloads and their
process, the executor (the local dispatcher or Celery), the batch lister, webhook delivery and clean-up.
``open_worker`` builds what ``retouch worker`` runs under Celery: the same pool, downloads and router. ``retouch
serve``, ``retouch worker``, first start and the tests all go through these functions; an image worker process
builds its own parts in ``work.context``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from retouch import metrics, tracing
from retouch.downloader import DownloadProcess, NetworkInputs
from retouch.downloads import Downloads
from retouch.executors.base import Executor
from retouch.executors.local import LocalExecutor
from retouch.executors.pool import WorkerPool
from retouch.executors.router import ItemRouter
from retouch.handoff import Handoff
from retouch.jobs.janitor import Janitor
from retouch.jobs.lister import Lister
from retouch.jobs.webhooks import WebhookSender
from retouch.service import Runtime, Service
from retouch.settings import Settings
from retouch.stores.accounts import KeyStore
from retouch.stores.db import check_schema
from retouch.stores.webhooks import WebhookStore
from retouch.work.context import WorkContext, init_worker
from retouch.work.entry import worker_exit

if TYPE_CHECKING:
    from retouch.executors.celery import WorkerRuntime

__all__ = ["open_service", "open_worker", "start"]

log = logging.getLogger("retouch.bootstrap")


def open_service(settings: Settings) -> Service:
    """The use cases over the database, the stores and the storages; nothing running yet (first start, keys)."""
    work = WorkContext.open(settings)
    assert work.engine is not None and work.box is not None
    keys = KeyStore(work.engine, settings.key_cache_seconds)
    return Service(settings, work, keys, WebhookStore(work.engine, work.box))


def start(service: Service) -> None:
    """Start the worker pool, the downloads, the executor, pending listings, webhook delivery and clean-up."""
    if service.runtime is not None:
        return
    settings, work = service.settings, service.work
    assert work.inputs is not None and work.http is not None and work.fetch_policy is not None
    celery = settings.executor == "celery"
    if celery and service.engine.dialect.name != "sqlite":
        check_schema(service.engine)
    # Sync edits always run on this replica's own pool (answered in the request, never queued
    # behind a batch); in Celery mode async and batch items go to the workers instead.
    pool = WorkerPool(
        service.worker_count,
        initializer=init_worker,
        initargs=(settings, True, _metrics_dir(settings)),
        finalizer=worker_exit,
        default_deadline=settings.item_timeout_seconds,
    )
    downloads = Downloads(settings.fetch_concurrency, settings.fetch_per_account, settings.fetch_per_host)
    downloader = DownloadProcess(settings, service.handoff.folder, settings.fetch_concurrency)
    inputs = NetworkInputs(work.inputs, downloader, service.handoff)
    executor: Executor
    if celery:
        from retouch.executors.celery import CeleryExecutor

        executor = CeleryExecutor(service.tasks, settings)
    else:
        executor = LocalExecutor(
            service.tasks, pool, settings, downloads=downloads, inputs=inputs, handoff=service.handoff
        )
    lister = Lister(service.tasks, service.storages, executor.notify)
    sender = WebhookSender(service.tasks, service.webhooks, work.http, service.result_url, settings, work.fetch_policy)
    janitor = Janitor(settings, lambda: work.tmp, service.tasks)
    service.runtime = Runtime(pool, downloads, downloader, inputs, executor, lister, [sender, janitor])
    tasks = service.tasks
    # Read at each scrape of /metrics: this replica's pool and downloads, and the store's queue (every replica's).
    metrics.watch(
        settings.executor, lambda: {"pool": pool.load(), "downloads": downloads.load(), "store": tasks.item_counts()}
    )
    lister.resume()


def _metrics_dir(settings: Settings) -> str:
    """Metrics on in this process, before the pool starts: its workers write into the same per-run directory
    (``metrics.py``). One directory per process: a test process running several apps keeps the first. Tracing
    too, when configured (``tracing.py``)."""
    if metrics.directory() is None:
        metrics.setup(metrics.fresh_directory(settings.resolved_home / "metrics"))
    if settings.tracing_on:  # this process's spans (requests, fetches); the workers set up their own
        tracing.setup(settings.otel_endpoint)
    return str(metrics.directory())


def open_worker(settings: Settings, concurrency: int) -> WorkerRuntime:
    """`retouch worker`: ``concurrency`` image processes, the downloads and their process, and the router between
    them and the Celery consumer (``executors/celery.py``)."""
    from retouch.executors.celery import WorkerRuntime

    work = WorkContext.open(settings)
    assert work.tasks is not None and work.inputs is not None
    pool = WorkerPool(
        concurrency,
        initializer=init_worker,
        initargs=(settings, True, _metrics_dir(settings)),
        finalizer=worker_exit,
        default_deadline=settings.item_timeout_seconds,
    )
    handoff = Handoff()
    downloads = Downloads(settings.fetch_concurrency, settings.fetch_per_account, settings.fetch_per_host)
    downloader = DownloadProcess(settings, handoff.folder, settings.fetch_concurrency)
    room = threading.Event()
    router = ItemRouter(
        work.tasks,
        pool,
        settings.item_timeout_seconds,
        downloads=downloads,
        inputs=NetworkInputs(work.inputs, downloader, handoff),
        handoff=handoff,
        on_done=room.set,
    )
    metrics.watch("celery-worker", lambda: {"pool": pool.load(), "downloads": downloads.load()})
    server = None
    if settings.worker_metrics_port:
        from retouch.executors.metrics_server import MetricsServer

        server = MetricsServer(settings.host, settings.worker_metrics_port, settings.metrics_token)
    return WorkerRuntime(work, pool, downloads, downloader, handoff, router, room, server)
