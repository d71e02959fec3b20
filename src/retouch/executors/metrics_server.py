"""A `retouch worker`'s own /metrics: it has no HTTP API, so it serves the scrape on a port of its own
(``RETOUCH_WORKER_METRICS_PORT``, off by default), with the same optional bearer token as the API."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from retouch import metrics
from retouch.errors import AuthError, NotFound, RetouchError

__all__ = ["MetricsServer"]

log = logging.getLogger("retouch.metrics")


class MetricsServer:
    def __init__(self, host: str, port: int, token: str | None) -> None:
        handler = type("Handler", (_Handler,), {"token": token})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="retouch-metrics", daemon=True)
        self._thread.start()
        log.info("worker metrics on http://%s:%d/metrics", host, self.port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    token: str | None = None

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._error(NotFound("Only /metrics is served here."))
        elif not metrics.authorized(self.headers.get("Authorization"), self.token):
            self._error(AuthError("GET /metrics needs `Authorization: Bearer <RETOUCH_METRICS_TOKEN>`."))
        else:
            self._send(200, metrics.render(), metrics.CONTENT_TYPE)

    def _error(self, error: RetouchError) -> None:
        # The API's one error envelope, so a scraper sees the same answer from a worker and from the API.
        extra = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
        self._send(error.status, json.dumps(error.envelope()).encode(), "application/json", extra)

    def _send(self, status: int, body: bytes, mime: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds would flood the log
        pass
