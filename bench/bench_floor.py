"""The floor under the resize benchmarks: what the JPEG codecs alone cost per image, in one process on one core.

bench_peers.py compares whole services; this script measures the parts every one of them must pay, so a target
can be checked against physics before it is chased. On the 4:2:0 and the 4:4:4 corpus (12 MP -> 1000 px, q85):

  decode simplejpeg   libjpeg-turbo at the smallest DCT scale covering 1000 px (retouch's fast path)
  decode Pillow draft the same through Pillow's draft() (what thumbor's Pillow engine does)
  encode              the 1000 px result to JPEG q85 with libvips (retouch's encoder)
  retouch.edit()      the whole edit on the bytes, no service around it
  pyvips thumbnail    thumbnail_buffer + jpegsave_buffer (bench_peers' raw pyvips pool, per image)

CPU time per image (process_time), median over the files, repeated --repeats times; the process is pinned to CPU 0
and libvips runs one thread, as the image workers do.

    .venv/bin/python bench/bench_floor.py            # -> bench/results/floor.{md,json}, ~1 min
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import corpus
from common import machine_info, machine_lines, write_results

OPS = {"resizing": {"width": 1000}}
OUTPUT = {"format": {"type": "jpeg", "quality": 85, "progressive": False}}
STEPS = ["decode simplejpeg", "decode Pillow draft", "encode", "retouch.edit()", "pyvips thumbnail"]


def _steps(sample: bytes) -> dict[str, Callable[[bytes], object]]:
    import pyvips
    import simplejpeg
    from PIL import Image

    import retouch
    from retouch.pipeline import configure_vips

    configure_vips(threads=1)
    pixels = simplejpeg.decode_jpeg(sample, "RGB", min_width=1000, min_height=750)
    height, width, _ = pixels.shape

    def pillow_draft(data: bytes) -> object:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (1000, 750))
        image.load()
        return image

    return {
        "decode simplejpeg": lambda d: simplejpeg.decode_jpeg(d, "RGB", min_width=1000, min_height=750, strict=True),
        "decode Pillow draft": pillow_draft,
        "encode": lambda d: pyvips.Image.new_from_memory(pixels, width, height, 3, "uchar").jpegsave_buffer(Q=85),
        "retouch.edit()": lambda d: retouch.edit(d, OPS, OUTPUT),
        "pyvips thumbnail": lambda d: pyvips.Image.thumbnail_buffer(d, 1000).jpegsave_buffer(Q=85),
    }


def _median_ms(fn: Callable[[bytes], object], datas: list[bytes]) -> float:
    fn(datas[0])  # warm: first-call set-up is not per-image work
    times = []
    for data in datas:
        start = time.process_time()
        fn(data)
        times.append(time.process_time() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=16, help="files per corpus (16)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="floor")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    info = machine_info(("simplejpeg", "pillow"))
    results: dict[str, dict[str, list[float]]] = {}
    described = {}
    for chroma in ("420", "444"):
        images, _ = corpus.ensure_corpus(max(args.n, 40), chroma=chroma)
        datas = [p.read_bytes() for p in images[: args.n]]
        described[chroma] = corpus.describe(images[: args.n], chroma)
        steps = _steps(datas[0])
        results[chroma] = {name: [] for name in STEPS}
        for _ in range(args.repeats):
            for name in STEPS:
                results[chroma][name].append(round(_median_ms(steps[name], datas), 2))
        print(chroma, {k: v for k, v in results[chroma].items()}, flush=True)
    report = {"started": started, "machine": info, "n": args.n, "corpora": described, "ms": results}
    write_results(report, args.name, markdown)


def _span(values: list[float], digits: int = 1) -> str:
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return low if low == high else f"{low}–{high}"


def markdown(report: dict[str, Any]) -> str:
    ms = report["ms"]
    lines = [
        "# The floor: the JPEG codecs alone, one process on one core",
        "",
        f"Run {report['started']} with `bench/bench_floor.py`.",
        "",
        *machine_lines(report["machine"], ("simplejpeg", "pillow")),
        *(
            f"- Corpus {c}: {d['count']} x {d['size']} {d['format']}, set `{d['set']}`"
            for c, d in report["corpora"].items()
        ),
        "",
        f"CPU ms per image (median over {report['n']} files; the spread is over the repeats):",
        "",
        "| step | 4:2:0 | 4:4:4 |",
        "|---|---:|---:|",
        *(f"| {name} | {_span(ms['420'][name])} | {_span(ms['444'][name])} |" for name in STEPS),
        "",
    ]
    for chroma in ("420", "444"):
        edit, thumb = ms[chroma]["retouch.edit()"], ms[chroma]["pyvips thumbnail"]
        ratios = [t / e for t, e in zip(thumb, edit, strict=True)]
        lines.append(
            f"- {chroma}: `retouch.edit()` ÷ raw pyvips thumbnail, per repeat: {_span(ratios, 2)}× (the library alone, "
            "with no HTTP, download or hand-off: the most a service built on it can reach)."
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
