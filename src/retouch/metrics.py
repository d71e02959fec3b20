"""Every Prometheus metric of retouch, defined once, and the tiny recorders the rest of the code calls.

Off until :func:`setup` is called: then every recorder below is a no-op (one ``if``), so ``retouch edit``,
``retouch batch`` and the library pay nothing. ``bootstrap`` calls it in the API process (``retouch serve``) and
in ``retouch worker``, with a per-run directory, *before* the image worker pool starts; each pool worker calls it
again with the same directory (``work.context.init_worker``). prometheus-client's multiprocess mode then keeps
each process's values in memory-mapped files there, and :func:`render` - the ``/metrics`` answer - adds them up
across the processes, dead ones included (a counter must not drop when the pool replaces a worker).

Gauges that say what a process holds *now* (queue depths, items in flight) are not written to files: the process
that serves ``/metrics`` reads them from its live objects at scrape time (:func:`watch`).

Names, labels and buckets are part of the operator's surface (dashboards, alerts): docs/operations.md lists them.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from retouch import tracing

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram
    from prometheus_client.metrics_core import Metric

__all__ = [
    "CONTENT_TYPE",
    "authorized",
    "definitions",
    "directory",
    "enabled",
    "fresh_directory",
    "http_request",
    "image_done",
    "input_bytes",
    "model_loaded",
    "output_bytes",
    "process_dead",
    "rate_limited",
    "render",
    "setup",
    "stage",
    "stage_took",
    "unwatch",
    "watch",
    "webhook_delivery",
    "worker_restarted",
]

log = logging.getLogger("retouch.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Seconds: from a 1 ms step to a 2-minute item (the default item timeout).
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: Bytes: a 10 KB thumbnail to the 100 MB input limit.
_BYTES = (10e3, 30e3, 100e3, 300e3, 1e6, 3e6, 10e6, 30e6, 100e6)


@dataclass(frozen=True)
class _Metrics:
    http_requests: Counter
    http_seconds: Histogram
    images: Counter
    stage_seconds: Histogram
    input_bytes: Histogram
    output_bytes: Histogram
    worker_restarts: Counter
    webhooks: Counter
    rate_limited: Counter
    model_load_seconds: Histogram


_metrics: _Metrics | None = None
_directory: Path | None = None
_lock = threading.Lock()
#: name -> probe of the live gauges of this process (see :func:`watch`).
_probes: dict[str, Callable[[], Mapping[str, tuple[float, float]]]] = {}


def fresh_directory(parent: Path) -> Path:
    """A directory for this run's files: ``parent/run-<pid>``, emptied, and the directories of earlier runs
    whose process is gone removed (their pids could come back in this run and mix old counts in)."""
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.glob("run-*"):
        pid = old.name.removeprefix("run-")
        if not pid.isdigit() or int(pid) == os.getpid() or not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = parent / f"run-{os.getpid()}"
    path.mkdir()
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, and not ours to touch
        return True
    return True


def setup(path: Path) -> None:
    """Turn metrics on in this process, its values kept under ``path`` (shared by the processes of one run).

    Idempotent: a second call in the same process keeps the first directory (tests run several apps in one
    process; their counts then add up, which is what a before/after comparison needs)."""
    global _metrics, _directory
    with _lock:
        if _metrics is not None:
            return
        # prometheus-client reads the variable itself, when a value is first created in a process; the pool's
        # spawned workers inherit it too. Its value class was chosen when it was imported: choose again.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
        from prometheus_client import Counter, Histogram, values

        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        _directory = path
        # registry=None: the exposition reads the files (render), not a registry of this process.
        _metrics = _Metrics(
            http_requests=Counter(
                "retouch_http_requests",
                "HTTP requests answered, by route template, method and status.",
                ["route", "method", "status"],
                registry=None,
            ),
            http_seconds=Histogram(
                "retouch_http_request_duration_seconds",
                "Time from the request's arrival to the end of its answer, by route template and method.",
                ["route", "method"],
                buckets=_SECONDS,
                registry=None,
            ),
            images=Counter(
                "retouch_images_edited",
                "Images through the unit of work, by operation family (one image counts once per family it "
                "asked for; 'none' = re-encode only) and outcome (ok, rejected = the input's or request's fault, "
                "error = ours).",
                ["family", "outcome"],
                registry=None,
            ),
            stage_seconds=Histogram(
                "retouch_stage_duration_seconds",
                "Time per stage of an image: fetch, decode, each pipeline step, encode, write (pyvips is lazy: "
                "most pixel work shows under encode).",
                ["stage"],
                buckets=_SECONDS,
                registry=None,
            ),
            input_bytes=Histogram("retouch_input_bytes", "Size of the inputs read.", buckets=_BYTES, registry=None),
            output_bytes=Histogram(
                "retouch_output_bytes", "Size of the outputs written.", buckets=_BYTES, registry=None
            ),
            worker_restarts=Counter(
                "retouch_worker_restarts",
                "Image worker processes replaced, by reason: deadline (killed past the item timeout) or crash.",
                ["reason"],
                registry=None,
            ),
            webhooks=Counter(
                "retouch_webhook_deliveries",
                "Webhook delivery attempts, by outcome: delivered, retry (will be tried again), failed (gave up).",
                ["outcome"],
                registry=None,
            ),
            rate_limited=Counter(
                "retouch_rate_limited_requests", "Requests refused with 429 by the rate limiter.", registry=None
            ),
            model_load_seconds=Histogram(
                "retouch_model_load_duration_seconds",
                "Time to load an AI model into a worker process (once per process and model).",
                ["model"],
                buckets=_SECONDS,
                registry=None,
            ),
        )


def definitions() -> list[Counter | Histogram]:
    """Every metric kept in files (empty while off): for checks that a dashboard asks only for what exists."""
    return list(vars(_metrics).values()) if _metrics is not None else []


def enabled() -> bool:
    return _metrics is not None


def directory() -> Path | None:
    """This run's directory, once :func:`setup` was called (handed to the pool's workers)."""
    return _directory


# ----------------------------------------------------------------------------------------------- recorders


#: Methods kept as a label; any other (a client may send "XYZ123") is "other": a label must stay bounded.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def http_request(route: str, method: str, status: int, seconds: float) -> None:
    if _metrics is None:
        return
    method = method if method in _METHODS else "other"
    _metrics.http_requests.labels(route, method, str(status)).inc()
    _metrics.http_seconds.labels(route, method).observe(seconds)


def image_done(families: Iterable[str], outcome: str) -> None:
    if _metrics is None:
        return
    for family in families:
        _metrics.images.labels(family, outcome).inc()


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block into ``retouch_stage_duration_seconds{stage=name}`` (also when it raises), and trace it as
    a span ``retouch.<name>`` when tracing is on (``tracing.py``)."""
    if _metrics is None and not tracing.enabled():
        yield
        return
    began = time.perf_counter()
    try:
        with tracing.span("retouch." + name):
            yield
    finally:
        if _metrics is not None:
            _metrics.stage_seconds.labels(name).observe(time.perf_counter() - began)


def stage_took(name: str, seconds: float) -> None:
    """A stage timed by its caller (a pipeline step), just ended."""
    if _metrics is not None:
        _metrics.stage_seconds.labels(name).observe(seconds)
    tracing.record("retouch." + name, seconds)


def input_bytes(size: int) -> None:
    if _metrics is not None:
        _metrics.input_bytes.observe(size)


def output_bytes(size: int) -> None:
    if _metrics is not None:
        _metrics.output_bytes.observe(size)


def worker_restarted(reason: str) -> None:
    if _metrics is not None:
        _metrics.worker_restarts.labels(reason).inc()


def webhook_delivery(outcome: str) -> None:
    if _metrics is not None:
        _metrics.webhooks.labels(outcome).inc()


def rate_limited() -> None:
    if _metrics is not None:
        _metrics.rate_limited.inc()


def model_loaded(model: str, seconds: float) -> None:
    if _metrics is not None:
        _metrics.model_load_seconds.labels(model).observe(seconds)


def process_dead(pid: int | None) -> None:
    """A worker process ended (replaced or shut down): drop its files of live gauges. Its counters and
    histograms stay, so totals never go backwards."""
    if _metrics is None or _directory is None or pid is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(_directory))  # type: ignore[no-untyped-call]


# --------------------------------------------------------------------------------------- live gauges, exposition


def watch(executor: str, probe: Callable[[], Mapping[str, tuple[float, float]]]) -> None:
    """Report ``probe()`` at each scrape of this process as ``retouch_queue_depth{executor, queue}`` (waiting)
    and ``retouch_in_flight{executor, queue}`` (being worked on): the probe maps a queue (pool, downloads,
    store) to (waiting, in flight). A later call for the same executor replaces the probe."""
    _probes[executor] = probe


def unwatch(executor: str) -> None:
    _probes.pop(executor, None)


def authorized(authorization: str | None, token: str | None) -> bool:
    """Whether a scrape may see the metrics: always without a token, else only with ``Bearer <token>``."""
    if not token:
        return True
    if authorization is None or authorization[:7].lower() != "bearer ":
        return False
    return hmac.compare_digest(authorization[7:].strip().encode(), token.encode())


def render() -> bytes:
    """The ``/metrics`` body: every process's files added up, and this process's live gauges."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    if _directory is not None:
        MultiProcessCollector(registry, path=str(_directory))  # type: ignore[no-untyped-call]
    registry.register(_LiveCollector())
    return generate_latest(registry)


class _LiveCollector:
    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        depth = GaugeMetricFamily(
            "retouch_queue_depth",
            "Items waiting, per executor and queue (at scrape time).",
            labels=["executor", "queue"],
        )
        flight = GaugeMetricFamily(
            "retouch_in_flight", "Items being worked on, per executor and queue.", labels=["executor", "queue"]
        )
        for executor, probe in list(_probes.items()):
            try:
                readings = probe()
            except Exception:  # a probe must never break the scrape (a database hiccup for the store's counts)
                log.warning("metrics probe %s failed", executor, exc_info=True)
                continue
            for queue, (waiting, running) in readings.items():
                depth.add_metric([executor, queue], waiting)
                flight.add_metric([executor, queue], running)
        yield depth
        yield flight
