"""Storage connector throughput: write, read and list N small objects through every connector.

Each connector (memory, local, s3, gcs, web_folder) writes N objects of --size bytes (default 1,000 x 200 KB),
reads them back and lists them, with 2 concurrent threads (what the local executor runs: one item per worker
process, 2 workers on 2 cores, each doing one read and one write) and with 8.

  memory      retouch.storage.memory.MemoryConnector: the floor (a dict), i.e. the harness's own cost
  local       retouch.storage.local.LocalConnector on a temp folder (atomic writes: temp file, fsync, rename)
  s3          retouch.storage.s3.S3Connector against moto's S3 server (tests/servers/moto.py, a child process)
  gcs         retouch.storage.gcs.GCSConnector against gcp-storage-emulator (tests/servers/gcs.py, run in a
              child process here so it does not compete with the client threads for this process's GIL)
  web_folder  retouch.storage.web_folder.WebFolderConnector against http.server's ThreadingHTTPServer (HTTP/1.1
              keep-alive, child process); read-only: the objects are put in its folder untimed, reads and the
              listing are timed

Run from the repository root (a full run takes about 2 minutes):

    .venv/bin/python bench/bench_storage.py                      # -> bench/results/storage.{md,json}
    .venv/bin/python bench/bench_storage.py -n 100 --name storage-smoke

See bench/README.md for what is timed and how to read the results.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    REPO,
    background,
    cpu_by_pid,
    cpu_stat,
    harness_cpu,
    machine_info,
    machine_lines,
    percentile,
    quiet_run,
    write_results,
)

# tests/servers/ holds the moto and GCS-emulator helpers the storage tests use; import them from the repo root.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CONNECTORS = ("memory", "local", "s3", "gcs", "web_folder")
BUCKET = "retouch-bench"
CONTENT_TYPE = "image/jpeg"
MB = 1_000_000  # throughput in decimal megabytes, as network and storage figures usually are
# /proc and os.times() count CPU in 10 ms ticks: below this a phase's background-load figure is mostly rounding,
# so it is neither reported nor a reason to repeat the round (memory and local phases take a few ms).
MIN_PHASE_S = 0.5
PACKAGES = ("boto3", "botocore", "moto", "google-cloud-storage", "gcp-storage-emulator", "httpx")


@dataclass
class Phase:
    op: str  # write | read | list
    objects: int
    nbytes: int
    wall_s: float
    latencies_s: list[float]
    client_cpu_s: float  # this process: the connector and its HTTP client
    server_cpu_s: float  # the storage server's process (0 for memory and local)
    background_cores: float
    steal_pct: float

    def row(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "objects": self.objects,
            "wall_s": round(self.wall_s, 3),
            "objects_per_s": round(self.objects / self.wall_s, 1),
            "mb_per_s": round(self.nbytes / MB / self.wall_s, 1) if self.op != "list" else None,
            "p50_ms": round(1000 * percentile(self.latencies_s, 50), 2) if self.op != "list" else None,
            "p95_ms": round(1000 * percentile(self.latencies_s, 95), 2) if self.op != "list" else None,
            "max_ms": round(1000 * max(self.latencies_s), 2),
            "client_cpu_ms_per_object": round(1000 * self.client_cpu_s / self.objects, 3),
            "server_cpu_ms_per_object": round(1000 * self.server_cpu_s / self.objects, 3),
            "background_cores": round(self.background_cores, 2) if self.wall_s >= MIN_PHASE_S else None,
            "steal_pct": round(self.steal_pct, 2),
        }


@dataclass
class Round:
    connector: str
    threads: int
    phases: list[Phase] = field(default_factory=list)

    @property
    def background_cores(self) -> float:
        return max((p.background_cores for p in self.phases if p.wall_s >= MIN_PHASE_S), default=0.0)


# ------------------------------------------------------------------------------------------ payloads


class Payloads:
    """N distinct objects without holding N copies: one random block, each object's index in its first 8 bytes.
    Random bytes, so nothing on the way (none is configured, but a proxy could) can compress them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._block = random.Random(20261129).randbytes(size)

    def get(self, i: int) -> bytes:
        return i.to_bytes(8, "big") + self._block[8:]

    def check(self, i: int, data: bytes) -> None:
        if len(data) != self.size or data[:8] != i.to_bytes(8, "big"):
            raise RuntimeError(f"object {i}: read back {len(data)} bytes, not the object written")


def key(prefix: str, i: int) -> str:
    return f"{prefix}obj-{i:05d}.jpg"


# ------------------------------------------------------------------------------------------ servers


def _gcs_child(conn: Any) -> None:
    """The GCS emulator in a child process: tests/servers/gcs.py runs it in a thread of its caller, where its
    (single-threaded) HTTP server would share the GIL with the very client threads being measured."""
    import http.server

    sys.path.insert(0, str(REPO))
    from tests.servers.gcs import start_gcs_emulator

    # The emulator answers HTTP/1.0 (a new connection per request) from one thread, behind socketserver's
    # default listen backlog of 5: 8 client threads overflow it, and a dropped SYN costs a 1 s retransmit.
    # That stall would be the emulator's, not the connector's, so this process gives its server a real backlog.
    http.server.HTTPServer.request_queue_size = 128
    emulator = start_gcs_emulator()
    try:
        emulator.client().create_bucket(BUCKET)
        conn.send(emulator.endpoint)
        conn.recv()  # wait until the parent is done (EOFError if it died)
    except EOFError:
        pass
    finally:
        emulator.stop()


def _web_child(folder: str, conn: Any) -> None:
    """A web folder server: a ThreadingHTTPServer over `folder`, in a child process (its own GIL)."""
    import functools
    import http.server

    class Handler(http.server.SimpleHTTPRequestHandler):
        # Keep-alive, as web servers in front of image folders speak; `python -m http.server` answers HTTP/1.0
        # and closes every connection, which would measure TCP set-up instead of the connector.
        protocol_version = "HTTP/1.1"
        # Headers and body go out as separate writes; with keep-alive, Nagle's algorithm would hold a small body
        # back until the client's delayed ACK (40 ms) of the headers.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # one stderr line per request only costs CPU
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 128  # not 5: bursts of connections must not overflow the listen backlog

    server = Server(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
    conn.send(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with suppress(EOFError):
        conn.recv()  # until the parent is done (EOFError if it died)
    server.shutdown()


@contextmanager
def child_server(target: Callable[..., None], *args: Any) -> Iterator[tuple[Any, int]]:
    """Run target(*args, conn) in a spawned process; yields (what it sent first, its pid). Closing our end of
    the pipe tells it to stop."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(*args, child), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(60):
            raise RuntimeError(f"{target.__name__} did not start within 60 s")
        first = parent.recv()
        assert proc.pid is not None
        yield first, proc.pid
    finally:
        parent.close()
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()


@contextmanager
def moto() -> Iterator[tuple[Any, int]]:
    """Yields (MotoServer, pid) with the benchmark's bucket created."""
    from tests.servers.moto import start_moto

    server = start_moto()
    try:
        server.client().create_bucket(Bucket=BUCKET)
        assert server.process is not None
        yield server, server.process.pid
    finally:
        server.stop()


@dataclass
class Target:
    """A connector under test and what it needs: the server whose CPU counts as the storage's, and how to put
    objects in place for a read-only connector."""

    connector: Any
    server_pid: int | None
    seed: Callable[[str, int, Payloads], None] | None = None  # (prefix, n, payloads): objects for reads


@contextmanager
def open_target(name: str, work: Path) -> Iterator[Target]:
    if name == "memory":
        from retouch.storage.memory import MemoryConnector

        yield Target(MemoryConnector("bench"), None)
    elif name == "local":
        from retouch.storage.local import LocalConnector

        yield Target(LocalConnector("bench", work / "local"), None)
    elif name == "s3":
        from retouch.storage.s3 import S3Connector

        with moto() as (server, pid):
            connector = S3Connector(
                "bench",
                BUCKET,
                "",
                access_key=server.access_key,
                secret_key=server.secret_key,
                endpoint_url=server.endpoint_url,
            )
            yield Target(connector, pid)
    elif name == "gcs":
        from retouch.storage.gcs import GCSConnector

        with child_server(_gcs_child) as (endpoint, pid):
            connector = GCSConnector("bench", BUCKET, "", endpoint=endpoint)
            try:
                yield Target(connector, pid)
            finally:
                connector.close()
    elif name == "web_folder":
        from retouch.net import FetchPolicy
        from retouch.storage.web_folder import WebFolderConnector

        folder = work / "web"
        folder.mkdir()

        def seed(prefix: str, n: int, payloads: Payloads) -> None:
            for i in range(n):
                path = folder / key(prefix, i)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(payloads.get(i))

        with child_server(_web_child, str(folder)) as (port, pid):
            connector = WebFolderConnector(
                "bench", f"http://127.0.0.1:{port}/", FetchPolicy(allow_hosts=("127.0.0.1",))
            )
            try:
                yield Target(connector, pid, seed)
            finally:
                connector.close()
    else:
        raise ValueError(name)


# ------------------------------------------------------------------------------------------ measuring


def timed(target: Target, op: str, objects: int, nbytes: int, work: Callable[[], list[float]]) -> Phase:
    pids = [target.server_pid] if target.server_pid else []
    stat0, self0, server0 = cpu_stat(), os.times(), cpu_by_pid(pids)
    t0 = time.perf_counter()
    latencies = work()
    wall = time.perf_counter() - t0
    stat1, self1, server1 = cpu_stat(), os.times(), cpu_by_pid(pids)
    client = harness_cpu(self0, self1)
    server = sum(server1[p] - server0[p] for p in pids)
    bg, steal = background(stat0, stat1, client + server)
    return Phase(op, objects, nbytes, wall, latencies, client, server, bg, steal)


def run_round(target: Target, name: str, n: int, threads: int, payloads: Payloads, prefix: str) -> Round:
    conn = target.connector
    result = Round(name, threads)

    def listing() -> list[float]:
        t0 = time.perf_counter()
        keys = [info.key for info in conn.list(prefix, True)]
        if sorted(keys) != [key(prefix, i) for i in range(n)]:
            raise RuntimeError(f"{name}: listed {len(keys)} objects under {prefix}, expected {n}")
        return [time.perf_counter() - t0]

    # One pool for the round; its threads start during the first phase (a fraction of a millisecond each).
    with ThreadPoolExecutor(max_workers=threads) as pool:

        def each(fn: Callable[[int], None]) -> Callable[[], list[float]]:
            def one(i: int) -> float:
                t0 = time.perf_counter()
                fn(i)
                return time.perf_counter() - t0

            return lambda: list(pool.map(one, range(n)))

        size = n * payloads.size
        if conn.read_only:
            assert target.seed is not None
            target.seed(prefix, n, payloads)  # untimed: a web folder is filled by whoever publishes it
        else:
            write = each(lambda i: conn.write(key(prefix, i), payloads.get(i), CONTENT_TYPE))
            result.phases.append(timed(target, "write", n, size, write))
        read = each(lambda i: payloads.check(i, conn.read(key(prefix, i))))
        result.phases.append(timed(target, "read", n, size, read))
        # One listing call: a single paged iterator (S3 and GCS serve up to 1,000 keys a page), not something
        # a caller runs in parallel.
        result.phases.append(timed(target, "list", n, 0, listing))
    return result


def warm_up(target: Target, payloads: Payloads) -> None:
    """Create the client, open connections and import lazily loaded code before anything is timed."""
    conn = target.connector
    if conn.read_only:
        assert target.seed is not None
        target.seed("warm/", 4, payloads)
    else:
        for i in range(4):
            conn.write(key("warm/", i), payloads.get(i), CONTENT_TYPE)
    for i in range(4):
        payloads.check(i, conn.read(key("warm/", i)))
    list(conn.list("warm/", True))


def describe(r: Round) -> str:
    rates = "  ".join(f"{p.op} {p.objects / p.wall_s:7.0f} obj/s" for p in r.phases)
    judged = any(p.wall_s >= MIN_PHASE_S for p in r.phases)
    return f"{r.connector:<10} {r.threads} threads  {rates}" + ("" if judged else "  (too short to judge load)")


# ------------------------------------------------------------------------------------------ results


def background_text(phases: list[dict[str, Any]]) -> str:
    measured = [p["background_cores"] for p in phases if p["background_cores"] is not None]
    return f"{max(measured):.2f}" if measured else "- (phases too short)"


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    lines = [
        f"# Storage connectors: {report['objects']} objects of {report['object_bytes'] / 1000:.0f} KB, "
        "write / read / list",
        "",
        f"Run {info['date']} with `{report['command']}`.",
        "",
        *([f"**{report['note']}**", ""] if report["note"] else []),
        *machine_lines(info, PACKAGES),
        "",
        "| connector | threads | write obj/s | write MB/s | write ms p50 / p95 / max | read obj/s | read MB/s "
        "| read ms p50 / p95 / max | list obj/s (ms) | client CPU ms/obj (w / r) | server CPU ms/obj (w / r) "
        "| background cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rounds"]:
        ph = {p["op"]: p for p in r["phases"]}
        w, rd, ls = ph.get("write"), ph["read"], ph["list"]
        dash = "-"

        def rate(p: dict[str, Any] | None) -> str:
            if p is None:
                return "- | - | -"
            latency = f"{p['p50_ms']:.1f} / {p['p95_ms']:.1f} / {p['max_ms']:.0f}"
            return f"{p['objects_per_s']:.0f} | {p['mb_per_s']:.1f} | {latency}"

        cpu = "client_cpu_ms_per_object"
        srv = "server_cpu_ms_per_object"
        lines.append(
            f"| {r['connector']} | {r['threads']} | {rate(w)} | {rate(rd)} "
            f"| {ls['objects_per_s']:.0f} ({1000 * ls['wall_s']:.0f}) "
            f"| {f'{w[cpu]:.2f}' if w else dash} / {rd[cpu]:.2f} "
            f"| {f'{w[srv]:.2f}' if w else dash} / {rd[srv]:.2f} "
            f"| {background_text(r['phases'])} |"
        )
    lines += [
        "",
        "How to read it:",
        "",
        "- obj/s and MB/s (10^6 bytes) = objects / wall time of the phase, all threads together; p50 / p95 = one "
        "call's latency. Every read is checked against what was written; the listing must return exactly the "
        "objects written.",
        "- Threads share one connector object, as the threads of one process share it in the service. The local "
        "executor runs 2 worker processes, each doing one read and one write per item: the 2-thread rows are "
        "the service's own concurrency, the 8-thread rows show headroom.",
        "- moto, the GCS emulator and the web folder's ThreadingHTTPServer are Python servers on the same cores as the "
        "client: every figure bounds the client side from below (a real S3 or GCS is not CPU-bound on our "
        "machine). Their CPU is the server CPU column; the client CPU column is this process (connector, HTTP "
        "client, threads), the part that would remain against a real service. The GCS emulator serves one "
        "request at a time (a plain `http.server.HTTPServer`), so more threads cannot speed it up.",
        "- local: every write is atomic (temp file, fsync, rename), so its write rate is the disk's fsync rate.",
        "- web_folder is read-only: its objects are put into the served folder untimed; it lists by parsing "
        "the folder's HTML index.",
        "- Background cores: machine busy time (/proc/stat) not spent by this process or the storage server, the "
        f"worst phase of the round; rounds above --max-background are repeated. Phases under {MIN_PHASE_S} s are "
        "too short for /proc's 10 ms CPU ticks and are not judged.",
        "",
    ]
    return "\n".join(lines)


def bench_connector(
    name: str, concurrencies: list[int], args: argparse.Namespace, payloads: Payloads, work: Path
) -> list[dict[str, Any]]:
    """All rounds of one connector, against one server started for it."""
    rows = []
    with open_target(name, work) as target:
        warm_up(target, payloads)
        for threads in concurrencies:
            # A fresh prefix per attempt: writes create new objects and the listing sees only this round's.
            def once(attempt: int, threads: int = threads) -> Round:
                return run_round(target, name, args.n, threads, payloads, f"t{threads}-a{attempt}/")

            result, attempt = quiet_run(once, describe, args.max_background, args.retries, args.retry_wait)
            rows.append(
                {"connector": name, "threads": threads, "attempt": attempt, "phases": [p.row() for p in result.phases]}
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="objects per round (default 1000)")
    parser.add_argument("--size", type=int, default=200_000, help="bytes per object (default 200000)")
    parser.add_argument("--threads", default="2,8", help="comma list of concurrencies (default 2,8)")
    parser.add_argument("--connectors", default=",".join(CONNECTORS), help="comma list (default: all)")
    parser.add_argument("--name", default="storage", help="results file stem under bench/results/ (storage)")
    parser.add_argument("--max-background", type=float, default=0.15, help="repeat a round above this many cores")
    parser.add_argument("--retries", type=int, default=2, help="repeats of a disturbed round (default 2)")
    parser.add_argument("--retry-wait", type=float, default=10.0, help="seconds to wait before a repeat")
    args = parser.parse_args()
    names = [c.strip() for c in args.connectors.split(",") if c.strip()]
    if unknown := set(names) - set(CONNECTORS):
        parser.error(f"unknown connector(s): {', '.join(sorted(unknown))}")
    concurrencies = [int(t) for t in args.threads.split(",")]

    info = machine_info(PACKAGES)
    payloads = Payloads(args.size)
    rounds: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="retouch-bench-storage-"))
    try:
        for name in names:
            rounds += bench_connector(name, concurrencies, args, payloads, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    argv = " ".join([".venv/bin/python bench/bench_storage.py", *sys.argv[1:]])
    full = args.n >= 1000 and args.size >= 200_000
    report = {
        "command": argv,
        "note": "" if full else "Smoke run (fewer or smaller objects than the issue's 1,000 x 200 KB).",
        "machine": info,
        "objects": args.n,
        "object_bytes": args.size,
        "rounds": rounds,
    }
    write_results(report, args.name, markdown)


if __name__ == "__main__":
    main()
