"""Wall and CPU time of ``fit: outpaint`` on 1-MP pictures extended by 20% (the budget: 2 s on two cores).

The whole edit is timed as a user gets it (decode, fill, PNG-free JPEG encode) through ``retouch.edit``, in
one process, after one warm-up run (PatchMatch's library load), best and median of N runs. The load average
of the machine is written next to the figures: on a shared machine they are upper bounds. Run from the
repository root:

    .venv/bin/python bench/bench_outpaint.py        # writes bench/results/outpaint.md and outpaint.json
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyvips

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import write_results  # noqa: E402
from tests.pipeline.outpaint_scenes import gradient, studio, textured  # noqa: E402

OPS = {"resizing": {"fit": {"type": "outpaint", "outpaint_by": "20%"}}}


def _jpeg(image: np.ndarray) -> bytes:
    data: bytes = pyvips.Image.new_from_array(image, interpretation="srgb").jpegsave_buffer(Q=90)
    return data


def inputs() -> dict[str, bytes]:
    photo = pyvips.Image.new_from_file(str(ROOT / "tests" / "fixtures" / "photo_large.jpg")).thumbnail_image(1224)
    return {
        "studio backdrop 1155x866 (plain fill)": _jpeg(studio(1155, 866)),
        "lit gradient 1155x866 (plain fill)": _jpeg(gradient(1155, 866)),
        "gravel 1155x866 (PatchMatch)": _jpeg(textured(1155, 866)),
        "coffee photo 1224x816 (PatchMatch)": photo.jpegsave_buffer(Q=90),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5, help="measured runs per picture")
    parser.add_argument("--name", default="outpaint")
    args = parser.parse_args()

    import retouch
    from retouch.pipeline import configure_vips

    configure_vips(threads=2)
    rows: list[dict[str, Any]] = []
    for name, data in inputs().items():
        retouch.edit(data, OPS, {"format": "jpeg"})  # warm-up
        walls, cpus = [], []
        for _ in range(args.n):
            cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            out = retouch.edit(data, OPS, {"format": "jpeg"})
            wall = time.perf_counter() - wall0
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            walls.append(wall)
            cpus.append(cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime)
        row = {
            "picture": name,
            "output": f"{out.width}x{out.height}",
            "best_s": round(min(walls), 3),
            "median_s": round(statistics.median(walls), 3),
            "cpu_median_s": round(statistics.median(cpus), 3),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        rows.append(row)
        print(row, flush=True)

    header = [
        "# fit outpaint: 1-MP pictures extended by 20% (`outpaint_by: 20%`)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.n} runs after a warm-up, `retouch.edit` in one process, vips threads 2. Budget: 2 s.",
        "The load average is the machine's while the row ran (other jobs shared its 2 cores).",
        "",
        "| picture | output | best (s) | median (s) | CPU median (s) | load avg |",
        "|---|---|---|---|---|---|",
    ]
    keys = ("picture", "output", "best_s", "median_s", "cpu_median_s", "load_avg_1m")
    lines = ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    text = "\n".join(header + lines) + "\n"
    write_results({"rows": rows}, args.name, lambda _report: text)


if __name__ == "__main__":
    main()
