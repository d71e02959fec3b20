"""Image origins on 127.0.0.1 for tests that need an origin to behave a certain way."""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["GatedOrigin"]


class GatedOrigin:
    """An image origin that holds every answer until it is opened: downloads stay in flight while a worker stops."""

    def __init__(self, body: bytes) -> None:
        self.gate = threading.Event()
        self.requests: list[str] = []
        gate, requests = self.gate, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                if not gate.wait(timeout=60):
                    return
                with contextlib.suppress(OSError):  # the client gave up (its process stopped): nothing to send
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()
