"""The scale-out topology on one machine: PostgreSQL, Redis, two API processes on different ports
and two `retouch worker` processes, all real, all on loopback. Requests alternate between the API
replicas, so every test also checks that any replica answers for any task."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.conftest import free_port
from tests.servers.services import PostgresServer, RedisServer

__all__ = ["CeleryTopology", "celery_topology"]


class CeleryTopology:
    kind = "celery"
    METRICS_TOKEN = "topology-metrics"

    def __init__(self, postgres: PostgresServer, redis: RedisServer, root: Path, **settings: str) -> None:
        self.root = root
        self.redis = redis
        self.shared = root / "shared"  # the storage root every process sees (a stand-in for a bucket)
        (self.shared / "tmp").mkdir(parents=True)
        self.env = {
            **os.environ,
            "RETOUCH_DATABASE_URL": postgres.create_database(f"retouch_{os.getpid()}_{int(time.time() * 1000)}"),
            "RETOUCH_EXECUTOR": "celery",
            "RETOUCH_BROKER_URL": redis.url,
            "RETOUCH_SECRET_KEY": Fernet.generate_key().decode(),
            "RETOUCH_LOCAL_STORAGE_ROOTS": str(self.shared),
            "RETOUCH_FETCH_ALLOW_HOSTS": "127.0.0.1",
            "RETOUCH_RATE_LIMIT_PER_MINUTE": "0",
            "RETOUCH_RATE_LIMIT_PER_SECOND": "0",
            "RETOUCH_TMP_STORAGE": "storage://tmp/",
            "RETOUCH_WEBHOOK_BACKOFF_SECONDS": "0.2",
            "RETOUCH_ITEM_TIMEOUT_SECONDS": "20",
            "RETOUCH_ITEM_LEASE_SECONDS": "15",
            "RETOUCH_CELERY_MAX_INFLIGHT": "6",  # 3x the two single-process workers
            "RETOUCH_METRICS_TOKEN": self.METRICS_TOKEN,
            **settings,
        }
        self.ports = [free_port(), free_port()]
        # Workers build result URLs too: in a real deployment this is the load balancer's address.
        self.public_url = f"http://127.0.0.1:{self.ports[0]}"
        self.env["RETOUCH_PUBLIC_URL"] = self.public_url
        self._run("db", "upgrade")
        self.key = self._run("keys", "create", "--account", "default").strip().splitlines()[-1]
        self.logs: dict[int, Path] = {}  # pid -> its log file
        self.apis: list[subprocess.Popen[bytes]] = []
        for index, port in enumerate(self.ports):
            home = root / f"api-{index}"  # nothing the replicas share may live here
            self.apis.append(self._spawn("serve", "--port", str(port), "--workers", "1", home=home))
        self.workers: list[subprocess.Popen[bytes]] = []
        #: Each worker serves its own /metrics (RETOUCH_WORKER_METRICS_PORT); a restarted worker gets a fresh port
        #: (the old number may have been handed out as another socket's port meanwhile).
        self.worker_metrics_ports: list[int] = []
        for index in range(2):
            self.start_worker(index)
        self._turn = itertools.cycle(range(len(self.ports)))
        for port in self.ports:
            self._wait_http(port)
        with self.client() as client:
            response = client.post(
                "/v1/storage/storages",
                json={"name": "tmp", "type": "local", "parameters": {"path": str(self.shared / "tmp")}},
            )
            assert response.status_code == 200, response.text

    # -------------------------------------------------------------- processes

    def _run(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "retouch", *args],
            env={**self.env, "RETOUCH_HOME": str(self.root / "cli")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def _spawn(self, *args: str, home: Path, **env: str) -> subprocess.Popen[bytes]:
        path = self.root / f"{args[0]}-{len(os.listdir(self.root))}.log"
        log = path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "retouch", *args],
            env={**self.env, "RETOUCH_HOME": str(home), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.logs[process.pid] = path
        return process

    def start_worker(self, index: int, **env: str) -> None:
        """Start worker ``index`` (``env``: settings of its own) and wait until it serves its /metrics (it has built
        its runtime); a worker that exits instead fails here, with its log."""
        if index < len(self.workers):
            # A second worker in the slot would orphan the first: it would go on consuming, unseen by the tests.
            assert self.workers[index].poll() is not None, f"worker {index} is running: stop it first"
        port = free_port()
        process = self._spawn(
            "worker",
            "--concurrency",
            "1",
            home=self.root / f"worker-{index}",
            RETOUCH_WORKER_METRICS_PORT=str(port),
            **env,
        )
        if index < len(self.workers):
            self.workers[index], self.worker_metrics_ports[index] = process, port
        else:
            self.workers.append(process)
            self.worker_metrics_ports.append(port)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                return
            except httpx.TransportError:
                pass
            log = self.logs[process.pid].read_text(errors="replace")[-3000:]
            assert process.poll() is None, f"worker {index} exited ({process.returncode}):\n{log}"
            assert time.monotonic() < deadline, f"worker {index} did not serve /metrics in 60 s:\n{log}"
            time.sleep(0.1)

    def replace_worker(self, index: int) -> None:
        """A fresh worker with the topology's own settings in slot ``index``, whatever the test left there (one
        that did not stop, or one started with settings of its own): what a test's cleanup leaves the next."""
        if self.workers[index].poll() is None:
            self.kill_worker(index)
        self.start_worker(index)

    def describe_workers(self) -> str:
        """Each worker's state and the end of its log: what a failed wait on the workers reports."""
        parts = []
        for index, process in enumerate(self.workers):
            text = self.logs[process.pid].read_text(errors="replace")
            notable = [line for line in text.splitlines() if any(w in line for w in ("ERROR", "CRITICAL", "WARNING"))]
            log = "\n".join(notable[:40]) + "\n...\n" + text[-2000:]
            state = "running" if process.poll() is None else f"exited {process.returncode}"
            port = self.worker_metrics_ports[index]
            parts.append(f"--- worker {index} (pid {process.pid}, {state}, metrics port {port}):\n{log}")
        return "\n".join(parts)

    def stop_worker(self, index: int, timeout: float = 60) -> int:
        """SIGTERM worker ``index`` (its process group, as compose stop or systemd would) and wait: its exit code."""
        os.killpg(self.workers[index].pid, signal.SIGTERM)
        return self.workers[index].wait(timeout=timeout)

    def kill_worker(self, index: int) -> None:
        """SIGKILL the whole worker (Celery's main process and its pool child), mid-item."""
        os.killpg(self.workers[index].pid, signal.SIGKILL)
        self.workers[index].wait(timeout=10)

    def _wait_http(self, port: int) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "API replica did not start"
            time.sleep(0.1)

    def close(self) -> None:
        for process in [*self.apis, *self.workers]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.apis, *self.workers]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    # -------------------------------------------------------------- the test interface (as LiveApp)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ports[next(self._turn)]}"

    def client(self, key: str | None = "default") -> httpx.Client:
        headers = {}
        if key is not None:
            headers["Authorization"] = f"Bearer {self.key if key == 'default' else key}"
        return _AlternatingClient(self.ports, headers)

    def create_key(self, account: str, scopes: tuple[str, ...] = ("image_editing", "storage")) -> str:
        return self._run("keys", "create", "--account", account, "--scopes", ",".join(scopes)).strip().splitlines()[-1]

    def add_local_storage(self, name: str, key: str | None = None) -> Path:
        folder = self.shared / name
        folder.mkdir(parents=True, exist_ok=True)
        with self.client(key or "default") as client:
            response = client.post(
                "/v1/storage/storages", json={"name": name, "type": "local", "parameters": {"path": str(folder)}}
            )
        assert response.status_code == 200, response.text
        return folder


class _AlternatingClient(httpx.Client):
    """Each request goes to the next API replica."""

    def __init__(self, ports: list[int], headers: dict[str, str]) -> None:
        super().__init__(headers=headers, timeout=60)
        self._ports = itertools.cycle(ports)

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        if isinstance(url, str) and url.startswith("/"):
            url = f"http://127.0.0.1:{next(self._ports)}{url}"
        return super().request(method, url, **kwargs)


@pytest.fixture(scope="session")
def celery_topology(postgres_server: PostgresServer, redis_server: RedisServer) -> Iterator[CeleryTopology]:
    root = Path(tempfile.mkdtemp(prefix="retouch-topology-"))
    topology = CeleryTopology(postgres_server, redis_server, root)
    yield topology
    topology.close()
