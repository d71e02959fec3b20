"""Benchmark of POST /v1/image/edit/batch on the Celery topology, with the load each item puts on the database and
the broker, and the capacity model those figures give.

Workload: N 12-megapixel JPEGs -> resize to width 1000 -> JPEG q85 (baseline encoder settings), as bench_batch.py,
read from and written to a `local` storage that every process sees.

  celery-W   PostgreSQL + redis-server + one `retouch serve --workers 1` (RETOUCH_EXECUTOR=celery) + W
             `retouch worker --concurrency 1` processes, RETOUCH_CELERY_MAX_INFLIGHT = 3 x W; a `local` storage
             `bench` created through the API; one POST /v1/image/edit/batch, then GET .../batch/{id}?limit=1
             until DONE. W = 1 and 2 by default.
  local      bench_batch.py's run: `retouch serve --workers 2`, local executor, SQLite: the figure the 2-worker
             Celery run is held against, from the same run of this script.

Besides img/s, each Celery run measures what one item costs the shared services: CPU of the API process, the
workers, PostgreSQL (per backend role: the API and the workers connect as different users) and redis-server;
transactions, statements and rows (pg_stat_statements, pg_stat_database) and Redis commands (INFO
commandstats). A polled idle window before the batch gives the per-second costs that do not depend on items, so
the marginal cost per item can be told from the fixed one. From these the report derives the throughput model

    items/s at W workers ~ min(W x per-worker rate, DB capacity, broker capacity, API dispatcher capacity)

and what 100 workers would need. Run from the repository root (it imports tests/servers/services.py):

    .venv/bin/python bench/bench_celery.py              # N=500, W=1,2 + local, 2 passes -> bench/results/celery.*
    .venv/bin/python bench/bench_celery.py -n 40 --passes 1 --distinct 8 --name celery-smoke

See bench/README.md for what is timed and how to read the results.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_batch
import corpus
from common import (
    CLK_TCK,
    REPO,
    background,
    cpu_stat,
    free_port,
    harness_cpu,
    machine_info,
    machine_lines,
    process_tree,
    quiet_run,
    wait_http,
    write_results,
)

# tests/servers/ holds the PostgreSQL and Redis helpers the scale-out tests use; import them from the repo root.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PACKAGES = ("fastapi", "uvicorn", "httpx", "celery", "kombu", "redis", "psycopg", "sqlalchemy")
SPEEDUP_TARGET = 1.8  # 2 workers' img/s at least this multiple of one worker's
LOCAL_TARGET = 0.85  # 2 workers' img/s at least this fraction of the local executor's (2 workers)
LOCAL_WORKERS = 2
MODEL_WORKERS = 100
MODEL_TABLE_WORKERS = (1, 2, 4, 8, 16, 32, 64, 100, 200)
# The API and the workers log in as different PostgreSQL users, so statements and backend CPU can be told apart.
PG_USERS = {"api": "retouch_api", "worker": "retouch_worker"}
TX_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")
# CPU groups measured from /proc; the derived ones (api_pool, worker_child, pg_other) are tree totals minus parts.
CPU_GROUPS = ("api", "api_pool", "worker_consumer", "worker_child", "pg_api", "pg_worker", "pg_other", "redis")


# ------------------------------------------------------------------------------------------ shared services


def _proc_times(pid: int) -> tuple[float, float]:
    """(own utime+stime, reaped children's cutime+cstime) in seconds. A process whose children exited (a
    PostgreSQL backend that disconnected, a replaced pool child) carries their CPU in the second figure."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    rest = text[text.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK, (int(rest[13]) + int(rest[14])) / CLK_TCK


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _tree_cpu(root: int) -> tuple[float, dict[int, float]]:
    """CPU seconds of a whole process tree so far, counting children that exited (monotonic), and each live
    process's own CPU."""
    own: dict[int, float] = {}
    total = 0.0
    for pid in process_tree(root):
        with suppress(OSError):  # exited while we looked: its CPU moves to its parent's reaped figure
            mine, reaped = _proc_times(pid)
            own[pid] = mine
            total += mine + reaped
    return total, own


class Services:
    """One PostgreSQL cluster and one redis-server for the whole benchmark (tests/servers/services.py's helpers:
    PostgreSQL runs as the `postgres` user, fsync off, as in the tests). pg_stat_statements is loaded and the API
    and the workers log in as different users, so statements and backend CPU can be attributed to either.
    Each run gets a fresh database and an emptied broker."""

    def __init__(self) -> None:
        import psycopg
        import redis
        from tests.servers.services import PostgresServer, RedisServer, _pg_bin

        # Separate temp folders: the PostgreSQL one is handed to the postgres user, which must be able to reach it.
        self.pg_folder = Path(tempfile.mkdtemp(prefix="retouch-bench-pg-"))
        self.redis_folder = Path(tempfile.mkdtemp(prefix="retouch-bench-redis-"))
        self.pg = PostgresServer(free_port(), self.pg_folder)
        self.redis = RedisServer(free_port(), self.redis_folder)
        self._pg_started = False
        try:
            self.pg.start()
            self._pg_started = True
            with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
                # pg_stat_statements.track_utility is on by default: BEGIN / COMMIT / ROLLBACK are counted too.
                conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            # restart keeps the helper's command-line options (postmaster.opts); -l again, or the server would keep
            # pg_ctl's stderr pipe open.
            data, log = str(self.pg_folder / "data"), str(self.pg_folder / "log")
            self.pg._run(_pg_bin("pg_ctl"), "-D", data, "-l", log, "-m", "fast", "-w", "restart")
            self.stats = psycopg.connect(self._dsn("postgres"), autocommit=True)
            self.stats.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            for user in PG_USERS.values():
                self.stats.execute(f"CREATE ROLE {user} SUPERUSER LOGIN")  # superuser: no grants to manage
            self.redis.start()
            self.broker = redis.Redis(port=self.redis.port)
            row = self.stats.execute("SHOW server_version").fetchone()
            self.versions = {
                "postgresql": str(row[0]) if row else "?",
                "redis": str(self.broker.info("server")["redis_version"]),
            }
        except BaseException:
            self.close()
            raise

    def _dsn(self, database: str, user: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.pg.port} user={user} dbname={database}"

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.pg.port}/{database}"

    @property
    def postmaster(self) -> int:
        return int((self.pg_folder / "data" / "postmaster.pid").read_text().split()[0])

    def close(self) -> None:
        with suppress(Exception):
            self.stats.close()
        with suppress(Exception):
            self.redis.stop()
        if self._pg_started:
            with suppress(Exception):
                self.pg.stop()
        shutil.rmtree(self.pg_folder, ignore_errors=True)
        shutil.rmtree(self.redis_folder, ignore_errors=True)

    # -------------------------------------------------------------- counters

    def statements(self, database: str) -> dict[tuple[str, int], dict[str, Any]]:
        """pg_stat_statements of one database, by (user, query id): updated as each statement ends, no lag."""
        rows = self.stats.execute(
            "SELECT r.rolname, s.queryid, s.query, s.calls, s.rows, s.total_exec_time, s.wal_bytes, "
            "s.shared_blks_hit + s.shared_blks_read "
            "FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = %s",
            (database,),
        ).fetchall()
        return {
            (user, int(qid)): {
                "query": " ".join(str(query).split()),
                "calls": int(calls),
                "rows": int(nrows),
                "ms": float(ms),
                "wal_bytes": int(wal),
                "blocks": int(blocks),
            }
            for user, qid, query, calls, nrows, ms, wal, blocks in rows
        }

    def database_stats(self, database: str) -> dict[str, int]:
        """pg_stat_database counters. Backends report them at most once a second and an idle backend up to 10 s
        late; a backend that exits reports at once."""
        names = (
            "xact_commit",
            "xact_rollback",
            "tup_returned",
            "tup_fetched",
            "tup_inserted",
            "tup_updated",
            "tup_deleted",
            "blks_hit",
            "blks_read",
        )
        row = self.stats.execute(
            f"SELECT {', '.join(names)} FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
        assert row is not None
        return {name: int(value) for name, value in zip(names, row, strict=True)}

    def connections(self, database: str) -> dict[str, int]:
        rows = self.stats.execute(
            "SELECT usename, count(*) FROM pg_stat_activity WHERE datname = %s GROUP BY usename", (database,)
        ).fetchall()
        return {_role(str(user)): int(count) for user, count in rows}

    def redis_commands(self) -> dict[str, tuple[int, int]]:
        """INFO commandstats: command -> (calls, microseconds inside Redis)."""
        stats = self.broker.info("commandstats")
        return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for name, v in stats.items()}


def _role(user: str) -> str:
    return {v: k for k, v in PG_USERS.items()}.get(user, user)


# ------------------------------------------------------------------------------------------ snapshots


@dataclass
class Snapshot:
    """Every counter at one moment: CPU per group, statements, Redis commands."""

    t: float
    totals: dict[str, float]  # api, api_tree, worker_consumer, workers_tree, pg_tree, redis: CPU s so far
    backends: dict[str, dict[int, float]]  # pg_api / pg_worker: backend pid -> own CPU s
    statements: dict[tuple[str, int], dict[str, Any]]
    redis: dict[str, tuple[int, int]]


@dataclass
class Topology:
    base: str
    key: str
    database: str
    storage: Path  # the `bench` storage's folder
    root: Path
    api: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]

    def logs(self) -> str:
        parts = []
        for log in sorted(self.root.glob("*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)

    def items_per_worker(self) -> list[int]:
        """Items each worker finished so far, from Celery's 'succeeded' log lines."""
        return [
            (self.root / f"worker-{index}.log").read_text(errors="replace").count("] succeeded in ")
            for index in range(len(self.workers))
        ]


def snapshot(services: Services, topo: Topology) -> Snapshot:
    api_tree, api_own = _tree_cpu(topo.api.pid)
    workers_tree, consumer = 0.0, 0.0
    for proc in topo.workers:
        total, own = _tree_cpu(proc.pid)
        workers_tree += total
        consumer += own.get(proc.pid, 0.0)
    pg_tree, pg_own = _tree_cpu(services.postmaster)
    backends: dict[str, dict[int, float]] = {"pg_api": {}, "pg_worker": {}}
    for pid, cpu in pg_own.items():
        words = _title(pid).split()  # "postgres: retouch_api <database> 127.0.0.1(port) idle"
        if len(words) >= 3 and words[0] == "postgres:" and words[2] == topo.database:
            role = _role(words[1])
            if f"pg_{role}" in backends:
                backends[f"pg_{role}"][pid] = cpu
    # Redis's own getrusage figure (INFO cpu, microseconds): finer than /proc's 10 ms ticks for a light process.
    usage = services.broker.info("cpu")
    redis_cpu = float(usage["used_cpu_user"]) + float(usage["used_cpu_sys"])
    return Snapshot(
        t=time.perf_counter(),
        totals={
            "api": api_own.get(topo.api.pid, 0.0),
            "api_tree": api_tree,
            "worker_consumer": consumer,
            "workers_tree": workers_tree,
            "pg_tree": pg_tree,
            "redis": redis_cpu,
        },
        backends=backends,
        statements=services.statements(topo.database),
        redis=services.redis_commands(),
    )


def cpu_delta(s0: Snapshot, s1: Snapshot) -> dict[str, float]:
    """CPU seconds per group between two snapshots."""
    d = {name: s1.totals[name] - s0.totals[name] for name in s0.totals}
    backends = {
        group: sum(cpu - s0.backends[group].get(pid, 0.0) for pid, cpu in pids.items())
        for group, pids in s1.backends.items()
    }
    return {
        "api": d["api"],
        "api_pool": d["api_tree"] - d["api"],
        "worker_consumer": d["worker_consumer"],
        "worker_child": d["workers_tree"] - d["worker_consumer"],
        "pg_api": backends["pg_api"],
        "pg_worker": backends["pg_worker"],
        "pg_other": d["pg_tree"] - backends["pg_api"] - backends["pg_worker"],
        "redis": d["redis"],
    }


def statement_delta(s0: Snapshot, s1: Snapshot) -> list[dict[str, Any]]:
    out = []
    for key, now in s1.statements.items():
        before = s0.statements.get(key, {"calls": 0, "rows": 0, "ms": 0.0, "wal_bytes": 0, "blocks": 0})
        calls = now["calls"] - before["calls"]
        if calls > 0:
            out.append(
                {
                    "role": _role(key[0]),
                    "query": now["query"],
                    **{name: now[name] - before[name] for name in ("calls", "rows", "ms", "wal_bytes", "blocks")},
                }
            )
    return out


def redis_delta(s0: Snapshot, s1: Snapshot) -> dict[str, tuple[int, int]]:
    """Commands the services sent between two snapshots; the benchmark's own INFO calls are left out."""
    out = {}
    for name, (calls, usec) in s1.redis.items():
        c0, u0 = s0.redis.get(name, (0, 0))
        if name != "info" and calls > c0:
            out[name] = (calls - c0, usec - u0)
    return out


def load_summary(s0: Snapshot, s1: Snapshot) -> dict[str, Any]:
    """The load between two snapshots, in totals: CPU s per group, transactions, statements, rows, WAL, Redis."""
    statements = statement_delta(s0, s1)
    by_role: dict[str, dict[str, float]] = {}
    for st in statements:
        role = by_role.setdefault(
            st["role"], {"transactions": 0, "statements": 0, "rows": 0, "exec_ms": 0.0, "wal_bytes": 0}
        )
        keyword = st["query"].upper()
        if keyword in ("COMMIT", "ROLLBACK"):
            role["transactions"] += st["calls"]
        elif keyword not in TX_CONTROL:
            role["statements"] += st["calls"]
            role["rows"] += st["rows"]
        role["exec_ms"] += st["ms"]
        role["wal_bytes"] += st["wal_bytes"]
    commands = redis_delta(s0, s1)
    return {
        "seconds": s1.t - s0.t,
        "cpu_s": cpu_delta(s0, s1),
        "pg_by_role": by_role,
        "pg_statements": statements,
        "redis_commands": {name: calls for name, (calls, _usec) in commands.items()},
        "redis_usec": sum(usec for _calls, usec in commands.values()),
    }


def _sum_roles(load: dict[str, Any], name: str) -> float:
    return float(sum(role[name] for role in load["pg_by_role"].values()))


# ------------------------------------------------------------------------------------------ topology


@contextmanager
def celery_topology(services: Services, root: Path, workers: int) -> Iterator[Topology]:
    """PostgreSQL database + emptied Redis + one API replica + `workers` single-process workers, as
    tests/servers/topology.py starts them (one replica instead of two; production timeouts)."""
    import httpx
    from cryptography.fernet import Fernet

    database = f"bench_{workers}w_{time.monotonic_ns()}"
    services.stats.execute(f'CREATE DATABASE "{database}"')
    services.broker.flushall()
    shared = root / "shared"  # RETOUCH_LOCAL_STORAGE_ROOTS: the folder every process sees (a stand-in for a bucket)
    storage = shared / "bench"
    storage.mkdir(parents=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "RETOUCH_EXECUTOR": "celery",
        "RETOUCH_BROKER_URL": services.redis.url,
        "RETOUCH_SECRET_KEY": Fernet.generate_key().decode(),
        "RETOUCH_LOCAL_STORAGE_ROOTS": str(shared),
        "RETOUCH_PUBLIC_URL": base,  # workers build result URLs too
        "RETOUCH_RATE_LIMIT_PER_MINUTE": "0",
        "RETOUCH_RATE_LIMIT_PER_SECOND": "0",
        "RETOUCH_CELERY_MAX_INFLIGHT": str(3 * workers),
    }

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "retouch", *args],
            env={**env, "RETOUCH_HOME": str(root / "cli"), "RETOUCH_DATABASE_URL": services.url(database)},
            cwd=root,  # the settings read a .env from the working directory; the repo's must not leak in
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"retouch {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def spawn(name: str, user: str, *args: str) -> subprocess.Popen[bytes]:
        home = root / name
        home.mkdir()
        with (root / f"{name}.log").open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "retouch", *args],
                env={**env, "RETOUCH_HOME": str(home), "RETOUCH_DATABASE_URL": services.url(database, user)},
                cwd=home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # SIGTERM reaches Celery's pool child too
            )

    procs: list[subprocess.Popen[bytes]] = []
    try:
        cli("db", "upgrade")
        key = cli("keys", "create", "--account", "default").strip().splitlines()[-1]
        api = spawn("api", PG_USERS["api"], "serve", "--port", str(port), "--workers", "1")
        procs.append(api)
        pool = [spawn(f"worker-{i}", PG_USERS["worker"], "worker", "--concurrency", "1") for i in range(workers)]
        procs += pool
        topo = Topology(base, key, database, storage, root, api, pool)
        try:
            wait_http(f"{base}/healthz", api)
            response = httpx.post(
                f"{base}/v1/storage/storages",
                headers={"Authorization": f"Bearer {key}"},
                json={"name": "bench", "type": "local", "parameters": {"path": str(storage)}},
                timeout=30,
            )
            if response.status_code != 200:
                raise RuntimeError(f"creating the storage: {response.status_code} {response.text}")
            yield topo
        except BaseException:
            print(topo.logs(), file=sys.stderr)
            raise
    finally:
        for proc in procs:
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _body(folder: str, destination: str) -> dict[str, Any]:
    return {
        "input": f"storage://bench/{folder}",
        "operations": bench_batch.OPERATIONS,
        "output": {"destination": f"storage://bench/{destination}", "format": bench_batch.OUTPUT_FORMAT},
    }


# ------------------------------------------------------------------------------------------ one run


@dataclass
class CeleryRun:
    kind: str
    workers: int
    items: int
    wall_s: float
    background_cores: float
    steal_pct: float
    run: dict[str, Any]  # load_summary over the batch
    idle: dict[str, Any]  # load_summary over the polled idle window
    database: dict[str, int]  # pg_stat_database deltas
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def img_per_s(self) -> float:
        return self.items / self.wall_s


def run_celery(
    services: Services,
    workers: int,
    n: int,
    sources: list[Path],
    warmup: list[Path],
    root: Path,
    poll: float,
    settle: float,
    idle: float,
) -> CeleryRun:
    import httpx

    started = time.monotonic()
    root.mkdir(parents=True)
    with celery_topology(services, root, workers) as topo:
        links = bench_batch.populate(topo.storage / "in", sources, n)
        # 3 items per worker: with a prefetch of one, every worker gets at least one, which builds its Service
        # (database, storages) and loads the pipeline, as in a worker that has been up for a while.
        bench_batch.populate(topo.storage / "warm", warmup, 3 * workers)
        setup_s = time.monotonic() - started
        with httpx.Client(base_url=topo.base, headers={"Authorization": f"Bearer {topo.key}"}, timeout=120) as client:
            response = client.post("/v1/image/edit/batch", json=_body("warm/", "warm-out/"))
            response.raise_for_status()
            warm_id = response.json()["data"]["id"]
            warm = bench_batch._wait_done(client, warm_id, 0.05)
            if warm["status"] != "DONE":
                raise RuntimeError(f"warm-up batch ended {warm['status']}: {warm['errors']}\n{topo.logs()}")
            warm_items = topo.items_per_worker()
            if min(warm_items) == 0:
                print(f"  note: a worker got no warm-up item ({warm_items})", flush=True)
            # Settle: idle backends report pg_stat_database counters up to 10 s late, so the warm-up's must be
            # in before the batch's window opens. The last `idle` seconds are the idle window: the API polled as
            # during the batch, nothing to do: the per-second cost that does not depend on items.
            time.sleep(max(0.0, settle - idle))
            i0 = snapshot(services, topo)
            deadline = i0.t + idle
            while time.perf_counter() < deadline:
                client.get(f"/v1/image/edit/batch/{warm_id}", params={"limit": 1}).raise_for_status()
                time.sleep(poll)
            s0 = snapshot(services, topo)
            idle_load = load_summary(i0, s0)
            db0 = services.database_stats(topo.database)

            samples: list[tuple[float, int, int]] = []
            stat0, self0 = cpu_stat(), os.times()
            t0 = time.perf_counter()
            response = client.post("/v1/image/edit/batch", json=_body("in/", "out/"))
            post_s = time.perf_counter() - t0
            response.raise_for_status()
            task_id = response.json()["data"]["id"]

            def sample(view: dict[str, Any]) -> None:
                progress = view["progress"]
                samples.append((time.perf_counter() - t0, progress["total"], progress["done"]))

            view = bench_batch._wait_done(client, task_id, poll, sample)
            wall = time.perf_counter() - t0
            stat1, self1 = cpu_stat(), os.times()
            s1 = snapshot(services, topo)
            connections = services.connections(topo.database)
            redis_clients = int(services.broker.info("clients")["connected_clients"]) - 1  # minus ours
            run_load = load_summary(s0, s1)
        progress = view["progress"]
        if view["status"] != "DONE" or progress["done"] != n or progress["failed"]:
            raise RuntimeError(f"batch of {n}: {view['status']} {progress} {view['errors'][:3]}\n{topo.logs()}")
        count, widths = bench_batch.output_widths(topo.storage / "out")
        if count != n or widths != {bench_batch.WIDTH}:
            raise RuntimeError(f"batch of {n}: {count} output files, widths {sorted(widths)}")
        per_worker = [b - a for a, b in zip(warm_items, topo.items_per_worker(), strict=True)]
    # The topology is stopped: every backend has exited, and a backend reports its counters when it exits.
    for _ in range(50):
        if not services.connections(topo.database):
            break
        time.sleep(0.1)
    db1 = services.database_stats(topo.database)
    services.stats.execute(f'DROP DATABASE IF EXISTS "{topo.database}"')
    harness = harness_cpu(self0, self1)
    ours = sum(run_load["cpu_s"].values()) + harness
    bg, steal = background(stat0, stat1, ours)
    listed_at = next((t for t, total, _ in samples if total == n), None)
    return CeleryRun(
        kind=f"celery-{workers}",
        workers=workers,
        items=progress["done"],
        wall_s=wall,
        background_cores=bg,
        steal_pct=steal,
        run=run_load,
        idle=idle_load,
        database={name: db1[name] - db0[name] for name in db0},
        extra={
            "post_ms": round(1000 * post_s, 1),
            "listed_after_s": round(listed_at, 2) if listed_at is not None else None,
            "polls": len(samples),
            "harness_cpu_ms_per_img": round(1000 * harness / n, 1),
            "items_per_worker": per_worker,
            "warmup_items_per_worker": warm_items,
            "pg_connections": connections,
            "redis_clients": redis_clients,
            "input_files": links,
            "setup_s": round(setup_s, 1),
            "total_s": round(time.monotonic() - started, 1),
        },
    )


# ------------------------------------------------------------------------------------------ figures


def per_item(run: CeleryRun) -> dict[str, Any]:
    """Gross (everything during the batch / items) and net (minus the idle window's rate x wall) per item."""
    n, wall, rl, il = run.items, run.wall_s, run.run, run.idle

    def both(gross_total: float, idle_total: float, scale: float = 1.0) -> dict[str, float]:
        rate = idle_total / il["seconds"]
        return {
            "gross": round(scale * gross_total / n, 3),
            "net": round(scale * max(0.0, gross_total - rate * wall) / n, 3),
        }

    cpu = {g: both(rl["cpu_s"][g], il["cpu_s"][g], 1000) for g in CPU_GROUPS}
    cpu["pg_total"] = both(
        sum(rl["cpu_s"][g] for g in ("pg_api", "pg_worker", "pg_other")),
        sum(il["cpu_s"][g] for g in ("pg_api", "pg_worker", "pg_other")),
        1000,
    )
    pg: dict[str, Any] = {}
    for name in ("transactions", "statements", "rows", "wal_bytes"):
        pg[name] = both(_sum_roles(rl, name), _sum_roles(il, name))
        for role in rl["pg_by_role"]:
            pg[f"{name}_{role}"] = both(rl["pg_by_role"][role][name], il["pg_by_role"].get(role, {}).get(name, 0.0))
    # pg_stat_database also counts the empty query (";") SQLAlchemy's pool_pre_ping sends, in autocommit, at every
    # connection checkout: a round trip and a transaction that pg_stat_statements does not see. Its window runs
    # until the backends exited, so it has no idle-window correction (gross = net).
    xacts = (run.database["xact_commit"] + run.database["xact_rollback"]) / n
    pg["xacts_with_pings"] = {"gross": round(xacts, 3), "net": round(xacts, 3)}
    redis_calls = sum(rl["redis_commands"].values())
    return {
        "cpu_ms": cpu,
        "pg": pg,
        "pg_stat_database": {name: round(value / n, 2) for name, value in run.database.items()},
        "redis_commands": both(redis_calls, sum(il["redis_commands"].values())),
        "redis_commands_by_name": {
            name: round(calls / n, 2) for name, calls in sorted(rl["redis_commands"].items(), key=lambda kv: -kv[1])
        },
        "redis_usec": both(rl["redis_usec"], il["redis_usec"]),
    }


def idle_rates(run: CeleryRun) -> dict[str, Any]:
    il = run.idle
    s = il["seconds"]
    return {
        "seconds": round(s, 2),
        "cpu_ms_per_s": {g: round(1000 * il["cpu_s"][g] / s, 1) for g in CPU_GROUPS},
        "pg_transactions_per_s": round(_sum_roles(il, "transactions") / s, 1),
        "pg_statements_per_s": round(_sum_roles(il, "statements") / s, 1),
        "pg_statements_per_s_by_role": {r: round(v["statements"] / s, 1) for r, v in il["pg_by_role"].items()},
        "redis_commands_per_s": round(sum(il["redis_commands"].values()) / s, 1),
        "redis_commands_per_s_by_name": {name: round(c / s, 1) for name, c in sorted(il["redis_commands"].items())},
    }


def top_statements(run: CeleryRun, limit: int = 15) -> list[dict[str, Any]]:
    counted = [st for st in run.run["pg_statements"] if st["query"].upper() not in TX_CONTROL]
    ordered = sorted(counted, key=lambda st: (-st["calls"], st["query"]))[:limit]
    return [
        {
            "role": st["role"],
            "calls_per_item": round(st["calls"] / run.items, 2),
            "rows_per_item": round(st["rows"] / run.items, 2),
            "exec_ms_per_item": round(st["ms"] / run.items, 3),
            "query": st["query"][:160],
        }
        for st in ordered
    ]


def celery_row(run: CeleryRun, attempt: int, passes: list[float]) -> dict[str, Any]:
    return {
        "kind": run.kind,
        "workers": run.workers,
        "items": run.items,
        "img_per_s": round(run.img_per_s, 2),
        "img_per_s_per_worker": round(run.img_per_s / run.workers, 2),
        "wall_s": round(run.wall_s, 2),
        "all_passes_img_per_s": [round(x, 2) for x in passes],
        "background_cores": round(run.background_cores, 2),
        "steal_pct": round(run.steal_pct, 2),
        "attempt": attempt,
        "per_item": per_item(run),
        "idle": idle_rates(run),
        "top_statements": top_statements(run),
        **run.extra,
    }


def build_model(one: dict[str, Any], two: dict[str, Any]) -> dict[str, Any]:
    """items/s at W workers ~ min(W x r, DB cap, broker cap, API cap). r is the 1-worker run's img/s; the costs
    per item are the 2-worker run's net figures (the higher rate: the dispatcher's per-cycle queries are shared
    by more items there, and shared by still more at 100 workers, so they err high); capacities are per core of
    the service (1000 / CPU ms per item)."""

    def cost(get: Any) -> float:
        return float(get(two["per_item"]))

    rate = float(one["img_per_s"])  # one single-threaded worker, its own core (the other runs the services)
    pg_ms = cost(lambda p: p["cpu_ms"]["pg_total"]["net"])
    redis_ms = cost(lambda p: p["cpu_ms"]["redis"]["net"])
    api_ms = cost(lambda p: p["cpu_ms"]["api"]["net"])
    tx = cost(lambda p: p["pg"]["transactions"]["net"])
    xacts = cost(lambda p: p["pg"]["xacts_with_pings"]["net"])
    statements = cost(lambda p: p["pg"]["statements"]["net"])
    wal = cost(lambda p: p["pg"]["wal_bytes"]["net"])
    commands = cost(lambda p: p["redis_commands"]["net"])
    consumer_ms = cost(lambda p: p["cpu_ms"]["worker_consumer"]["gross"])
    # What an idle worker costs the broker per second (its polling), from the idle windows of both runs.
    idle_cmds = [r["idle"]["redis_commands_per_s"] for r in (one, two)]
    per_worker_idle_cmds = max(0.0, idle_cmds[1] - idle_cmds[0])  # the second run has one worker more
    conns_per_worker = max(1, two["pg_connections"].get("worker", 2) // max(1, two["workers"]))
    api_conns = max(one["pg_connections"].get("api", 1), two["pg_connections"].get("api", 1))

    def cap(ms: float) -> float:
        return 1000 / ms if ms > 0 else float("inf")

    caps = {"db_per_core": cap(pg_ms), "broker": cap(redis_ms), "api_replica": cap(api_ms)}
    table = []
    for w in MODEL_TABLE_WORKERS:
        limits = {
            "workers": w * rate,
            "db (1 core)": caps["db_per_core"],
            "broker": caps["broker"],
            "api (1 replica)": caps["api_replica"],
        }
        bound = min(limits, key=lambda k: limits[k])
        demand = w * rate
        table.append(
            {
                "workers": w,
                "demand_img_per_s": round(demand, 1),
                "predicted_img_per_s": round(limits[bound], 1),
                "bound_by": bound,
                "pg_cores": round(demand * pg_ms / 1000, 2),
                "redis_core": round(demand * redis_ms / 1000, 3),
                "api_cores": round(demand * api_ms / 1000, 2),
                "pg_tx_per_s": round(demand * tx),
                "redis_cmds_per_s": round(demand * commands + w * per_worker_idle_cmds),
            }
        )
    w = MODEL_WORKERS
    demand = w * rate
    return {
        "per_worker_img_per_s": round(rate, 2),
        "cost_per_item": {
            "pg_cpu_ms": pg_ms,
            "redis_cpu_ms": redis_ms,
            "api_cpu_ms": api_ms,
            "worker_consumer_cpu_ms": consumer_ms,
            "pg_transactions": tx,
            "pg_transactions_with_pings": xacts,
            "pg_statements": statements,
            "pg_wal_bytes": wal,
            "redis_commands": commands,
        },
        "idle_redis_commands_per_s_per_worker": round(per_worker_idle_cmds, 1),
        "pg_connections_per_worker": conns_per_worker,
        "pg_connections_per_api_replica": api_conns,
        "capacity_img_per_s": {k: round(v, 1) for k, v in caps.items()},
        "saturating_workers": {k: round(v / rate, 1) for k, v in caps.items()},
        "table": table,
        "at_100": {
            "workers": w,
            "img_per_s": round(demand, 1),
            "pg_cores": round(demand * pg_ms / 1000, 2),
            "pg_tx_per_s": round(demand * tx),
            "pg_tx_with_pings_per_s": round(demand * xacts),
            "pg_statements_per_s": round(demand * statements),
            "pg_wal_mb_per_s": round(demand * wal / 1e6, 2),
            "pg_connections": w * conns_per_worker + api_conns,
            "redis_core": round(demand * redis_ms / 1000, 3),
            "redis_cmds_per_s": round(demand * commands + w * per_worker_idle_cmds),
            "api_cores": round(demand * api_ms / 1000, 2),
            "api_replicas_at_half_core": max(1, math.ceil(demand * api_ms / 1000 / 0.5)),
            "max_inflight": 3 * w,
        },
    }


# ------------------------------------------------------------------------------------------ report


def service_cpu(row: dict[str, Any]) -> float:
    cpu = row["per_item"]["cpu_ms"]
    return float(sum(cpu[g]["gross"] for g in CPU_GROUPS))


def _fmt(x: float, digits: int = 1) -> str:
    return "∞" if x == float("inf") else f"{x:,.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    info, local, one, two, model = (
        report["machine"],
        report["local"],
        report["celery_1"],
        report["celery_2"],
        report["model"],
    )
    lines = [
        f"# Celery topology benchmark: {two['items']} x 12 MP JPEG -> width 1000 -> JPEG q85, 1 and 2 workers",
        "",
        f"Run {info['date']} with `{report['command']}`.",
        "",
        *([f"**{report['note']}**", ""] if report["note"] else []),
        *machine_lines(info, PACKAGES),
        f"- Services: PostgreSQL {report['services']['postgresql']} (throwaway cluster of tests/servers/services.py: "
        f"fsync off, pg_stat_statements loaded), Redis {report['services']['redis']} (no persistence), one "
        "`retouch serve --workers 1` (RETOUCH_EXECUTOR=celery), W x `retouch worker --concurrency 1`, "
        "RETOUCH_CELERY_MAX_INFLIGHT = 3 x W, all on this machine's cores.",
        f"- Inputs: {report['corpus']['count']} distinct {report['corpus']['size']} {report['corpus']['format']} "
        f"images repeated under {two['items']} names ({two['input_files']}) in a `local` storage created through "
        "the API; outputs to `storage://bench/out/`.",
        "",
        "## Throughput",
        "",
        "| run | items | img/s | img/s per worker | wall s | service CPU ms/img | ratio | target | result "
        "| background cores |",
        "|---|---:|---:|---:|---:|---:|---|---|---|---:|",
        f"| local executor (`retouch serve --workers {LOCAL_WORKERS}`, SQLite) | {local['items']} "
        f"| {local['img_per_s']:.1f} | {local['img_per_s'] / LOCAL_WORKERS:.1f} | {local['wall_s']:.1f} "
        f"| {sum(local['cpu_ms_per_img'].values()):.0f} | - | - | - | {local['background_cores']:.2f} |",
        f"| Celery, 1 worker | {one['items']} | {one['img_per_s']:.1f} | {one['img_per_s_per_worker']:.1f} "
        f"| {one['wall_s']:.1f} | {service_cpu(one):.0f} | - | - | - | {one['background_cores']:.2f} |",
        f"| Celery, 2 workers | {two['items']} | {two['img_per_s']:.1f} | {two['img_per_s_per_worker']:.1f} "
        f"| {two['wall_s']:.1f} | {service_cpu(two):.0f} | {report['speedup']:.2f}x 1 worker; "
        f"{report['vs_local']:.2f}x local | ≥ {SPEEDUP_TARGET}x; ≥ {LOCAL_TARGET}x "
        f"| {report['speedup_result']}; {report['vs_local_result']} | {two['background_cores']:.2f} |",
        "",
        "Service CPU ms/img: every process of the service, gross (local: API process + pool workers; Celery: API "
        "process and its idle sync pool, workers' consumers and pool children, PostgreSQL, Redis). On a machine "
        "whose cores the service fills, img/s is at most cores × 1000 / this figure.",
        "",
        "All passes, img/s: local "
        + ", ".join(f"{x:.1f}" for x in local["all_passes_img_per_s"])
        + "; 1 worker "
        + ", ".join(f"{x:.1f}" for x in one["all_passes_img_per_s"])
        + "; 2 workers "
        + ", ".join(f"{x:.1f}" for x in two["all_passes_img_per_s"])
        + f". Items per worker in the 2-worker run: {' + '.join(map(str, two['items_per_worker']))}.",
        "",
        "## Load per item",
        "",
        "Gross = everything measured from the POST to DONE / items; net = gross minus the idle window's per-second "
        "rate x the batch's wall time (the marginal cost of an item). CPU from /proc (10 ms ticks), Redis's from its "
        "INFO cpu.",
        "",
        "| per item | 1 worker gross | 1 worker net | 2 workers gross | 2 workers net |",
        "|---|---:|---:|---:|---:|",
    ]

    def pair(r: dict[str, Any], get: Any, digits: int = 1) -> str:
        v = get(r["per_item"])
        return f"{_fmt(v['gross'], digits)} | {_fmt(v['net'], digits)}"

    rows: list[tuple[str, Any, int]] = [
        ("CPU ms: API process (dispatcher, HTTP, polls)", lambda p: p["cpu_ms"]["api"], 1),
        ("CPU ms: worker pool child (the item)", lambda p: p["cpu_ms"]["worker_child"], 1),
        ("CPU ms: worker main (Celery consumer)", lambda p: p["cpu_ms"]["worker_consumer"], 1),
        ("CPU ms: PostgreSQL, all processes", lambda p: p["cpu_ms"]["pg_total"], 2),
        ("CPU ms: PostgreSQL, API's backends", lambda p: p["cpu_ms"]["pg_api"], 2),
        ("CPU ms: PostgreSQL, workers' backends", lambda p: p["cpu_ms"]["pg_worker"], 2),
        ("CPU ms: PostgreSQL, other (postmaster, WAL writer, ...)", lambda p: p["cpu_ms"]["pg_other"], 2),
        ("CPU ms: redis-server", lambda p: p["cpu_ms"]["redis"], 2),
        ("PG transactions (COMMIT + ROLLBACK)", lambda p: p["pg"]["transactions"], 1),
        ("PG transactions, API", lambda p: p["pg"].get("transactions_api", {"gross": 0, "net": 0}), 1),
        ("PG transactions, workers", lambda p: p["pg"].get("transactions_worker", {"gross": 0, "net": 0}), 1),
        ("PG transactions as PostgreSQL counts them (+ pre-pings)", lambda p: p["pg"]["xacts_with_pings"], 1),
        ("PG statements (without BEGIN/COMMIT/ROLLBACK)", lambda p: p["pg"]["statements"], 1),
        ("PG statements, API", lambda p: p["pg"].get("statements_api", {"gross": 0, "net": 0}), 1),
        ("PG statements, workers", lambda p: p["pg"].get("statements_worker", {"gross": 0, "net": 0}), 1),
        ("PG rows returned or changed", lambda p: p["pg"]["rows"], 1),
        ("PG WAL bytes", lambda p: p["pg"]["wal_bytes"], 0),
        ("Redis commands", lambda p: p["redis_commands"], 1),
        ("Redis µs inside commands", lambda p: p["redis_usec"], 1),
    ]
    for label, get, digits in rows:
        lines.append(f"| {label} | {pair(one, get, digits)} | {pair(two, get, digits)} |")
    db1, db2 = one["per_item"]["pg_stat_database"], two["per_item"]["pg_stat_database"]
    lines += [
        "",
        "pg_stat_database per item (1 / 2 workers; from before the POST until every backend had exited, so a "
        "little idle time after DONE is in): "
        + ", ".join(f"{name} {db1[name]:g} / {db2[name]:g}" for name in db1)
        + ".",
        "",
        "Redis commands per item (2 workers): "
        + ", ".join(f"{name} {c:g}" for name, c in two["per_item"]["redis_commands_by_name"].items())
        + ".",
        "",
        f"Connections at DONE (2 workers): PostgreSQL {two['pg_connections']}, Redis clients {two['redis_clients']}.",
        "",
        "Idle window (API polled every "
        f"{report['poll_s']:g} s, nothing to run), per second, 1 / 2 workers: "
        f"PG transactions {one['idle']['pg_transactions_per_s']:g} / {two['idle']['pg_transactions_per_s']:g}, "
        f"PG statements {one['idle']['pg_statements_per_s']:g} / {two['idle']['pg_statements_per_s']:g}, "
        f"Redis commands {one['idle']['redis_commands_per_s']:g} / {two['idle']['redis_commands_per_s']:g} "
        f"({', '.join(f'{k} {v:g}' for k, v in two['idle']['redis_commands_per_s_by_name'].items())} with 2), "
        f"CPU ms/s API {one['idle']['cpu_ms_per_s']['api']:g} / {two['idle']['cpu_ms_per_s']['api']:g}, "
        f"PostgreSQL {sum(one['idle']['cpu_ms_per_s'][g] for g in ('pg_api', 'pg_worker', 'pg_other')):.0f} / "
        f"{sum(two['idle']['cpu_ms_per_s'][g] for g in ('pg_api', 'pg_worker', 'pg_other')):.0f}.",
        "",
        "Statements by calls per item (2 workers; BEGIN / COMMIT / ROLLBACK are in the transaction count above):",
        "",
        "| role | calls/item | rows/item | exec ms/item | statement |",
        "|---|---:|---:|---:|---|",
    ]
    for st in two["top_statements"]:
        query = st["query"].replace("|", "\\|")
        lines.append(
            f"| {st['role']} | {st['calls_per_item']:g} | {st['rows_per_item']:g} | {st['exec_ms_per_item']:.3f} "
            f"| `{query}` |"
        )
    c, at = model["cost_per_item"], model["at_100"]
    caps, sat = model["capacity_img_per_s"], model["saturating_workers"]
    lines += [
        "",
        "## Throughput model",
        "",
        "    items/s(W) ≈ min(W × r, C_db, C_broker, C_api)",
        "",
        f"- r = {model['per_worker_img_per_s']:.1f} img/s: one single-threaded worker (the 1-worker run; on this "
        "machine it shares the cores with the services, on a worker host of its own it would be the per-core figure "
        "of bench_batch's baseline).",
        f"- Cost per item (net, 2-worker run): PostgreSQL {c['pg_cpu_ms']:.2f} CPU ms, "
        f"{c['pg_transactions']:.1f} transactions ({c['pg_transactions_with_pings']:.1f} as PostgreSQL counts them, "
        f"with the pre-pings), {c['pg_statements']:.1f} statements, "
        f"{c['pg_wal_bytes'] / 1000:.1f} kB WAL; Redis {c['redis_cpu_ms']:.2f} CPU ms, {c['redis_commands']:.1f} "
        f"commands; API process {c['api_cpu_ms']:.2f} CPU ms. Each worker's Celery consumer adds "
        f"{c['worker_consumer_cpu_ms']:.1f} CPU ms per item on the worker's own host.",
        f"- Capacities per core, 1000 / CPU ms per item: PostgreSQL C_db ≈ {_fmt(caps['db_per_core'], 0)} img/s per "
        f"core (saturated by ≈ {_fmt(sat['db_per_core'], 0)} workers per DB core); Redis C_broker ≈ "
        f"{_fmt(caps['broker'], 0)} img/s (single-threaded: one core is its ceiling; ≈ {_fmt(sat['broker'], 0)} "
        f"workers); one API replica's dispatcher C_api ≈ {_fmt(caps['api_replica'], 0)} img/s (one process, one "
        f"GIL; ≈ {_fmt(sat['api_replica'], 0)} workers).",
        f"- An idle worker polls the broker: ≈ {model['idle_redis_commands_per_s_per_worker']:g} Redis commands/s "
        f"each. Connections: {model['pg_connections_per_worker']} PostgreSQL connection(s) per worker process, "
        f"{model['pg_connections_per_api_replica']} per API replica (measured at DONE).",
        "",
        f"**{at['workers']} workers** at r would run {at['img_per_s']:,.0f} img/s and need: PostgreSQL "
        f"{at['pg_cores']:.1f} cores, {at['pg_tx_per_s']:,} transactions/s ({at['pg_tx_with_pings_per_s']:,} with the "
        f"pre-pings), {at['pg_statements_per_s']:,} "
        f"statements/s, {at['pg_wal_mb_per_s']:.2f} MB/s of WAL, ≈ {at['pg_connections']} connections (over "
        f"PostgreSQL's default max_connections of 100: raise it or pool with PgBouncer); Redis "
        f"{100 * at['redis_core']:.0f} % of its one core, {at['redis_cmds_per_s']:,} commands/s; the API "
        f"dispatcher {at['api_cores']:.2f} cores (≈ {at['api_replicas_at_half_core']} replica(s) at ≤ 50 % of a "
        f"core each); RETOUCH_CELERY_MAX_INFLIGHT = {at['max_inflight']}.",
        "",
        "| workers W | demand W × r img/s | predicted img/s | bound by | PG cores | Redis core | API cores "
        "| PG tx/s | Redis cmds/s |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for t in model["table"]:
        lines.append(
            f"| {t['workers']} | {t['demand_img_per_s']:,.0f} | {t['predicted_img_per_s']:,.0f} | {t['bound_by']} "
            f"| {t['pg_cores']:.2f} | {t['redis_core']:.3f} | {t['api_cores']:.2f} | {t['pg_tx_per_s']:,} "
            f"| {t['redis_cmds_per_s']:,} |"
        )
    lines += [
        "",
        "Predicted = the smallest of W × r and the one-core capacities (one PostgreSQL core, one Redis, one API "
        "replica); the core columns are what the demand W × r needs, so a column above 1 says how many cores (or "
        "replicas) that service must have.",
        "",
        "How to read it:",
        "",
        "- img/s = items / (POST → the poll that saw DONE, every "
        f"{report['poll_s']:g} s). All processes, the services and this harness share the machine's "
        f"{info['nproc']} cores, so the 2-worker run competes with PostgreSQL, Redis and the API for CPU; CPU per "
        "item is less disturbed by that than img/s.",
        "- PostgreSQL CPU is the postmaster's whole process tree (backends by login user; exited children through "
        "the postmaster's reaped-children time). Statements and transactions come from pg_stat_statements "
        "(updated as each statement ends); BEGIN is not counted as a statement. pg_stat_database counts about twice "
        "as many transactions: SQLAlchemy's pool_pre_ping sends an empty query in autocommit at every connection "
        "checkout (one per session), a round trip and a transaction pg_stat_statements does not see. The cluster "
        "runs with fsync off, as in the tests: a durable one pays a WAL flush per commit (group commit shares it "
        "between concurrent commits), which costs latency and disk, not CPU.",
        "- The dispatcher's queries run whether or not items flow (every 0.5 s idle, 0.1 s with the window full, "
        "0.05 s while sending), and the harness's progress polls cost the API and the database too: that is the "
        "gap between gross and net. Net costs are what scales with items, so the model uses them.",
        "- Capacities are CPU only (1000 / ms per item on one core of this machine), so they are upper bounds. "
        "Not in them: (1) every finished item of a batch updates the same `tasks` row (`done = done + 1`), so one "
        "batch's items finish one after another through that row lock, held from the UPDATE to the COMMIT: one "
        "batch tops out near 1 / (a round trip + the commit's WAL flush): for one batch to take "
        f"{at['img_per_s']:,.0f} img/s from {at['workers']} workers, that must stay under "
        f"{1000 / at['img_per_s']:.2f} ms; concurrent batches use different rows. (2) The dispatcher runs one "
        "pending-items query per open task per cycle, so with many open batches its cost grows with their number, "
        "not with items. (3) Connection limits: see above.",
        "",
    ]
    return "\n".join(lines)


def describe(run: Any) -> str:
    kind = run.kind if run.kind != "batch" else "local"
    return f"{kind:<9} {run.items:>6} items  {run.img_per_s:6.1f} img/s  wall {run.wall_s:6.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=500, help="items of each batch (default 500)")
    parser.add_argument("--distinct", type=int, default=60, help="distinct corpus images to cycle through (60)")
    parser.add_argument("--passes", type=int, default=2, help="interleaved passes; best kept (2)")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between progress polls (0.2)")
    parser.add_argument("--settle", type=float, default=12.0, help="seconds after the warm-up before the POST (12)")
    parser.add_argument("--idle", type=float, default=5.0, help="idle window, the end of --settle, seconds (5)")
    parser.add_argument("--name", default="celery", help="results file stem under bench/results/ (default celery)")
    parser.add_argument("--max-background", type=float, default=0.15, help="repeat a run above this many busy cores")
    parser.add_argument("--retries", type=int, default=2, help="repeats of a disturbed run (default 2)")
    parser.add_argument("--retry-wait", type=float, default=10.0, help="seconds to wait before a repeat")
    args = parser.parse_args()

    began = time.monotonic()
    images, warmup = corpus.ensure_corpus(args.distinct)
    corpus_info = corpus.describe(images)
    info = machine_info(PACKAGES)
    # Work folders sit beside the corpus (bench/corpus/ is gitignored) so inputs can be hard links to it.
    work = Path(tempfile.mkdtemp(prefix="celery-run-", dir=corpus.CORPUS_DIR.parent))
    print(f"{corpus_info['count']} distinct images, {args.n} items, work folder {work}", flush=True)
    services = Services()
    print(f"PostgreSQL {services.versions['postgresql']}, Redis {services.versions['redis']}", flush=True)

    def measure(kind: str) -> tuple[Any, int]:
        def once(attempt: int) -> Any:
            folder = work / f"{kind}-{time.monotonic_ns()}"
            try:
                if kind == "local":
                    return bench_batch.run_batch(LOCAL_WORKERS, args.n, images, warmup, folder, args.poll)
                workers = int(kind.removeprefix("celery-"))
                return run_celery(services, workers, args.n, images, warmup, folder, args.poll, args.settle, args.idle)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        return quiet_run(once, describe, args.max_background, args.retries, args.retry_wait)

    kinds = ["celery-1", "celery-2", "local"]
    best: dict[str, tuple[Any, int]] = {}
    passes: dict[str, list[float]] = {k: [] for k in kinds}
    try:
        for p in range(args.passes):
            order = kinds if p % 2 == 0 else kinds[::-1]  # slow drift must not always favour the same run
            print(f"pass {p + 1}/{args.passes}", flush=True)
            for kind in order:
                run, attempt = measure(kind)
                passes[kind].append(run.img_per_s)
                if kind not in best or run.img_per_s > best[kind][0].img_per_s:
                    best[kind] = (run, attempt)
    finally:
        services.close()
        shutil.rmtree(work, ignore_errors=True)

    one = celery_row(*best["celery-1"], passes["celery-1"])
    two = celery_row(*best["celery-2"], passes["celery-2"])
    local = bench_batch.row(*best["local"], passes["local"])
    speedup = two["img_per_s"] / one["img_per_s"]
    vs_local = two["img_per_s"] / local["img_per_s"]
    argv = " ".join([".venv/bin/python bench/bench_celery.py", *sys.argv[1:]])
    full = args.n >= 500 and args.passes >= 2
    report: dict[str, Any] = {
        "command": argv,
        "note": "" if full else "Smoke run (under 500 items or one pass): not representative.",
        "machine": info,
        "services": services.versions,
        "corpus": corpus_info,
        "poll_s": args.poll,
        "duration_s": round(time.monotonic() - began, 1),
        "local": local,
        "celery_1": one,
        "celery_2": two,
        "speedup": round(speedup, 3),
        "speedup_target": SPEEDUP_TARGET,
        "speedup_result": "pass" if speedup >= SPEEDUP_TARGET else "FAIL",
        "vs_local": round(vs_local, 3),
        "vs_local_target": LOCAL_TARGET,
        "vs_local_result": "pass" if vs_local >= LOCAL_TARGET else "FAIL",
        "model": build_model(one, two),
    }
    write_results(report, args.name, markdown)
    print(f"in {report['duration_s']:.0f} s")


if __name__ == "__main__":
    main()
