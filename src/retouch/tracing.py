"""OpenTelemetry spans, off unless configured (``RETOUCH_OTEL=1`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``).

Off, nothing of the OpenTelemetry SDK is imported and :func:`span` is one ``if``. On (``pip install
'retouch[otel]'``), each process that does work - the API process, every image worker, a `retouch worker` - has
its own tracer provider exporting over OTLP/HTTP. A sync edit's spans form one trace across processes: the
request's span context travels with the job to the image worker (:func:`carrier` / :func:`resumed`, the W3C
``traceparent``). Spans: the request (``GET /v1/...`` by route template), ``retouch.edit`` / ``retouch.item`` in
the worker, and under it ``retouch.fetch``, ``retouch.decode``, each pipeline step, ``retouch.encode``,
``retouch.write`` (opened by ``metrics.stage`` and ``metrics.stage_took``, so the call sites stay one line).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

__all__ = ["carrier", "enabled", "record", "resumed", "setup", "shutdown", "span"]

log = logging.getLogger("retouch.tracing")

INSTALL_HINT = "pip install 'retouch[otel]'"

_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_lock = threading.Lock()


def setup(endpoint: str | None, exporter: SpanExporter | None = None) -> bool:
    """Start exporting this process's spans: over OTLP/HTTP to ``endpoint`` (the collector's base URL, e.g.
    ``http://otel:4318``; None: the exporter's own default and ``OTEL_EXPORTER_OTLP_*`` variables), or to
    ``exporter``. Idempotent. False (with a warning) when the extra is not installed: tracing stays off."""
    global _provider, _tracer
    with _lock:
        if _tracer is not None:
            return True
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            log.warning("tracing is configured but OpenTelemetry is not installed (%s); tracing is off", INSTALL_HINT)
            return False
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            url = endpoint.rstrip("/") + "/v1/traces" if endpoint else None
            exporter = OTLPSpanExporter(endpoint=url)
        try:
            version = importlib.metadata.version("retouch")  # not `retouch.__version__`: that imports everything
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        provider = TracerProvider(resource=Resource.create({"service.name": "retouch", "service.version": version}))
        # In batches, on the SDK's thread: a span costs the edit a few microseconds, never a network round trip.
        provider.add_span_processor(BatchSpanProcessor(exporter))
        # This provider, not the global one: an application embedding retouch keeps its own.
        _provider, _tracer = provider, provider.get_tracer("retouch")
        return True


def shutdown() -> None:
    """Export what is buffered and stop (a worker's exit, the API's shutdown); tracing is off afterwards."""
    global _provider, _tracer
    with _lock:
        provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    return _tracer is not None


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span | None]:
    """A span around the block, a child of the current one; yields None when tracing is off."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


def record(name: str, seconds: float) -> None:
    """A span for work that just ended and took ``seconds`` (a pipeline step, timed by its caller)."""
    if _tracer is None:
        return
    end = time.time_ns()
    _tracer.start_span(name, start_time=end - int(seconds * 1e9)).end(end_time=end)


def carrier() -> dict[str, str] | None:
    """The current span's context as W3C headers, to hand to another process with a job; None when off."""
    if _tracer is None:
        return None
    from opentelemetry.propagate import inject

    headers: dict[str, str] = {}
    inject(headers)
    return headers


@contextlib.contextmanager
def resumed(
    headers: Mapping[str, str] | None, name: str, attributes: Mapping[str, Any] | None = None
) -> Iterator[None]:
    """A span ``name`` continuing the trace of ``headers`` (from :func:`carrier` in another process)."""
    if _tracer is None:
        yield
        return
    from opentelemetry.propagate import extract

    parent = extract(dict(headers)) if headers else None
    with _tracer.start_as_current_span(name, context=parent, attributes=attributes):
        yield
