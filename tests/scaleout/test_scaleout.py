"""What only the scale-out topology has to prove: a worker killed mid-batch, a Redis restart, the
PostgreSQL migrations, shared rate limits, and fair share between accounts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pyvips
from sqlalchemy import create_engine, inspect, text

from retouch.api.ratelimit import RedisRateLimiter
from tests.api.test_metrics import scrape, value
from tests.api.test_slow_origins import Tarpit
from tests.conftest import FIXTURES
from tests.servers.origins import GatedOrigin
from tests.servers.services import PostgresServer, RedisServer
from tests.servers.topology import CeleryTopology


def _submit(topology: CeleryTopology, folder: str, count: int, ops: dict[str, Any], key: str = "default") -> int:
    path = topology.add_local_storage(folder, key if key != "default" else None)
    data = (FIXTURES / "photo_large.jpg").read_bytes()
    for i in range(count):
        (path / f"img-{i:03d}.jpg").write_bytes(data)
    with topology.client(key) as client:
        response = client.post(
            "/v1/image/edit/batch",
            json={"input": f"storage://{folder}/", "operations": ops, "output": f"storage://{folder}-out/"},
        )
    assert response.status_code == 200, response.text
    task_id: int = response.json()["data"]["id"]
    return task_id


def _view(topology: CeleryTopology, task_id: int, key: str = "default") -> dict[str, Any]:
    with topology.client(key) as client:
        data: dict[str, Any] = client.get(f"/v1/image/edit/batch/{task_id}", params={"limit": 1}).json()["data"]
    return data


def _wait(
    topology: CeleryTopology, task_id: int, timeout: float = 240, key: str = "default", alive: bool = False
) -> dict[str, Any]:
    """Poll until the task ends; with ``alive``, fail at once when a worker process exits (a Redis restart must not
    stop a worker: kombu used to, when an acknowledgement from a pool thread met its reconnection)."""
    deadline = time.monotonic() + timeout
    while (view := _view(topology, task_id, key))["status"] not in ("DONE", "ERROR", "CANCELLED"):
        assert time.monotonic() < deadline, view["progress"]
        if alive:
            assert all(p.poll() is None for p in topology.workers), topology.describe_workers()
        time.sleep(0.25)
    with topology.client(key) as client:
        full: dict[str, Any] = client.get(f"/v1/image/edit/batch/{task_id}").json()["data"]
    return full


def _until_done(topology: CeleryTopology, task_id: int, count: int) -> None:
    """Wait until ``count`` items of the task are done: the moment a test breaks something mid-batch."""
    deadline = time.monotonic() + 120
    while _view(topology, task_id)["progress"]["done"] < count:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def _check_exactly_once(topology: CeleryTopology, view: dict[str, Any], folder: str, count: int) -> None:
    assert view["status"] == "DONE", view["errors"][:3]
    assert view["progress"] == {"total": count, "done": count, "failed": 0}
    uris = [r["output_object"]["claid_storage_uri"] for r in view["results"]]
    assert len(uris) == count and len(set(uris)) == count
    out = topology.shared / f"{folder}-out"
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == [f"img-{i:03d}.jpg" for i in range(count)]
    for name in names[:: max(1, count // 20)]:
        assert pyvips.Image.new_from_file(str(out / name), fail_on="truncated").avg() > 0


def test_worker_sigkill_mid_batch(celery_topology: CeleryTopology) -> None:
    topology = celery_topology
    topology.add_local_storage("killed-out")
    task_id = _submit(topology, "killed", 200, {"resizing": {"width": 400}})
    _until_done(topology, task_id, 20)
    topology.kill_worker(0)  # SIGKILL, mid-item: its claimed and prefetched items are orphaned
    try:
        view = _wait(topology, task_id)
    finally:
        topology.start_worker(0)
    _check_exactly_once(topology, view, "killed", 200)


def test_worker_sigterm_mid_batch_finishes_its_items_and_gives_the_rest_back(celery_topology: CeleryTopology) -> None:
    """A deploy or a scale-down stops a worker with SIGTERM: it finishes what runs, gives its queued items back at
    once (not after the lease), exits 0, and the batch completes exactly once on the others."""
    topology = celery_topology
    topology.add_local_storage("stopped-out")
    task_id = _submit(topology, "stopped", 60, {"resizing": {"width": 400}, "adjustments": {"hdr": 50}})
    _until_done(topology, task_id, 5)
    started = time.monotonic()
    try:
        code = topology.stop_worker(0)
        stopping = time.monotonic() - started
        assert code == 0, topology.describe_workers()
        # Running items finish (each well under a second here); nothing waits for the Celery consumer.
        assert stopping < 20, stopping
        view = _wait(topology, task_id, timeout=120)
        finished = time.monotonic() - started
        print(f"SIGTERM: worker stopped in {stopping:.1f} s, batch done {finished:.1f} s after")
        # Given back, not abandoned: abandoned items would wait for their lease (15 s here) to run again.
        assert finished < 12, finished
    finally:
        topology.replace_worker(0)
    _check_exactly_once(topology, view, "stopped", 60)


def _downloads(port: int) -> tuple[float, float]:
    """A worker's downloads (waiting, in flight), from its own /metrics."""
    samples = scrape(f"http://127.0.0.1:{port}", CeleryTopology.METRICS_TOKEN)
    labels = {"executor": "celery-worker", "queue": "downloads"}
    return value(samples, "retouch_queue_depth", **labels), value(samples, "retouch_in_flight", **labels)


def test_worker_sigterm_gives_back_the_items_in_its_downloads(celery_topology: CeleryTopology) -> None:
    """Items a stopping worker holds in its downloads - one fetching, others waiting for a slot - go back to the
    store when it stops, not when their lease runs out; they then run once, on the other worker. This is the
    give-back path itself: items in the image pool's queue are rarely there to give back at SIGTERM."""
    topology = celery_topology
    origin = GatedOrigin((FIXTURES / "coffee.jpg").read_bytes())
    try:
        assert topology.stop_worker(0) == 0
        topology.start_worker(0, RETOUCH_FETCH_PER_HOST="1")  # one download at a time: the others wait in its queue
        # Worker 0 alone takes the batch (the dispatch window, 6, holds all of it), then worker 1 comes back.
        assert topology.stop_worker(1) == 0
        topology.add_local_storage("gated-out")
        submitted = time.monotonic()
        with topology.client() as client:
            response = client.post(
                "/v1/image/edit/batch",
                json={
                    "input": [origin.url(f"g{k}.jpg") for k in range(6)],
                    "operations": {"resizing": {"width": 200}},
                    "output": "storage://gated-out/",
                },
            )
        assert response.status_code == 200, response.text
        task_id = response.json()["data"]["id"]
        deadline = time.monotonic() + 30
        while True:
            waiting, fetching = held = _downloads(topology.worker_metrics_ports[0])
            if waiting >= 1 and fetching >= 1:
                break
            assert time.monotonic() < deadline, held
            time.sleep(0.1)
        topology.start_worker(1)
        stopping = time.monotonic()
        code = topology.stop_worker(0)
        stopped = time.monotonic()
        assert code == 0, topology.describe_workers()
        origin.gate.set()
        view = _wait(topology, task_id, timeout=60)
        done = time.monotonic()
        print(
            f"worker holding {waiting:.0f} waiting + {fetching:.0f} fetching downloads stopped in "
            f"{stopped - stopping:.1f} s; batch done {done - stopped:.1f} s after, {done - submitted:.1f} s after "
            f"the POST"
        )
        # It does not wait for the downloads in flight (a hanging origin would hold it for the fetch timeout).
        assert stopped - stopping < 5, stopped - stopping  # it took 5.9 s when it did
        # An abandoned item would run again only once its lease (15 s from its claim, after the POST) ran out.
        assert done - submitted < 13, done - submitted
        assert view["status"] == "DONE", view["errors"][:3]
        assert view["progress"] == {"total": 6, "done": 6, "failed": 0}
        out = topology.shared / "gated-out"
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [f"g{k}.jpg" for k in range(6)]
    finally:
        origin.close()
        topology.replace_worker(0)  # it runs with a setting of its own
        if topology.workers[1].poll() is not None:
            topology.start_worker(1)


def test_worker_sigterm_while_starting_exits_0(celery_topology: CeleryTopology) -> None:
    """A deploy can stop a worker that has only just started (a rollout replaced too soon, a scale-up undone): it
    holds no item yet, so it stops cleanly, at any point of its start, and not by dying of the signal (-15).
    Session 8's CI met this by chance: the previous test restarted worker 0, and SIGTERM came before Celery had
    installed its own handler."""
    topology = celery_topology
    assert topology.stop_worker(0) == 0  # the one running since the topology started
    codes = []
    try:
        for delay in (0.0, 0.3, 0.8):
            topology.start_worker(0)  # returns once the worker serves /metrics, before Celery has started
            time.sleep(delay)
            started = time.monotonic()
            code = topology.stop_worker(0)
            assert code == 0, f"delay {delay}: {topology.describe_workers()}"
            assert time.monotonic() - started < 20
            codes.append(code)
    finally:
        topology.replace_worker(0)
    assert codes == [0, 0, 0]


def test_redis_restart_mid_batch(celery_topology: CeleryTopology, redis_server: RedisServer) -> None:
    topology = celery_topology
    topology.add_local_storage("restart-out")
    task_id = _submit(topology, "restart", 80, {"resizing": {"width": 400}, "adjustments": {"hdr": 50}})
    _until_done(topology, task_id, 5)
    redis_server.restart()  # no persistence: every queued message is gone
    try:
        view = _wait(topology, task_id, alive=True)
        _check_exactly_once(topology, view, "restart", 80)
    finally:
        # Whatever happened, the next tests get running workers.
        for index, process in enumerate(topology.workers):
            if process.poll() is not None:
                topology.start_worker(index)


def test_fair_share_between_accounts(celery_topology: CeleryTopology) -> None:
    topology = celery_topology
    topology.add_local_storage("big-out")
    big = _submit(topology, "big", 120, {"resizing": {"width": 800}, "adjustments": {"hdr": 100}})
    time.sleep(1.0)  # the big batch is listed and its first items are running
    other = topology.create_key("small-shop")
    topology.add_local_storage("small-out", other)
    small = _submit(topology, "small", 3, {"resizing": {"width": 200}}, key=other)
    view = _wait(topology, small, key=other, timeout=120)
    assert view["status"] == "DONE"
    # the small job finished while the big one was still far from done: it did not wait behind it
    assert _view(topology, big)["progress"]["done"] < 100
    _wait(topology, big)


def test_hanging_origin_holds_no_celery_worker(celery_topology: CeleryTopology) -> None:
    """Issue 11, item 6 on the scale-out executor: a batch whose URLs never answer holds neither a worker's image
    process nor the dispatch window; another account's batch runs through meanwhile. Before, each worker's
    single process sat in the stuck download for the whole fetch timeout (30 s), and the window (6) filled up
    with the stuck account's items."""
    topology = celery_topology
    pit = Tarpit()
    try:
        with topology.client() as client:
            response = client.post("/v1/image/edit/batch", json={"input": [pit.url(f"s{k}.jpg") for k in range(12)]})
            assert response.status_code == 200, response.text
            stuck = response.json()["data"]["id"]
        time.sleep(1.5)  # listed and dispatched: its downloads are stuck on the tarpit
        other = topology.create_key("not-stuck")
        topology.add_local_storage("free-out", other)
        started = time.monotonic()
        small = _submit(topology, "free", 4, {"resizing": {"width": 200}}, key=other)
        view = _wait(topology, small, key=other, timeout=60)
        seconds = time.monotonic() - started
        print(f"another account's batch of 4 with 12 stuck downloads: {seconds:.2f} s")
        assert view["status"] == "DONE", view
        assert seconds < 15, seconds  # well inside the 30-s fetch timeout the stuck items wait for
        with topology.client() as client:
            assert client.post(f"/v1/image/edit/batch/{stuck}/cancel").status_code == 200
    finally:
        pit.close()  # the stuck downloads fail at once; the cancelled task's other items never run


def test_a_revoked_key_is_refused_by_every_replica(celery_topology: CeleryTopology) -> None:
    """Issue 13: `retouch keys revoke` takes effect on both API replicas within RETOUCH_KEY_CACHE_SECONDS (1 s);
    `retouch keys list` shows the key's use and state, never the key."""
    topology = celery_topology
    key = topology.create_key("leaving-co", ("image_editing",))
    for port in topology.ports:  # both replicas know the key (and cache it)
        response = httpx.get(f"http://127.0.0.1:{port}/v1/image/edit/batch/999999", headers=_bearer(key))
        assert response.status_code == 404, response.text
    listed = topology._run("keys", "list", "--account", "leaving-co")
    (row,) = listed.strip().splitlines()[1:]
    key_id, account, prefix, scopes, _created, last_used, expires, state = row.split("\t")
    assert (account, scopes, expires, state) == ("leaving-co", "image_editing", "-", "active"), row
    assert prefix == key[:10] + "…" and key not in listed and last_used != "-"
    assert topology._run("keys", "revoke", key_id).strip() == f"key {key_id} revoked"
    time.sleep(1.2)
    for port in topology.ports:
        response = httpx.get(f"http://127.0.0.1:{port}/v1/image/edit/batch/999999", headers=_bearer(key))
        assert response.status_code == 401, response.text
    assert topology._run("keys", "list", "--account", "leaving-co").strip().endswith("revoked")
    assert "leaving-co\t0\t" in topology._run("accounts", "list")


def test_every_replica_serves_the_console_and_its_routes(celery_topology: CeleryTopology) -> None:
    """Issue 15: the console is served by each API replica, and the routes it uses answer from the shared
    database whichever replica is asked."""
    topology = celery_topology
    key = topology.create_key("console-co")
    folder = topology.add_local_storage("console-in", key)
    (folder / "a.jpg").write_bytes((Path(__file__).parents[1] / "fixtures" / "chelsea.jpg").read_bytes())
    body = {"input": "storage://console-in/a.jpg", "operations": {"resizing": {"width": 50}}}
    first, second = topology.ports
    accepted = httpx.post(f"http://127.0.0.1:{first}/v1/image/edit/async", json=body, headers=_bearer(key))
    assert accepted.status_code == 200, accepted.text
    for port in topology.ports:
        page = httpx.get(f"http://127.0.0.1:{port}/")
        assert page.status_code == 200 and 'src="/console/assets/console.js"' in page.text
        script = httpx.get(f"http://127.0.0.1:{port}/console/assets/console.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    tasks = httpx.get(f"http://127.0.0.1:{second}/v1/tasks", headers=_bearer(key)).json()["data"]
    assert [t["id"] for t in tasks] == [accepted.json()["data"]["id"]]
    listed = httpx.get(f"http://127.0.0.1:{second}/v1/storage/storages", headers=_bearer(key)).json()["data"]
    objects = httpx.get(f"http://127.0.0.1:{first}/v1/storage/storages/{listed[0]['id']}/objects", headers=_bearer(key))
    assert [o["key"] for o in objects.json()["data"]["objects"]] == ["a.jpg"]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_postgres_migrations_from_empty(postgres_server: PostgresServer, tmp_path: Path) -> None:
    url = postgres_server.create_database(f"migrate_{os.getpid()}")
    env = {**os.environ, "RETOUCH_DATABASE_URL": url, "RETOUCH_HOME": str(tmp_path)}
    for _ in range(2):  # the second run finds nothing to do
        done = subprocess.run(
            [sys.executable, "-m", "retouch", "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"accounts", "api_keys", "storages", "tasks", "items", "webhooks", "alembic_version"} <= tables
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0003"  # the head
        columns = {c["name"] for c in inspect(engine).get_columns("api_keys")}
        assert {"last_used_at", "expires_at", "revoked_at"} <= columns
        assert "request_id" in {c["name"] for c in inspect(engine).get_columns("tasks")}
    finally:
        engine.dispose()
    # a worker refuses to start on a database that was never migrated
    empty = postgres_server.create_database(f"empty_{os.getpid()}")
    refused = subprocess.run(
        [sys.executable, "-m", "retouch", "worker"],
        env={
            **env,
            "RETOUCH_DATABASE_URL": empty,
            "RETOUCH_EXECUTOR": "celery",
            "RETOUCH_BROKER_URL": "redis://127.0.0.1:1/0",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "retouch db upgrade" in refused.stderr


def test_rate_limit_shared_through_redis(redis_server: RedisServer) -> None:
    """Two replicas spend one bucket per key: a burst of 3 between them, then refused, then one token back."""
    replicas = [RedisRateLimiter(100, 2, redis_server.url, burst=3) for _ in range(2)]
    key = f"key:shared-{time.time()}"
    verdicts = [replicas[i % 2].hit(key) for i in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.headers["RateLimit-Remaining"] for v in verdicts] == ["2", "1", "0", "-1"]
    assert verdicts[-1].headers["RateLimit-Reset"] == "1"
    assert verdicts[0].headers["RateLimit-Limit"] == "2, 100;w=60, 2;w=1;burst=3"
    time.sleep(0.6)  # 2 tokens per second: one is back on both replicas
    assert replicas[1].hit(key).allowed
    assert not replicas[0].hit(key).allowed
    other = replicas[0].hit(key + "-other")  # another key has its own buckets
    assert other.allowed and other.headers["RateLimit-Remaining"] == "2"


def test_sqlite_default_unchanged(tmp_path: Path) -> None:
    """The embedded default needs none of this: no broker, no PostgreSQL, SQLite migrated by itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETOUCH_")}
    env["RETOUCH_HOME"] = str(tmp_path)
    shutil.copy(FIXTURES / "coffee.jpg", tmp_path / "in.jpg")
    done = subprocess.run(
        [sys.executable, "-m", "retouch", "keys", "create", "--account", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "retouch.db").exists()
    assert httpx is not None
