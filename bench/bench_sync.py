"""Benchmark of the synchronous edit pipeline against a raw pyvips baseline, in one run.

Workload (docs/performance.md: the 12 MP resize): 12-megapixel JPEG -> resize to width 1000 -> JPEG q85.

Modes (each one measured in every pass; passes interleave the modes and the best pass is kept):

  baseline-2p       raw pyvips thumbnail_buffer + jpegsave_buffer in a spawn pool of 2 processes
  inproc-2p         retouch.edit() in the same kind of pool
  http-url          `retouch serve --workers 2`; POST /v1/image/edit with an http:// input on a loopback file server
  http-upload       the same server; POST /v1/image/edit/upload (multipart)
  http-url-slow     http-url with an origin that answers after 50 ms (compared with http-url: the workers
                    download the next input while editing, so the wait should mostly vanish), for information
  baseline-1p       the baseline in one process pinned to CPU 0 (the per-core figure)
  inproc-1p         retouch.edit() in one process pinned to CPU 0
  baseline-2p-prog  baseline with progressive + optimised Huffman (the contract's default JPEG output), for information
  inproc-2p-prog    retouch.edit() with the contract's default progressive=true, for information

Run from the repository root (a full run takes about 1 minute, plus ~45 s to make the corpus the first time):

    .venv/bin/python bench/bench_sync.py                  # N=60, 2 passes -> bench/results/sync.{md,json}
    .venv/bin/python bench/bench_sync.py -n 8 --passes 1 --name sync-smoke

See bench/README.md for what is timed and how to read the results.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import corpus
from common import (
    MB,
    REPO,
    RESULTS_DIR,
    background,
    cmdline,
    concurrently,
    cpu_by_pid,
    cpu_stat,
    drive,
    file_server,
    machine_info,
    percentile,
    process_tree,
    retouch_server,
    vm_hwm,
)

WIDTH = 1000
QUALITY = 85
OPERATIONS = {"resizing": {"width": WIDTH}}


@dataclass(frozen=True)
class Mode:
    name: str
    kind: str  # baseline | inproc | http-url | http-upload
    procs: int  # worker processes (pool size or the server's --workers)
    progressive: bool = False
    pin_cpu: int | None = None  # the 1-process runs are pinned, as the library anchors were, so they measure one core
    baseline: str | None = None  # the mode this one is compared with
    target: float | None = None  # minimum ratio to the baseline; None = for information only
    origin_ms: int = 0  # http-url: the loopback origin waits this long before each answer


def all_modes(procs: int) -> list[Mode]:
    return [
        Mode("baseline-2p", "baseline", procs),
        Mode("inproc-2p", "inproc", procs, baseline="baseline-2p", target=0.9),
        Mode("http-url", "http-url", procs, baseline="baseline-2p", target=0.8),
        Mode("http-upload", "http-upload", procs, baseline="baseline-2p", target=0.8),
        # A distant origin (50 ms per answer): what the workers' read-ahead hides, against http-url.
        Mode("http-url-slow", "http-url", procs, baseline="http-url", origin_ms=50),
        Mode("baseline-1p", "baseline", 1, pin_cpu=0),
        Mode("inproc-1p", "inproc", 1, pin_cpu=0, baseline="baseline-1p", target=0.9),
        Mode("baseline-2p-prog", "baseline", procs, progressive=True),
        Mode("inproc-2p-prog", "inproc", procs, progressive=True, baseline="baseline-2p-prog"),
    ]


def output_options(progressive: bool) -> dict[str, Any]:
    return {"format": {"type": "jpeg", "quality": QUALITY, "progressive": progressive}}


@dataclass
class RunResult:
    mode: str
    images: int
    wall_s: float
    latencies_s: list[float]
    cpu_s: float  # CPU of the service side: pool workers, or the server's process tree
    client_cpu_s: float  # CPU of this harness (HTTP clients) and the file server; 0 for pool modes
    rss_bytes: list[int]  # peak RSS of each service-side process
    background_cores: float  # machine busy time not spent by our processes, in cores
    steal_pct: float
    out_bytes: int | None = None  # mean output size (pool modes; the server writes its results to disk)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def img_per_s(self) -> float:
        return self.images / self.wall_s


# ------------------------------------------------------------------------------------------ pool modes


def _baseline_fn(progressive: bool) -> Callable[[bytes], tuple[bytes, int, int]]:
    import pyvips

    # Same process set-up as retouch's workers: no operation cache (every input differs), one vips thread.
    pyvips.cache_set_max(0)
    pyvips.concurrency_set(1)

    def run(data: bytes) -> tuple[bytes, int, int]:
        # height=10_000_000 means "width decides"; thumbnail picks the JPEG shrink-on-load factor itself.
        image = pyvips.Image.thumbnail_buffer(data, WIDTH, height=10_000_000)
        # The encoder settings retouch uses for this output, so the two do the same work.
        out = image.jpegsave_buffer(Q=QUALITY, interlace=progressive, keep="none", optimize_coding=progressive)
        return bytes(out), image.width, image.height

    return run


def _inproc_fn(progressive: bool) -> Callable[[bytes], tuple[bytes, int, int]]:
    import retouch
    from retouch.pipeline import configure_vips

    configure_vips(threads=1)
    output = output_options(progressive)

    def run(data: bytes) -> tuple[bytes, int, int]:
        result = retouch.edit(data, OPERATIONS, output)
        return result.data, result.width, result.height

    return run


def _pool_worker(
    mode: Mode,
    warmup: list[str],
    tasks: Any,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """One worker process: warm up, wait for "go", then take paths from the shared queue until the sentinel."""
    if mode.pin_cpu is not None:
        os.sched_setaffinity(0, {mode.pin_cpu})
    fn = (_baseline_fn if mode.kind == "baseline" else _inproc_fn)(mode.progressive)
    for path in warmup:
        fn(Path(path).read_bytes())
    ready.put(os.getpid())
    go.wait()
    start = resource.getrusage(resource.RUSAGE_SELF)
    latencies: list[float] = []
    out_bytes = 0
    dims: set[tuple[int, int]] = set()
    while (path := tasks.get()) is not None:
        t0 = time.perf_counter()
        # Reading the file is part of the timed work (it comes from the page cache), as in the library anchors.
        out, width, height = fn(Path(path).read_bytes())
        latencies.append(time.perf_counter() - t0)
        out_bytes += len(out)
        dims.add((width, height))
    end_time = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes on Linux
    end = resource.getrusage(resource.RUSAGE_SELF)
    results.put(
        {
            "end": end_time,
            "latencies": latencies,
            "cpu": (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime),
            # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark across fork+exec into ru_maxrss,
            # so a spawned worker would report at least this harness's RSS.
            "maxrss": vm_hwm(os.getpid()),
            "out_bytes": out_bytes,
            "dims": sorted(dims),
        }
    )


def run_pool(mode: Mode, images: list[Path], warmup: list[Path]) -> RunResult:
    ctx = multiprocessing.get_context("spawn")  # the service's pool uses spawn too
    tasks, ready, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    for path in images:
        tasks.put(str(path))
    for _ in range(mode.procs):
        tasks.put(None)
    procs = [
        ctx.Process(target=_pool_worker, args=(mode, [str(p) for p in warmup], tasks, ready, go, results))
        for _ in range(mode.procs)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    stat0, self0 = cpu_stat(), os.times()
    t_go = time.perf_counter()
    go.set()
    reports = [results.get(timeout=600) for _ in procs]
    stat1, self1 = cpu_stat(), os.times()
    for p in procs:
        p.join()
    workers_cpu = sum(r["cpu"] for r in reports)
    harness_cpu = (self1.user - self0.user) + (self1.system - self0.system)
    bg, steal = background(stat0, stat1, workers_cpu + harness_cpu)
    latencies = [x for r in reports for x in r["latencies"]]
    dims = sorted({tuple(d) for r in reports for d in r["dims"]})
    return RunResult(
        mode=mode.name,
        images=len(latencies),
        wall_s=max(r["end"] for r in reports) - t_go,
        latencies_s=latencies,
        cpu_s=workers_cpu,
        client_cpu_s=0.0,
        rss_bytes=[r["maxrss"] for r in reports],
        background_cores=bg,
        steal_pct=steal,
        out_bytes=round(sum(r["out_bytes"] for r in reports) / len(latencies)),
        extra={"dims": dims},
    )


# ------------------------------------------------------------------------------------------ HTTP modes


def _http_request(client: Any, mode: Mode, file_base: str, path: Path) -> dict[str, Any]:
    output = output_options(mode.progressive)
    if mode.kind == "http-url":
        where = f"slow/{mode.origin_ms}/{path.name}" if mode.origin_ms else path.name
        body = {"input": f"{file_base}/{where}", "operations": OPERATIONS, "output": output}
        response = client.post("/v1/image/edit", json=body)
    else:
        files = {"file": (path.name, path.read_bytes(), "image/jpeg")}
        form = {"data": json.dumps({"operations": OPERATIONS, "output": output})}
        response = client.post("/v1/image/edit/upload", files=files, data=form)
    if response.status_code != 200:
        raise RuntimeError(f"{mode.name} {path.name}: HTTP {response.status_code}: {response.text[:500]}")
    out: dict[str, Any] = response.json()["data"]["output"]
    return out


def run_http(
    mode: Mode, images: list[Path], warmup: list[Path], file_port: int, file_pid: int, clients: int
) -> RunResult:
    import httpx

    file_base = f"http://127.0.0.1:{file_port}"
    # The inputs come from the loopback file server, which the fetcher's SSRF guard refuses by default.
    allow_loopback = {"RETOUCH_FETCH_ALLOW_HOSTS": "127.0.0.1"}
    with retouch_server(mode.procs, extra_env=allow_loopback) as (base, key, server_pid):
        # Keep-alive clients, one per thread, like a batch uploader would use.
        pool = [
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300) for _ in range(clients)
        ]
        try:

            def warm(client: httpx.Client) -> None:
                for path in warmup:
                    _http_request(client, mode, file_base, path)

            # Concurrent warm-up: the server's pool starts a worker per concurrent request, so this starts all
            # of them (and loads the pipeline in each) before the clock runs.
            concurrently(pool, warm)

            tree = process_tree(server_pid)
            stat0, self0 = cpu_stat(), os.times()
            server0, file0 = cpu_by_pid(tree), cpu_by_pid([file_pid])
            run = drive(pool, images, lambda client, path: _http_request(client, mode, file_base, path))
            stat1, self1 = cpu_stat(), os.times()
            tree = process_tree(server_pid)  # the same processes unless a worker was replaced
            # Per process, so the API process's share (fetching, parsing, passing bytes to workers) shows.
            server_cpu_by_pid = {pid: t - server0.get(pid, 0.0) for pid, t in cpu_by_pid(tree).items()}
            server_cpu = sum(server_cpu_by_pid.values())
            file_cpu = cpu_by_pid([file_pid])[file_pid] - file0[file_pid]
            rss = {pid: vm_hwm(pid) for pid in tree}
            roles = {pid: cmdline(pid)[:120] for pid in tree}
        finally:
            for c in pool:
                c.close()
    harness_cpu = (self1.user - self0.user) + (self1.system - self0.system)
    bg, steal = background(stat0, stat1, server_cpu + file_cpu + harness_cpu)
    latencies = run.latencies
    dims = {(out["width"], out["height"]) for out in run.outcomes}
    return RunResult(
        mode=mode.name,
        images=len(latencies),
        wall_s=max(run.ends) - run.started,
        latencies_s=latencies,
        cpu_s=server_cpu,
        client_cpu_s=harness_cpu + file_cpu,
        rss_bytes=[rss[pid] for pid in tree],
        background_cores=bg,
        steal_pct=steal,
        extra={
            "dims": sorted(dims),
            "client_cpu_s": round(harness_cpu, 3),
            "file_server_cpu_s": round(file_cpu, 3),
            "processes": [
                {
                    "pid": pid,
                    "peak_rss_mb": round(rss[pid] / MB, 1),
                    "cpu_ms_per_img": round(1000 * server_cpu_by_pid[pid] / len(latencies), 1),
                    "cmd": roles[pid],
                }
                for pid in tree
            ],
        },
    )


# ------------------------------------------------------------------------------------------ driver


def check_outputs(image: Path) -> dict[str, bool]:
    """Whether retouch.edit() writes the same bytes as the baseline (it should: same vips calls and encoder
    settings), so the ratio compares equal work. Runs in a spawned child to keep pyvips out of this process."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_same_bytes, (str(image),))


def _same_bytes(path: str) -> dict[str, bool]:
    data = Path(path).read_bytes()
    return {f"progressive={prog}": _baseline_fn(prog)(data)[0] == _inproc_fn(prog)(data)[0] for prog in (False, True)}


def run_mode(
    mode: Mode, args: argparse.Namespace, images: list[Path], warmup: list[Path], fs: tuple[int, int]
) -> RunResult:
    """One measured run, repeated (up to --retries times) while the machine was busy with someone else's work."""
    for attempt in range(args.retries + 1):
        if mode.kind in ("baseline", "inproc"):
            result = run_pool(mode, images, warmup)
        else:
            result = run_http(mode, images, warmup, *fs, clients=args.clients)
        result.extra["attempt"] = attempt + 1
        # A fast wrong answer is not a result: every output must have the requested width.
        if any(width != WIDTH for width, _ in result.extra["dims"]):
            raise RuntimeError(f"{mode.name}: output sizes {result.extra['dims']}, expected width {WIDTH}")
        print(
            f"  {mode.name:<17} {result.img_per_s:6.1f} img/s  p50 {1000 * percentile(result.latencies_s, 50):5.0f} ms"
            f"  background {result.background_cores:.2f} cores",
            flush=True,
        )
        if result.background_cores <= args.max_background or attempt == args.retries:
            return result
        print(f"  ... background load over {args.max_background} cores; waiting {args.retry_wait:g} s and repeating")
        time.sleep(args.retry_wait)
    raise AssertionError("unreachable")


def summarise(modes: list[Mode], best: dict[str, RunResult], passes: dict[str, list[float]]) -> list[dict[str, Any]]:
    rows = []
    for mode in modes:
        r = best[mode.name]
        base = best.get(mode.baseline) if mode.baseline else None
        ratio = r.img_per_s / base.img_per_s if base else None
        verdict = "-" if mode.target is None or ratio is None else ("pass" if ratio >= mode.target else "FAIL")
        rows.append(
            {
                "mode": mode.name,
                "procs": mode.procs,
                "progressive": mode.progressive,
                "images": r.images,
                "img_per_s": round(r.img_per_s, 2),
                "img_per_s_per_core": round(r.img_per_s / mode.procs, 2),
                "all_passes_img_per_s": [round(x, 2) for x in passes[mode.name]],
                "p50_ms": round(1000 * percentile(r.latencies_s, 50), 1),
                "p95_ms": round(1000 * percentile(r.latencies_s, 95), 1),
                "cpu_ms_per_img": round(1000 * r.cpu_s / r.images, 1),
                "client_cpu_ms_per_img": round(1000 * r.client_cpu_s / r.images, 1),
                "peak_rss_mb_total": round(sum(r.rss_bytes) / MB, 1),
                "peak_rss_mb_max_process": round(max(r.rss_bytes) / MB, 1),
                "out_kb": round(r.out_bytes / 1024, 1) if r.out_bytes else None,
                "baseline": mode.baseline,
                "ratio": round(ratio, 3) if ratio is not None else None,
                "target": mode.target,
                "result": verdict,
                "background_cores": round(r.background_cores, 2),
                "steal_pct": round(r.steal_pct, 2),
                **r.extra,
            }
        )
    return rows


def markdown(
    info: dict[str, Any],
    corpus_info: dict[str, Any],
    checks: dict[str, bool],
    rows: list[dict[str, Any]],
    argv: str,
    note: str = "",
) -> str:
    lines = [
        "# Sync pipeline benchmark: 12 MP JPEG -> width 1000 -> JPEG q85",
        "",
        f"Run {info['date']} with `{argv}`.",
        "",
        *([f"**{note}**", ""] if note else []),
        f"- Machine: {info['nproc']} CPUs, {info['cpu']}, {info['simd'] or 'no AVX2'}, {info['memory_gb']} GB, "
        f"Linux {info['kernel']}; load average at start {' '.join(info['loadavg_at_start'])}.",
        f"- Versions: retouch {info['retouch']}, Python {info['python']}, pyvips {info['pyvips']}, "
        f"libvips {info['libvips']}, FastAPI {info['fastapi']}, uvicorn {info['uvicorn']}, httpx {info['httpx']}.",
        f"- Corpus: {corpus_info['count']} x {corpus_info['size']} {corpus_info['format']}, mean "
        f"{corpus_info['mean_bytes'] / 1e6:.2f} MB ({corpus_info['bits_per_pixel']} bit/px), "
        f"set `{corpus_info['set']}`.",
        "- retouch.edit() output is byte-identical to the baseline's: "
        + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items())
        + ".",
        "",
        "| mode | procs | img/s | img/s per core | p50 / p95 ms | CPU ms/img | peak RSS MB total (max/proc) "
        "| out KB | ratio to baseline | target | result | background cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        ratio = f"{r['ratio']:.2f} ({r['baseline']})" if r["ratio"] is not None else "-"
        target = f"≥ {r['target']}" if r["target"] is not None else "info" if r["baseline"] else "-"
        out_kb = f"{r['out_kb']:.0f}" if r["out_kb"] else "-"
        lines.append(
            f"| {r['mode']} | {r['procs']} | {r['img_per_s']:.1f} | {r['img_per_s_per_core']:.1f} "
            f"| {r['p50_ms']:.0f} / {r['p95_ms']:.0f} | {r['cpu_ms_per_img']:.0f} "
            f"| {r['peak_rss_mb_total']:.0f} ({r['peak_rss_mb_max_process']:.0f}) | {out_kb} | {ratio} | {target} "
            f"| {r['result']} | {r['background_cores']:.2f} |"
        )
    http = [r for r in rows if r["mode"].startswith("http")]
    lines += [
        "",
        "Best of the passes per mode (all passes, img/s: "
        + "; ".join(f"{r['mode']} {', '.join(f'{x:.1f}' for x in r['all_passes_img_per_s'])}" for r in rows)
        + ").",
        "",
        "How to read it:",
        "",
        '- img/s = measured images / wall time from "go" to the last result, workers warm. '
        "img/s per core = img/s / worker processes (`procs`).",
        "- Latency: pool modes, per image inside the worker (read file + decode + resize + encode); "
        "HTTP modes, the client's request round trip.",
        "- CPU ms/img: the pool workers, or the whole server process tree for HTTP.",
    ]
    if http:
        lines += [
            "- HTTP server CPU split, API process / image workers: "
            + "; ".join(
                f"{r['mode']} {r['processes'][0]['cpu_ms_per_img']:.0f} / "
                f"{sum(p['cpu_ms_per_img'] for p in r['processes'][1:]):.0f} ms/img"
                for r in http
            )
            + ". The clients (this harness) and the loopback file server share the same cores: "
            + "; ".join(f"{r['mode']} {r['client_cpu_ms_per_img']:.0f} ms/img" for r in http)
            + ".",
        ]
    lines += [
        "- Peak RSS: sum of VmHWM over the pool workers, or over the server's process tree (API process, "
        "workers, multiprocessing's resource tracker); the largest single process in brackets.",
        "- Background cores: machine busy time (/proc/stat) not spent by the benchmark's own processes; "
        "runs above --max-background are repeated.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=60, help="measured images per run (default 60)")
    parser.add_argument(
        "--passes", type=int, default=2, help="interleaved passes over all modes; best kept (default 2)"
    )
    parser.add_argument("--procs", type=int, default=2, help="pool size and server --workers (default 2)")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients (default 2)")
    parser.add_argument("--modes", default="", help="comma list of modes to run (default: all)")
    parser.add_argument("--name", default="sync", help="results file stem under bench/results/ (default sync)")
    parser.add_argument("--max-background", type=float, default=0.15, help="repeat a run above this many busy cores")
    parser.add_argument("--retries", type=int, default=2, help="repeats of a disturbed run (default 2)")
    parser.add_argument("--retry-wait", type=float, default=10.0, help="seconds to wait before a repeat")
    args = parser.parse_args()

    modes = all_modes(args.procs)
    if args.modes:
        wanted = [m.strip() for m in args.modes.split(",") if m.strip()]
        unknown = set(wanted) - {m.name for m in modes}
        if unknown:
            parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
        modes = [m for m in modes if m.name in wanted]

    images, warmup = corpus.ensure_corpus(args.n)
    corpus_info = corpus.describe(images)
    info = machine_info()
    checks = check_outputs(images[0])
    print(f"{corpus_info['count']} images, {info['nproc']} CPUs, identical outputs: {checks}", flush=True)

    best: dict[str, RunResult] = {}
    passes: dict[str, list[float]] = {m.name: [] for m in modes}
    with file_server(corpus.CORPUS_DIR) as fs:
        for n in range(args.passes):
            # Alternate the order so slow drift on a shared machine does not always favour the same modes.
            order = modes if n % 2 == 0 else modes[::-1]
            print(f"pass {n + 1}/{args.passes}", flush=True)
            for mode in order:
                result = run_mode(mode, args, images, warmup, fs)
                passes[mode.name].append(result.img_per_s)
                if mode.name not in best or result.img_per_s > best[mode.name].img_per_s:
                    best[mode.name] = result

    rows = summarise(modes, best, passes)
    argv = " ".join([".venv/bin/python bench/bench_sync.py", *sys.argv[1:]])
    RESULTS_DIR.mkdir(exist_ok=True)
    md_path, json_path = RESULTS_DIR / f"{args.name}.md", RESULTS_DIR / f"{args.name}.json"
    # The targets are judged on the full run; a short one is only a check that the harness works.
    note = "" if args.n >= 60 and args.passes >= 2 else "Smoke run (under 60 images or one pass): not representative."
    md_path.write_text(markdown(info, corpus_info, checks, rows, argv, note))
    report = {
        "command": argv,
        "note": note,
        "machine": info,
        "corpus": corpus_info,
        "identical_outputs": checks,
        "modes": rows,
    }
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(md_path.read_text())
    print(f"wrote {md_path.relative_to(REPO)} and {json_path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
