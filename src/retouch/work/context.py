"""What a worker process builds once: the parts one unit of work needs, typed, from ``Settings``.

A worker (a pool process, a Celery worker, the CLI) calls :func:`init_worker` at start; the unit of work
then asks :func:`current` for its :class:`WorkContext`. The API process builds one too (``bootstrap``) and
shares its parts, so a storage, the input reader and the tmp store are made in exactly one place.

The database-backed parts (the engine, the task store, the storages, the guarded HTTP client and the input
reader) are built on first use and their libraries imported only then: an image worker that only runs sync
edits of downloaded inputs into the tmp store never needs SQLAlchemy, httpx or the cryptography stack, and
not importing them keeps ~35 MB out of every worker process (docs/performance.md, "Memory").
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from retouch import metrics, tracing
from retouch.allocator import tune_malloc
from retouch.errors import RetouchError
from retouch.logs import configure_logging
from retouch.settings import Limits, Settings
from retouch.tmpstore import SharedTmpStore, TmpStore

if TYPE_CHECKING:
    import httpx
    from sqlalchemy import Engine

    from retouch.inputs import InputReader
    from retouch.net import FetchPolicy
    from retouch.storage.secrets import SecretBox
    from retouch.stores.storages import StorageCatalog
    from retouch.stores.tasks import TaskStore

__all__ = ["WorkContext", "current", "init_worker"]


@dataclass(frozen=True)
class _Parts:
    """The database-backed parts, built together on first use."""

    engine: Engine
    tasks: TaskStore
    storages: StorageCatalog
    inputs: InputReader
    box: SecretBox
    fetch_policy: FetchPolicy
    http: httpx.Client

    @classmethod
    def build(cls, settings: Settings, http: httpx.Client | None = None) -> _Parts:
        from retouch.inputs import InputReader, fetch_policy
        from retouch.net import guarded_client
        from retouch.storage.secrets import SecretBox, load_or_create_key
        from retouch.stores.db import make_engine
        from retouch.stores.storages import StorageCatalog
        from retouch.stores.tasks import TaskStore

        engine = make_engine(settings.resolved_database_url)
        box = SecretBox(load_or_create_key(settings.secret_key, settings.resolved_home))
        policy = fetch_policy(settings)
        storages = StorageCatalog(engine, box, policy, settings.storage_roots)
        http = http or guarded_client(policy)
        inputs = InputReader(lambda: storages, policy, http)
        return cls(engine, TaskStore(engine), storages, inputs, box, policy, http)


class WorkContext:
    """The parts of one process. ``database=False`` (``retouch edit``/``retouch batch``): local files only,
    no store, no storages, no network: the parts below are then None."""

    def __init__(self, settings: Settings, database: bool = True, http: httpx.Client | None = None) -> None:
        self.settings = settings
        self.database = database
        self._http = http  # a guarded client the process made already (the download process): used, not copied
        self._parts: _Parts | None = None
        self._local_tmp: TmpStore | None = None
        self._shared_tmp: SharedTmpStore | None = None
        self._lock = threading.Lock()
        if database:
            settings.resolved_home.mkdir(parents=True, exist_ok=True)
            self._local_tmp = TmpStore(settings.tmp_dir, settings.resolved_public_url, settings.tmp_retention_hours)

    @property
    def limits(self) -> Limits:
        return self.settings.limits

    @classmethod
    def open(cls, settings: Settings) -> WorkContext:
        """Everything a process of the service needs below the API, built now: the database, the task store, the
        account's storages, the guarded HTTP client and the input reader (the API process opens them at start,
        so a bad database URL stops ``serve`` at once, not at the first request)."""
        context = cls(settings)
        context._open()
        return context

    @classmethod
    def lazy(cls, settings: Settings, http: httpx.Client | None = None) -> WorkContext:
        """The same parts, each built on first use (an image worker, the download process); ``http``: the guarded
        client to use instead of making a second one."""
        return cls(settings, http=http)

    @classmethod
    def local(cls, settings: Settings) -> WorkContext:
        return cls(settings, database=False)

    def _open(self) -> _Parts | None:
        if not self.database:
            return None
        if self._parts is None:
            with self._lock:
                if self._parts is None:
                    self._parts = _Parts.build(self.settings, self._http)
        return self._parts

    @property
    def engine(self) -> Engine | None:
        parts = self._open()
        return parts.engine if parts else None

    @property
    def tasks(self) -> TaskStore | None:
        parts = self._open()
        return parts.tasks if parts else None

    @property
    def storages(self) -> StorageCatalog | None:
        parts = self._open()
        return parts.storages if parts else None

    @property
    def inputs(self) -> InputReader | None:
        parts = self._open()
        return parts.inputs if parts else None

    @property
    def box(self) -> SecretBox | None:
        parts = self._open()
        return parts.box if parts else None

    @property
    def fetch_policy(self) -> FetchPolicy | None:
        parts = self._open()
        return parts.fetch_policy if parts else None

    @property
    def http(self) -> httpx.Client | None:
        parts = self._open()
        return parts.http if parts else None

    @property
    def tmp(self) -> TmpStore | SharedTmpStore:
        """Where results without a destination go: a local folder, or RETOUCH_TMP_STORAGE when replicas share."""
        uri = self.settings.tmp_storage
        if not uri:
            if self._local_tmp is None:
                raise RetouchError("This process keeps no tmp results: name an output destination.")
            return self._local_tmp
        storages, engine = self.storages, self.engine  # built outside the lock below (they take it themselves)
        with self._lock:
            if self._shared_tmp is None:
                self._shared_tmp = self._open_shared_tmp(uri, storages, engine)
            return self._shared_tmp

    def _open_shared_tmp(self, uri: str, storages: StorageCatalog | None, engine: Engine | None) -> SharedTmpStore:
        if engine is None or storages is None:
            raise RetouchError("RETOUCH_TMP_STORAGE needs the database.")
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from retouch.storage.registry import parse_storage_uri
        from retouch.stores.tables import Account

        target = parse_storage_uri(uri)
        with Session(engine) as session:
            account = session.scalar(select(Account).where(Account.name == self.settings.tmp_storage_account))
        if account is None:
            raise RetouchError(f"RETOUCH_TMP_STORAGE: no account named {self.settings.tmp_storage_account!r}.")
        connector = storages.connector(account.id, target.name)
        return SharedTmpStore(
            connector, target.path, self.settings.resolved_public_url, self.settings.tmp_retention_hours
        )

    def close(self) -> None:
        if self._parts is not None:
            self._parts.http.close()
            self._parts.engine.dispose()


_settings: Settings | None = None
_database = True
_context: WorkContext | None = None


def init_worker(settings: Settings, database: bool = True, metrics_dir: str | None = None) -> str:
    """A worker process's start: one vips thread (one worker per core is the fast layout), the allocator and the
    models set up; the context itself is built on first use (a pool worker that only runs uploads never opens
    the database). ``metrics_dir``: the run's metrics directory (``bootstrap``), None: no metrics. Returns the
    libvips version (the pool passes it on to /readyz)."""
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
    # The unit of work's code now, not on the first job: a batch's first item starts at once (bench_batch_start).
    import pyvips

    from retouch.work import runner  # noqa: F401

    return f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"


def current() -> WorkContext:
    """This worker's context (built on first use from the settings :func:`init_worker` was given)."""
    global _context
    if _context is None:
        if _settings is None:
            raise RuntimeError("init_worker() was not called in this process")
        _context = WorkContext.lazy(_settings) if _database else WorkContext.local(_settings)
    return _context


def use(context: WorkContext) -> None:
    """Make ``context`` this process's (the API process and tests, which built theirs already)."""
    global _context, _settings
    _context, _settings = context, context.settings
