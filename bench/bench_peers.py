"""retouch against thumbor 7.8 and a raw pyvips pool, side by side in one run, on both JPEG corpora.

Workloads (each service with 2 worker processes and 4 concurrent HTTP clients, URL input from a loopback origin):

  resize       12 MP JPEG -> width 1000 -> JPEG q85 baseline, on the 4:2:0 set and the 4:4:4 set (the issue's
               workload). Also run by a raw pyvips pool (thumbnail + jpegsave, 2 spawn processes, no HTTP).
  webp, avif   the same resize, WebP q80 / AVIF q60 out
  cover        12 MP -> 800x800 centre crop (cover), JPEG q85
  adjust       the resize plus brightness, contrast, saturation and sharpening, JPEG q85
  png-rgba     a 4 MP RGBA PNG -> width 1000 -> PNG (zlib 6, adaptive filter on both sides)

thumbor runs from its OWN virtualenv (bench/corpus/venv-thumbor, gitignored), made by this script with
`pip install thumbor==7.8.0` from PyPI the first time; its Pillow engine decodes JPEGs with draft() (libjpeg-turbo
DCT scaling) and resizes with Lanczos. Its configuration matches retouch's output: quality 85, baseline JPEG
(PROGRESSIVE_JPEG=False), EXIF orientation respected, no storage or result storage.

Passes alternate: every pass runs every service on every workload, the order of the services rotating from pass to
pass, each on a fresh server; the ratios are taken within a pass (so a noisy minute hits both sides) and reported
as the best pass plus the spread over passes. After the throughput runs, the sync latency of one 12 MP image on an
idle retouch server is measured against the in-process edit time (retouch.edit() in one process).

    .venv/bin/python bench/bench_peers.py                          # -> bench/results/peers.{md,json}, ~10 min
    .venv/bin/python bench/bench_peers.py -n 8 --passes 1 --extra-n 4 --name peers-smoke   # ~1.5 min
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_sync
import corpus
from common import (
    MB,
    background,
    concurrently,
    cpu_by_pid,
    cpu_stat,
    drive,
    file_server,
    free_port,
    machine_info,
    machine_lines,
    percentile,
    process_tree,
    retouch_server,
    stop,
    vm_hwm,
    wait_http,
    write_results,
)

THUMBOR_VERSION = "7.8.0"
THUMBOR_VENV = corpus.CORPUS_DIR.parent / "venv-thumbor"
PNG_DIR = corpus.CORPUS_DIR.parent / "rgba4mp-v1"

JPEG85 = {"format": {"type": "jpeg", "quality": 85, "progressive": False}}
ADJUST = {"exposure": 10, "contrast": 10, "saturation": 20, "sharpness": 30}


@dataclass(frozen=True)
class Workload:
    name: str
    corpus: str  # 420 | 444 | png
    operations: dict[str, Any]
    output: dict[str, Any]
    thumbor_path: str  # with {url}
    width: int  # expected output width
    height: int | None = None
    pyvips: bool = False  # also run the raw pyvips pool
    extra: bool = False  # one of the other workloads: --extra-n images, fewer passes


WORKLOADS = [
    Workload("resize-420", "420", {"resizing": {"width": 1000}}, JPEG85, "/unsafe/1000x0/{url}", 1000, pyvips=True),
    Workload("resize-444", "444", {"resizing": {"width": 1000}}, JPEG85, "/unsafe/1000x0/{url}", 1000, pyvips=True),
    Workload(
        "webp",
        "420",
        {"resizing": {"width": 1000}},
        {"format": {"type": "webp", "quality": 80}},
        "/unsafe/1000x0/filters:format(webp):quality(80)/{url}",
        1000,
        extra=True,
    ),
    Workload(
        "avif",
        "420",
        {"resizing": {"width": 1000}},
        {"format": {"type": "avif", "quality": 60}},
        "/unsafe/1000x0/filters:format(avif):quality(60)/{url}",
        1000,
        extra=True,
    ),
    Workload(
        "cover",
        "420",
        {"resizing": {"width": 800, "height": 800, "fit": "crop"}},
        JPEG85,
        "/unsafe/800x800/{url}",
        800,
        800,
        extra=True,
    ),
    Workload(
        "adjust",
        "420",
        {"resizing": {"width": 1000}, "adjustments": ADJUST},
        JPEG85,
        "/unsafe/1000x0/filters:brightness(10):contrast(10):saturation(1.2):sharpen(1.5,0.5,true)/{url}",
        1000,
        extra=True,
    ),
    Workload(
        "png-rgba",
        "png",
        {"resizing": {"width": 1000}},
        {"format": {"type": "png", "compression": "optimal"}},
        "/unsafe/1000x0/filters:format(png)/{url}",
        1000,
        extra=True,
    ),
]


@dataclass
class Run:
    service: str
    workload: str
    images: int
    wall_s: float
    latencies_s: list[float]
    cpu_s: float
    rss_bytes: list[int]
    background_cores: float
    out_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def img_per_s(self) -> float:
        return self.images / self.wall_s


# ------------------------------------------------------------------------------------------ inputs


def _make_png(index: int, path: Path) -> None:
    """A 4 MP RGBA PNG made from a corpus photo: the picture at 2309x1732 with a soft alpha vignette."""
    import numpy as np
    from PIL import Image

    src = Image.open(corpus.CORPUS_DIR / f"img-{index:04d}.jpg").convert("RGB").resize((2309, 1732))
    yy, xx = np.mgrid[0:1732, 0:2309].astype(np.float32)
    r = np.hypot((xx - 1154) / 1154, (yy - 866) / 866)
    alpha = np.clip((1.3 - r) * 255, 0, 255).astype(np.uint8)
    rgba = Image.fromarray(np.dstack([np.asarray(src), alpha]), "RGBA")
    tmp = path.with_suffix(".part")
    rgba.save(tmp, "PNG", compress_level=6)
    os.replace(tmp, path)


def ensure_inputs(n: int, extra_n: int) -> dict[str, tuple[list[Path], list[Path]]]:
    sets = {
        "420": corpus.ensure_corpus(n),
        "444": corpus.ensure_corpus(n, chroma="444"),
    }
    PNG_DIR.mkdir(parents=True, exist_ok=True)
    pngs = [PNG_DIR / f"img-{i:04d}.png" for i in range(extra_n + 2)]
    for i, path in enumerate(pngs):
        if not path.exists():
            _make_png(i, path)
    sets["png"] = (pngs[2:], pngs[:2])
    return sets


def ensure_thumbor() -> Path:
    """thumbor's own virtualenv, made once with pip from PyPI: its Pillow must not meet ours."""
    exe = THUMBOR_VENV / "bin" / "thumbor"
    if exe.exists():
        return exe
    print(f"installing thumbor {THUMBOR_VERSION} into {THUMBOR_VENV} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(THUMBOR_VENV)], check=True)
    subprocess.run([str(THUMBOR_VENV / "bin" / "pip"), "install", "-q", f"thumbor=={THUMBOR_VERSION}"], check=True)
    return exe


THUMBOR_CONF = """
LOADER = 'thumbor.loaders.http_loader'
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
ENGINE = 'thumbor.engines.pil'
ALLOW_UNSAFE_URL = True
QUALITY = 85
PROGRESSIVE_JPEG = False
RESPECT_ORIENTATION = True
AUTO_WEBP = False
MAX_AGE = 0
HTTP_LOADER_MAX_CLIENTS = 16
"""


@contextmanager
def thumbor_server(workers: int) -> Iterator[tuple[str, int]]:
    exe = ensure_thumbor()
    home = Path(tempfile.mkdtemp(prefix="thumbor-bench-"))
    conf = home / "thumbor.conf"
    conf.write_text(THUMBOR_CONF)
    port = free_port()
    log = (home / "server.log").open("wb")
    cmd = [str(exe), "-p", str(port), "-i", "127.0.0.1", "-c", str(conf), "--processes", str(workers), "-l", "error"]
    proc = subprocess.Popen(cmd, cwd=home, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthcheck", proc)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


# ------------------------------------------------------------------------------------------ runs


def _png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(data)).size  # reads the header only


def run_http(
    service: str,
    wl: Workload,
    images: list[Path],
    warmup: list[Path],
    origin: tuple[int, int],
    clients: int,
    workers: int,
    latency_n: int = 0,
    retouch_env: dict[str, str] | None = None,
) -> Run:
    import httpx

    file_port, file_pid = origin
    file_base = f"http://127.0.0.1:{file_port}"
    sub = {"420": "jpeg/", "444": "jpeg444/", "png": "png/"}[wl.corpus]

    if service == "retouch":
        env = {"RETOUCH_FETCH_ALLOW_HOSTS": "127.0.0.1", **(retouch_env or {})}
        ctx: Any = retouch_server(workers, extra_env=env)
    else:
        ctx = thumbor_server(workers)
    with ctx as started:
        base, pid = (started[0], started[2]) if service == "retouch" else started
        headers = {"Authorization": f"Bearer {started[1]}"} if service == "retouch" else {}
        pool = [httpx.Client(base_url=base, headers=headers, timeout=300) for _ in range(clients)]

        def one(client: httpx.Client, path: Path) -> tuple[int, int, int]:
            url = f"{file_base}/{sub}{path.name}"
            if service == "retouch":
                body = {"input": url, "operations": wl.operations, "output": wl.output}
                r = client.post("/v1/image/edit", json=body)
                if r.status_code != 200:
                    raise RuntimeError(f"retouch {wl.name} {path.name}: {r.status_code} {r.text[:300]}")
                out = r.json()["data"]["output"]
                return out["width"], out["height"], 0  # the result stays in the server's tmp store
            r = client.get(wl.thumbor_path.format(url=url))
            if r.status_code != 200:
                raise RuntimeError(f"thumbor {wl.name} {path.name}: {r.status_code} {r.text[:300]}")
            width, height = _png_size(r.content)
            return width, height, len(r.content)

        try:
            concurrently(pool, lambda c: [one(c, p) for p in warmup])
            tree = process_tree(pid)
            stat0, self0 = cpu_stat(), os.times()
            cpu0, file0 = cpu_by_pid(tree), cpu_by_pid([file_pid])
            run = drive(pool, images, one)
            stat1, self1 = cpu_stat(), os.times()
            tree = process_tree(pid)
            server_cpu = sum(t - cpu0.get(p, 0.0) for p, t in cpu_by_pid(tree).items())
            file_cpu = cpu_by_pid([file_pid])[file_pid] - file0[file_pid]
            rss = [vm_hwm(p) for p in tree]
            idle: list[float] = []
            for path in images[:latency_n]:  # one request at a time on the now idle server
                time.sleep(0.05)
                t0 = time.perf_counter()
                one(pool[0], path)
                idle.append(time.perf_counter() - t0)
        finally:
            for c in pool:
                c.close()
    harness = (self1.user - self0.user) + (self1.system - self0.system)
    bg, _steal = background(stat0, stat1, server_cpu + file_cpu + harness)
    dims = {(width, height) for width, height, _size in run.outcomes}
    if any(w != wl.width or (wl.height is not None and h != wl.height) for w, h in dims):
        raise RuntimeError(f"{service} {wl.name}: output sizes {sorted(dims)}")
    sizes = [size for _w, _h, size in run.outcomes]
    return Run(
        service,
        wl.name,
        len(run.latencies),
        max(run.ends) - run.started,
        run.latencies,
        server_cpu,
        rss,
        bg,
        round(statistics.mean(sizes)) if sizes else 0,
        {"idle_latencies_s": idle, "processes": len(tree), "client_cpu_s": round(harness + file_cpu, 3)},
    )


def run_pyvips(wl: Workload, images: list[Path], warmup: list[Path], workers: int) -> Run:
    mode = bench_sync.Mode("pyvips", "baseline", workers)
    r = bench_sync.run_pool(mode, images, warmup)
    out = r.out_bytes or 0
    return Run("pyvips", wl.name, r.images, r.wall_s, r.latencies_s, r.cpu_s, r.rss_bytes, r.background_cores, out)


def inproc_latency(images: list[Path], warmup: list[Path]) -> Run:
    """retouch.edit() alone in one process: the edit time an idle server's round trip is compared with."""
    mode = bench_sync.Mode("inproc-1p", "inproc", 1)
    r = bench_sync.run_pool(mode, images, warmup)
    return Run("inproc", "resize", r.images, r.wall_s, r.latencies_s, r.cpu_s, r.rss_bytes, r.background_cores, 0)


# ------------------------------------------------------------------------------------------ driver


def summary(runs: list[Run]) -> dict[str, Any]:
    return {
        "img_per_s": round(runs[0].img_per_s, 2),
        "cpu_ms_per_img": round(1000 * runs[0].cpu_s / runs[0].images, 1),
        "p50_ms": round(1000 * percentile(runs[0].latencies_s, 50), 1),
        "rss_mb": round(sum(runs[0].rss_bytes) / MB, 1),
        "rss_mb_max": round(max(sum(r.rss_bytes) for r in runs) / MB, 1),
        "out_kb": round(runs[0].out_bytes / 1024, 1),
        "background_cores": round(runs[0].background_cores, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=40, help="images per resize run (40)")
    parser.add_argument("--extra-n", type=int, default=12, help="images per run of the other workloads (12)")
    parser.add_argument("--passes", type=int, default=3, help="passes over the resize workloads (3)")
    parser.add_argument("--extra-passes", type=int, default=2, help="passes over the other workloads (2)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--latency-n", type=int, default=8, help="sequential requests on the idle server (8)")
    parser.add_argument("--workloads", default=",".join(w.name for w in WORKLOADS))
    parser.add_argument(
        "--retouch-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for retouch serve, e.g. RETOUCH_WORKER_NICE=0 (repeatable; shown in the report)",
    )
    parser.add_argument("--name", default="peers")
    args = parser.parse_args()

    chosen = [w for w in WORKLOADS if w.name in args.workloads.split(",")]
    sets = ensure_inputs(args.n, args.extra_n)
    ensure_thumbor()
    # One origin serves the three input sets, each a symlink in a temp folder: jpeg/, jpeg444/, png/.
    serve_root = Path(tempfile.mkdtemp(prefix="peers-origin-", dir=corpus.CORPUS_DIR.parent))
    (serve_root / "jpeg").symlink_to(corpus.CORPUS_DIR.resolve())
    (serve_root / "jpeg444").symlink_to(corpus.corpus_dir("444").resolve())
    (serve_root / "png").symlink_to(PNG_DIR.resolve())
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    info = machine_info(("fastapi", "uvicorn", "httpx", "simplejpeg", "pillow"))
    results: dict[str, dict[str, list[Run]]] = {w.name: {} for w in chosen}
    try:
        with file_server(serve_root) as origin:
            for p in range(max(args.passes, args.extra_passes)):
                for wl in chosen:
                    if p >= (args.extra_passes if wl.extra else args.passes):
                        continue
                    images, warmup = sets[wl.corpus]
                    images = images[: args.extra_n] if wl.extra else images[: args.n]
                    services = ["retouch", "thumbor"] + (["pyvips"] if wl.pyvips else [])
                    shift = p % len(services)
                    for service in services[shift:] + services[:shift]:
                        if service == "pyvips":
                            run = run_pyvips(wl, images, warmup, args.workers)
                        else:
                            lat = args.latency_n if (service == "retouch" and wl.name == "resize-420") else 0
                            env = dict(kv.split("=", 1) for kv in args.retouch_env)
                            run = run_http(service, wl, images, warmup, origin, args.clients, args.workers, lat, env)
                        results[wl.name].setdefault(service, []).append(run)
                        print(
                            f"pass {p + 1} {wl.name:<11} {service:<8} {run.img_per_s:6.1f} img/s "
                            f"cpu {1000 * run.cpu_s / run.images:6.1f} ms/img rss {sum(run.rss_bytes) / MB:6.0f} MB "
                            f"bg {run.background_cores:.2f}",
                            flush=True,
                        )
            inproc = None
            if "resize-420" in results:
                images, warmup = sets["420"]
                inproc = inproc_latency(images[: args.latency_n], warmup)
    finally:
        shutil.rmtree(serve_root, ignore_errors=True)

    report = build_report(args, chosen, results, inproc, info, started)
    write_results(report, args.name, markdown)


def build_report(
    args: argparse.Namespace,
    chosen: list[Workload],
    results: dict[str, dict[str, list[Run]]],
    inproc: Run | None,
    info: dict[str, Any],
    started: str,
) -> dict[str, Any]:
    rows = []
    for wl in chosen:
        by = results[wl.name]
        n_pass = len(by["retouch"])
        ratio_t = [by["retouch"][i].img_per_s / by["thumbor"][i].img_per_s for i in range(n_pass)]
        ratio_v = [by["retouch"][i].img_per_s / by["pyvips"][i].img_per_s for i in range(n_pass)] if wl.pyvips else []
        best = {s: max(runs, key=lambda r: r.img_per_s) for s, runs in by.items()}
        rows.append(
            {
                "workload": wl.name,
                "corpus": wl.corpus,
                "services": {s: summary([best[s], *runs]) for s, runs in by.items()},
                "passes": {s: [round(r.img_per_s, 2) for r in runs] for s, runs in by.items()},
                "vs_thumbor": [round(x, 2) for x in ratio_t],
                "vs_pyvips": [round(x, 2) for x in ratio_v],
            }
        )
    latency = None
    if inproc is not None:
        idle = results["resize-420"]["retouch"][0].extra["idle_latencies_s"]
        idle = [x for r in results["resize-420"]["retouch"] for x in r.extra["idle_latencies_s"]]
        latency = {
            "idle_http_p50_ms": round(1000 * percentile(idle, 50), 1),
            "inproc_p50_ms": round(1000 * percentile(inproc.latencies_s, 50), 1),
        }
        latency["ratio"] = round(latency["idle_http_p50_ms"] / latency["inproc_p50_ms"], 2)
    return {
        "name": args.name,
        "started": started,
        "command": "bench/bench_peers.py " + " ".join(sys.argv[1:]),
        "machine": info,
        "thumbor": THUMBOR_VERSION,
        "args": vars(args),
        "corpora": {
            "420": corpus.describe(corpus.ensure_corpus(args.n)[0]),
            "444": corpus.describe(corpus.ensure_corpus(args.n, chroma="444")[0], "444"),
        },
        "rows": rows,
        "latency": latency,
    }


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def _ratios(values: list[float]) -> str:
    return f"{_spread(values)} ({', '.join(f'{x:.2f}' for x in values)})" if values else ""


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# retouch, thumbor and raw pyvips side by side",
        "",
        f"Run {report['started']} with `{report['command']}`.",
        "",
        *machine_lines(report["machine"], ("fastapi", "uvicorn", "httpx", "simplejpeg", "pillow")),
        f"- thumbor {report['thumbor']} (Pillow engine, its own virtualenv, quality 85, baseline JPEG, "
        "RESPECT_ORIENTATION), `--processes 2`; retouch `serve --workers 2`; 4 HTTP clients; URL inputs from a "
        "loopback file server. raw pyvips: `thumbnail_buffer` + `jpegsave_buffer` in a spawn pool of 2 (no HTTP).",
    ]
    for key, c in report["corpora"].items():
        mean = c["mean_bytes"] / 1e6
        lines.append(f"- Corpus {key}: {c['count']} x {c['size']} {c['format']}, mean {mean:.2f} MB, set `{c['set']}`.")
    lines += [
        "",
        "| workload | service | img/s (best pass) | all passes | server CPU ms/img | p50 ms "
        "| server tree RSS MB (max over passes) | out KB | retouch ÷ thumbor per pass | retouch ÷ pyvips per pass |",
        "|---|---|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for row in report["rows"]:
        for service, s in row["services"].items():
            first = service == "retouch"
            passes = ", ".join(f"{x:.1f}" for x in row["passes"][service])
            vs_t = _ratios(row["vs_thumbor"]) if first else ""
            vs_v = _ratios(row["vs_pyvips"]) if first else ""
            lines.append(
                f"| {row['workload'] if first else ''} | {service} | {s['img_per_s']:.1f} | {passes} | "
                f"{s['cpu_ms_per_img']:.0f} | {s['p50_ms']:.0f} | {s['rss_mb']:.0f} ({s['rss_mb_max']:.0f}) | "
                f"{s['out_kb'] or '–'} | {vs_t} | {vs_v} |"
            )
    lines += ["", "Targets of the issue (median of the per-pass ratios; spread in brackets):", ""]
    for row in report["rows"]:
        med_t = statistics.median(row["vs_thumbor"])
        want = 1.3 if row["workload"].startswith("resize") else 1.0
        verdict = "met" if med_t >= want else "NOT met"
        spread = _spread(row["vs_thumbor"])
        line = f"- {row['workload']}: retouch ÷ thumbor {med_t:.2f} ({spread}), target ≥ {want}: {verdict}"
        if row["vs_pyvips"]:
            med_v = statistics.median(row["vs_pyvips"])
            verdict = "met" if med_v >= 1.5 else "NOT met"
            line += f"; retouch ÷ raw pyvips {med_v:.2f} ({_spread(row['vs_pyvips'])}), target ≥ 1.5: {verdict}"
        rss = row["services"]["retouch"]["rss_mb_max"]
        line += f"; retouch server tree peak RSS {rss:.0f} MB (target ≤ 300: {'met' if rss <= 300 else 'NOT met'})"
        lines.append(line + ".")
    lat = report.get("latency")
    if lat:
        lines += [
            "",
            f"Sync latency, one 12 MP image (4:2:0) on an idle retouch server: p50 {lat['idle_http_p50_ms']:.0f} ms "
            f"round trip against {lat['inproc_p50_ms']:.0f} ms for `retouch.edit()` in one process: "
            f"{lat['ratio']:.2f}x (target ≤ 1.2x).",
        ]
    lines += [
        "",
        "How to read it: img/s = images / wall time from the first request to the last answer, fresh server per run, "
        "warmed with 2 images per client first. Ratios are within a pass (the services of one pass ran within a "
        "minute of each other, order rotating), so they hold better than the absolute figures on a shared machine. "
        "Server CPU and RSS: the server's whole process tree from /proc (retouch: API process, download process, "
        "2 image workers; thumbor: the supervisor and its 2 forks); RSS is the sum of VmHWM.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    main()
