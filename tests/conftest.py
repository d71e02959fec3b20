"""Shared test parts: fixture images, a loopback image server, and the app served by uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import uvicorn

from retouch.api.app import create_app
from retouch.settings import Settings

# The loopback storage servers' session fixtures (moto_server, gcs_emulator), for every test module.
pytest_plugins = ["tests.servers.moto", "tests.servers.gcs", "tests.servers.services", "tests.servers.topology"]

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _FixtureHandler(SimpleHTTPRequestHandler):
    """Serves tests/fixtures, plus a few special paths for the SSRF and size tests."""

    redirects: ClassVar[dict[str, str]] = {}
    arrivals: ClassVar[list[tuple[str, float]]] = []  # (path, time.monotonic()) of each /slow/ request

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(FIXTURES), **kwargs)

    def do_GET(self) -> None:
        target = self.redirects.get(self.path)
        if target is not None:
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
            return
        if self.path.startswith("/slow/"):  # /slow/<ms>/<fixture>[?anything]: a distant origin
            self.arrivals.append((self.path, time.monotonic()))
            _, _, ms, rest = self.path.split("/", 3)
            time.sleep(int(ms) / 1000)
            self.path = "/" + rest
        if self.path.startswith("/big/"):
            size = int(self.path.rsplit("/", 1)[-1])
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.write(b"\xff\xd8\xff" + b"\0" * (size - 3))
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
        pass


class ImageServer:
    def __init__(self) -> None:
        self.handler = type("Handler", (_FixtureHandler,), {"redirects": {}, "arrivals": []})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def redirect(self, path: str, target: str) -> str:
        self.handler.redirects["/" + path.lstrip("/")] = target
        return self.url(path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def image_server() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.close()


class LiveApp:
    """The real app on a real socket: requests go through uvicorn exactly as in production."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=settings.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.base = self.public_url = f"http://127.0.0.1:{settings.port}"
        self.service = self.app.state.service
        self.key = self.service.keys.create("tests")

    kind = "local"

    def create_key(self, account: str, scopes: tuple[str, ...] = ("image_editing", "storage")) -> str:
        key: str = self.service.keys.create(account, scopes)
        return key

    def add_local_storage(self, name: str, key: str | None = None) -> Path:
        """A `local` storage for the tests' account, on a folder under the home's storage root."""
        folder = self.settings.storage_roots[0] / name
        folder.mkdir(parents=True, exist_ok=True)
        with self.client(key or "default") as client:
            response = client.post(
                "/v1/storage/storages", json={"name": name, "type": "local", "parameters": {"path": str(folder)}}
            )
        assert response.status_code == 200, response.text
        return folder

    def client(self, key: str | None = "default") -> httpx.Client:
        headers = {}
        if key is not None:
            headers["Authorization"] = f"Bearer {self.key if key == 'default' else key}"
        return httpx.Client(base_url=self.base, headers=headers, timeout=60)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def wait_healthy(port: int, timeout: float = 30) -> None:
    """Until a server started as a subprocess answers /healthz on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server did not come up"
        time.sleep(0.1)


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": tmp,
        "port": free_port(),
        "fetch_allow_hosts": ["127.0.0.1"],
        "rate_limit_per_minute": 0,
        "rate_limit_per_second": 0,
        "workers": 2,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    app = LiveApp(make_settings(tmp_path_factory.mktemp("home")))
    yield app
    app.close()
