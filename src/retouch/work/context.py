"""What a worker process builds once: the parts one unit of work needs, typed, from ``Settings``.

A worker (a pool process, a Celery worker, the CLI) calls :func:`init_worker` at start; the unit of work
then asks :func:`current` for its :class:`WorkContext`. The API process builds one too (``bootstrap``) and
shares its parts, so a storage, the input reader and the tmp store are made in exactly one place.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from retouch import metrics, tracing
from retouch.allocator import tune_malloc
from retouch.errors import RetouchError
from retouch.inputs import InputReader, fetch_policy
from retouch.logs import configure_logging
from retouch.net import FetchPolicy, guarded_client
from retouch.settings import Limits, Settings
from retouch.storage.registry import parse_storage_uri
from retouch.storage.secrets import SecretBox, load_or_create_key
from retouch.stores.db import make_engine
from retouch.stores.storages import StorageCatalog
from retouch.stores.tables import Account
from retouch.stores.tasks import TaskStore
from retouch.tmpstore import SharedTmpStore, TmpStore

__all__ = ["WorkContext", "current", "init_worker"]


@dataclass
class WorkContext:
    """The parts of one process. ``database=False`` (``retouch edit``/``retouch batch``): local files only,
    no store, no storages, no network."""

    settings: Settings
    engine: Engine | None = None
    tasks: TaskStore | None = None
    storages: StorageCatalog | None = None
    inputs: InputReader | None = None
    box: SecretBox | None = None
    fetch_policy: FetchPolicy | None = None
    http: httpx.Client | None = None
    _local_tmp: TmpStore | None = None
    _shared_tmp: SharedTmpStore | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def limits(self) -> Limits:
        return self.settings.limits

    @classmethod
    def open(cls, settings: Settings) -> WorkContext:
        """Everything a process of the service needs below the API: the database, the task store, the account's
        storages, the guarded HTTP client and the input reader."""
        home = settings.resolved_home
        home.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_database_url)
        box = SecretBox(load_or_create_key(settings.secret_key, home))
        policy = fetch_policy(settings)
        storages = StorageCatalog(engine, box, policy, settings.storage_roots)
        http = guarded_client(policy)
        return cls(
            settings,
            engine=engine,
            tasks=TaskStore(engine),
            storages=storages,
            inputs=InputReader(storages, policy, http),
            box=box,
            fetch_policy=policy,
            http=http,
            _local_tmp=TmpStore(settings.tmp_dir, settings.resolved_public_url, settings.tmp_retention_hours),
        )

    @classmethod
    def local(cls, settings: Settings) -> WorkContext:
        return cls(settings)

    @property
    def tmp(self) -> TmpStore | SharedTmpStore:
        """Where results without a destination go: a local folder, or RETOUCH_TMP_STORAGE when replicas share."""
        uri = self.settings.tmp_storage
        if not uri:
            if self._local_tmp is None:
                raise RetouchError("This process keeps no tmp results: name an output destination.")
            return self._local_tmp
        with self._lock:
            if self._shared_tmp is None:
                self._shared_tmp = self._open_shared_tmp(uri)
            return self._shared_tmp

    def _open_shared_tmp(self, uri: str) -> SharedTmpStore:
        if self.engine is None or self.storages is None:
            raise RetouchError("RETOUCH_TMP_STORAGE needs the database.")
        target = parse_storage_uri(uri)
        with Session(self.engine) as session:
            account = session.scalar(select(Account).where(Account.name == self.settings.tmp_storage_account))
        if account is None:
            raise RetouchError(f"RETOUCH_TMP_STORAGE: no account named {self.settings.tmp_storage_account!r}.")
        connector = self.storages.connector(account.id, target.name)
        return SharedTmpStore(
            connector, target.path, self.settings.resolved_public_url, self.settings.tmp_retention_hours
        )

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.engine is not None:
            self.engine.dispose()


_settings: Settings | None = None
_database = True
_context: WorkContext | None = None


def init_worker(settings: Settings, database: bool = True, metrics_dir: str | None = None) -> None:
    """A worker process's start: one vips thread (one worker per core is the fast layout), the allocator and the
    models set up; the context itself is built on first use (a pool worker that only runs uploads never opens
    the database). ``metrics_dir``: the run's metrics directory (``bootstrap``), None: no metrics."""
    global _settings, _database, _context
    _settings, _database, _context = settings, database, None
    if metrics_dir is not None:
        metrics.setup(Path(metrics_dir))  # before any work: this process's counts go where /metrics reads them
    if settings.tracing_on:
        tracing.setup(settings.otel_endpoint)
    if settings.worker_nice:
        # Image work yields to the API process: under full load its event loop still answers at once (a keyless
        # junk body's 401 took 2.7 s with 2 busy workers on 2 cores). Idle cores still go to the workers.
        os.nice(settings.worker_nice)
    from retouch.pipeline import configure_vips  # here: the download process opens a context without the image stack

    configure_vips(threads=1)
    tune_malloc()  # the same multi-MB buffers every image: keep them in the heap (retouch/allocator.py)
    from retouch import models

    # Models get every core: a lone request (a sync background removal) then takes the whole machine
    # (1 MP removal 0.66 -> 0.39 s on 2 cores), and under load the models' threads sleep instead of
    # spinning, so N workers x N threads costs little: 100 removals 2.13 -> 2.32 img/s, waifu2x -6 %.
    models.configure(threads=settings.model_threads or os.cpu_count() or 1, overrides=settings.model_overrides)
    # The same lines as the API process (format, ids); libvips' per-image notes would flood them.
    configure_logging(settings.log_format, settings.log_level)
    logging.getLogger("pyvips").setLevel(logging.WARNING)


def current() -> WorkContext:
    """This worker's context (built on first use from the settings :func:`init_worker` was given)."""
    global _context
    if _context is None:
        if _settings is None:
            raise RuntimeError("init_worker() was not called in this process")
        _context = WorkContext.open(_settings) if _database else WorkContext.local(_settings)
    return _context


def use(context: WorkContext) -> None:
    """Make ``context`` this process's (the API process and tests, which built theirs already)."""
    global _context, _settings
    _context, _settings = context, context.settings
