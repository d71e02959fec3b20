"""OpenTelemetry, when configured: a sync edit over real HTTP makes one trace across processes - the request and
the fetch in the API process (caught here by the SDK's in-memory exporter), the edit's stages and the write in the
image worker process (exported over OTLP/HTTP to a loopback receiver)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from retouch import tracing
from tests.conftest import ImageServer, LiveApp, make_settings


class OtlpReceiver:
    """A collector's OTLP/HTTP trace endpoint on loopback: keeps (name, trace id, span id, parent id) of each span."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            ids = (span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex())
                            outer.spans.append((span.name, *ids))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveApp, OtlpReceiver, InMemorySpanExporter]]:
    receiver = OtlpReceiver()
    memory = InMemorySpanExporter()
    # Export within 0.1 s instead of 5 s (the SDK reads it when a processor is made; the workers inherit it).
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    tracing.shutdown()  # whatever an earlier test left on
    # This process (the API's) exports to memory: bootstrap's own setup then finds it done.
    assert tracing.setup(None, exporter=memory)
    app = LiveApp(make_settings(tmp_path_factory.mktemp("traced"), otel_endpoint=receiver.url, workers=1))
    try:
        yield app, receiver, memory
    finally:
        app.close()
        tracing.shutdown()
        del os.environ["OTEL_BSP_SCHEDULE_DELAY"]
        receiver.close()


def test_a_sync_edit_makes_one_trace_across_processes(
    traced: tuple[LiveApp, OtlpReceiver, InMemorySpanExporter], image_server: ImageServer
) -> None:
    app, receiver, memory = traced
    body = {"input": image_server.url("coffee.jpg"), "operations": {"adjustments": {"exposure": 20}}}
    with app.client() as client:
        response = client.post("/v1/image/edit", json=body)
    assert response.status_code == 200, response.text

    deadline = time.monotonic() + 30
    while not ({"retouch.edit", "retouch.write"} <= {name for name, *_ in receiver.spans}):
        assert time.monotonic() < deadline, receiver.spans
        time.sleep(0.1)
    while not any(span.name == "POST /v1/image/edit" for span in memory.get_finished_spans()):
        assert time.monotonic() < deadline, [span.name for span in memory.get_finished_spans()]
        time.sleep(0.1)

    request = next(span for span in memory.get_finished_spans() if span.name == "POST /v1/image/edit")
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 200
    trace_id = f"{request.context.trace_id:032x}"
    ours = {span.name: span for span in memory.get_finished_spans() if f"{span.context.trace_id:032x}" == trace_id}
    # The download ran on a thread of this process, in the request's trace.
    assert "retouch.fetch" in ours
    worker = {name: (span_id, parent) for name, tid, span_id, parent in receiver.spans if tid == trace_id}
    # The image worker's spans continue the request's trace: the edit is the request span's child ...
    assert worker["retouch.edit"][1] == f"{request.context.span_id:016x}"
    edit_id = worker["retouch.edit"][0]
    # ... and the stages, the requested step and the storage write are the edit's children.
    for name in ("retouch.decode", "retouch.adjust", "retouch.encode", "retouch.write"):
        assert worker[name][1] == edit_id, name
    assert "retouch.sharpen" not in worker  # a step not asked for leaves no span


def test_tracing_off_imports_no_sdk() -> None:
    code = (
        "import sys; import retouch.api.app, retouch.work.runner, retouch.cli; "
        "from retouch import tracing; assert not tracing.enabled(); "
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout
