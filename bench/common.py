"""Helpers shared by the benchmarks: machine load, /proc process accounting, servers, results header.

Everything here reads Linux's /proc directly, so it sees processes the harness did not start itself (the
server's pool workers, multiprocessing's resource tracker) and costs nothing measurable.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024  # memory figures are MiB, as /proc reports them


# ------------------------------------------------------------------------------------------ machine load


def cpu_stat() -> tuple[float, float, float]:
    """(busy, steal, wall) in seconds from /proc/stat's aggregate line, for background-load accounting."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK, time.monotonic()


def background(
    before: tuple[float, float, float], after: tuple[float, float, float], ours_s: float
) -> tuple[float, float]:
    """Cores kept busy by other processes during a run, and steal as a percentage of the machine."""
    wall = after[2] - before[2]
    busy = after[0] - before[0]
    steal = after[1] - before[1]
    ncpu = os.cpu_count() or 1
    return max(0.0, (busy - ours_s) / wall), 100 * steal / (wall * ncpu)


def harness_cpu(before: os.times_result, after: os.times_result) -> float:
    """CPU seconds this process (all its threads) used between two os.times() readings."""
    return (after.user - before.user) + (after.system - before.system)


class _Measured(Protocol):
    background_cores: float


R = TypeVar("R", bound=_Measured)


def quiet_run(
    run: Callable[[int], R],
    describe: Callable[[R], str],
    max_background: float,
    retries: int,
    retry_wait: float,
) -> tuple[R, int]:
    """Call run(attempt) until a run was not disturbed by other load (at most retries + 1 times).

    Returns the result and the attempt it came from (1-based). A busy machine cannot be made quiet, but a
    run that shared its cores with someone else's work says little, so it is repeated after a pause.
    """
    for attempt in range(1, retries + 2):
        result = run(attempt)
        print(f"  {describe(result)}  background {result.background_cores:.2f} cores", flush=True)
        if result.background_cores <= max_background or attempt == retries + 1:
            return result, attempt
        print(f"  ... background load over {max_background} cores; waiting {retry_wait:g} s and repeating")
        time.sleep(retry_wait)
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------------ processes


def proc_stat(pid: int) -> tuple[int, float]:
    """(ppid, utime+stime seconds) of a process; the comm field may contain spaces, so split after its ')'."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    rest = text[text.rindex(")") + 2 :].split()
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (the server, its download process and its pool workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid, _ = proc_stat(int(entry))
            except (OSError, ValueError):
                continue  # exited while we looked
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds used so far by each process (0 for one that has exited)."""
    cpu = dict.fromkeys(pids, 0.0)
    for pid in pids:
        with suppress(OSError):  # exited meanwhile
            cpu[pid] = proc_stat(pid)[1]
    return cpu


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def vm_hwm(pid: int) -> int:
    """Peak resident set size of a live process (VmHWM), in bytes.

    VmHWM, not ru_maxrss: Linux carries the parent's high-water mark across fork+exec into ru_maxrss, so a
    spawned child would report at least its parent's RSS."""
    return _status_kb(pid, "VmHWM:")


def vm_rss(pid: int) -> int:
    """Current resident set size (VmRSS), in bytes: sampled during a run to see whether memory keeps growing."""
    return _status_kb(pid, "VmRSS:")


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


# ------------------------------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with status {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server and every process it started: a server may shut its workers down without waiting for them
    (retouch's pool, thumbor's forks), and none may outlive the run."""
    children = process_tree(proc.pid)[1:] if proc.poll() is None else []
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # uvicorn and http.server both shut down cleanly on Ctrl-C
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in children:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


@contextmanager
def file_server(directory: Path) -> Iterator[tuple[int, int]]:
    """A ThreadingHTTPServer over `directory` that sends bodies with sendfile (bench/file_server.py), in
    its own process so its CPU is accounted separately from the clients' and it does not compete for
    their GIL. Yields (port, pid)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("file_server.py")), str(directory), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # one log line per request would only cost CPU
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc)
        yield port, proc.pid
    finally:
        stop(proc)


@contextmanager
def retouch_server(
    workers: int, home: Path | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, str, int]]:
    """A fresh `retouch serve`, so its peak RSS belongs to one run alone. Yields (base url, API key, pid).

    `home` is its RETOUCH_HOME: given, the caller owns it (and may have put input files under its
    storage/default/ folder, which becomes `storage://local/` on first start); None, a temp dir removed afterwards.
    """
    own_home = home is None
    home = Path(tempfile.mkdtemp(prefix="retouch-bench-")) if home is None else home
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "RETOUCH_HOME": str(home),
        "RETOUCH_RATE_LIMIT_PER_MINUTE": "0",  # 0 turns the limiter off; the default 4/s would throttle us
        "RETOUCH_RATE_LIMIT_PER_SECOND": "0",
        **(extra_env or {}),
    }
    cmd = [sys.executable, "-m", "retouch", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = (home / "server.log").open("wb")
    # cwd=home: the settings also read a .env file from the working directory; the repo's must not leak in.
    proc = subprocess.Popen([*cmd, "--workers", str(workers)], env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", proc)
        key = (home / "initial-api-key").read_text().strip()
        yield base, key, proc.pid
    finally:
        stop(proc)
        log.close()
        if own_home:
            shutil.rmtree(home, ignore_errors=True)


# ------------------------------------------------------------------------------------------ results


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(pct) - 1]


def machine_info(packages: tuple[str, ...] = ("fastapi", "uvicorn", "httpx")) -> dict[str, Any]:
    """Machine, kernel and versions for the results header; `packages` are distribution names to list too."""
    import pyvips

    import retouch

    cpu: dict[str, str] = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "cpu family", "model", "flags") and key.strip() not in cpu:
                cpu[key.strip()] = value.strip()
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    flags = cpu.get("flags", "").split()
    info: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": f"{cpu.get('model name', '?')} (family {cpu.get('cpu family', '?')} model {cpu.get('model', '?')})",
        "simd": " ".join(f for f in ("avx2", "avx512f") if f in flags),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "python": platform.python_version(),
        "retouch": f"{retouch.__version__} ({commit})",
        "pyvips": pyvips.__version__,
        "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
    }
    for name in packages:
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = "not installed"
    return info


def machine_lines(info: dict[str, Any], packages: tuple[str, ...] = ()) -> list[str]:
    """The machine and versions as markdown list items."""
    versions = ", ".join(
        [
            f"retouch {info['retouch']}",
            f"Python {info['python']}",
            f"pyvips {info['pyvips']}",
            f"libvips {info['libvips']}",
            *(f"{name} {info[name]}" for name in packages),
        ]
    )
    return [
        f"- Machine: {info['nproc']} CPUs, {info['cpu']}, {info['simd'] or 'no AVX2'}, {info['memory_gb']} GB, "
        f"Linux {info['kernel']}; load average at start {' '.join(info['loadavg_at_start'])}.",
        f"- Versions: {versions}.",
    ]


def write_results(report: dict[str, Any], name: str, markdown: Callable[[dict[str, Any]], str]) -> None:
    """bench/results/NAME.md (from ``markdown``) and NAME.json, then show the markdown."""
    RESULTS_DIR.mkdir(exist_ok=True)
    md_path, json_path = RESULTS_DIR / f"{name}.md", RESULTS_DIR / f"{name}.json"
    md_path.write_text(markdown(report))
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(md_path.read_text())
    print(f"wrote {md_path.relative_to(REPO)} and {json_path.relative_to(REPO)}")


Out = TypeVar("Out")


def concurrently(clients: list[Any], fn: Callable[[Any], object]) -> None:
    """``fn(client)`` for every client at once, then wait: a warm-up this way starts every worker of the server
    (a pool starts one per concurrent request) and loads the pipeline in each before the clock runs."""
    threads = [threading.Thread(target=fn, args=(client,)) for client in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class Drive(NamedTuple, Generic[Out]):
    """What :func:`drive` measured: one latency and one outcome per image, and when each client finished."""

    started: float
    latencies: list[float]
    outcomes: list[Out]
    ends: list[float]


def drive(clients: list[Any], images: list[Path], request: Callable[[Any, Path], Out]) -> Drive[Out]:
    """Each client thread takes the next image until none is left (a closed loop: as many requests in flight as
    clients). An error in any client is raised here, in the caller, not lost as a silently short run."""
    todo: queue.SimpleQueue[Path] = queue.SimpleQueue()
    for path in images:
        todo.put(path)
    latencies: list[float] = []
    outcomes: list[Out] = []
    ends: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def loop(client: Any) -> None:
        try:
            while True:
                try:
                    path = todo.get_nowait()
                except queue.Empty:
                    break
                t0 = time.perf_counter()
                outcome = request(client, path)
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    outcomes.append(outcome)
        except BaseException as exc:
            errors.append(exc)
        with lock:
            ends.append(time.perf_counter())

    started = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return Drive(started, latencies, outcomes, ends)
