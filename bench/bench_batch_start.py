"""How soon a batch's first item starts after its POST (issue 14: within 100 ms on a ready server).

A `retouch serve` with 2 workers; its `storage://local/` holds a folder of 10 camera JPEGs from the bench corpus.
Each run POSTs a batch of that folder, waits for DONE, and reads from the server's own database when the task was
created and when its first item started (both stamped by the server's clock, which is this machine's). The client
side is measured too: the POST's send time to the first item's start.

Two cases: the first batch right after `/readyz` answers (the workers may still be importing the image stack),
and then batches on the warm server. Results: bench/results/batch-start.{md,json}.

    .venv/bin/python bench/bench_batch_start.py            # ~1 min
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import corpus
import httpx
from common import machine_info, machine_lines, retouch_server, write_results

TARGET_MS = 100.0


def _stamp(text: str) -> float:
    """A stored time (SQLite keeps them as naive UTC text) as epoch seconds."""
    value = datetime.fromisoformat(text)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _first_start(db: Path, task_id: int) -> tuple[float, float]:
    with sqlite3.connect(db) as conn:
        created = conn.execute("SELECT created_at FROM tasks WHERE id = ?", (task_id,)).fetchone()[0]
        first = conn.execute("SELECT MIN(started_at) FROM items WHERE task_id = ?", (task_id,)).fetchone()[0]
    return _stamp(created), _stamp(first)


def run(runs: int, images: int) -> dict[str, Any]:
    paths, _warm = corpus.ensure_corpus(images)
    home = Path(tempfile.mkdtemp(prefix="batch-start-"))
    folder = home / "storage" / "default" / "photos"
    folder.mkdir(parents=True)
    for path in paths[:images]:
        shutil.copy(path, folder / path.name)
    rows: list[dict[str, float | str]] = []
    try:
        with retouch_server(2, home=home) as (base, key, _pid):
            ready = time.monotonic() + 60
            while httpx.get(f"{base}/readyz", timeout=5).status_code != 200:
                assert time.monotonic() < ready, "the server never became ready"
                time.sleep(0.05)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
                for index in range(runs):
                    sent = time.time()
                    body = {
                        "input": "storage://local/photos/",
                        "operations": {"resizing": {"width": 1000}},
                        "output": f"storage://local/out-{index}/",
                    }
                    answer = client.post("/v1/image/edit/batch", json=body)
                    answer.raise_for_status()
                    task_id = answer.json()["data"]["id"]
                    url = answer.json()["data"]["result_url"]
                    while client.get(url).json()["data"]["status"] not in ("DONE", "ERROR"):
                        time.sleep(0.05)
                    created, first = _first_start(home / "retouch.db", task_id)
                    case = "first batch after /readyz" if index == 0 else "warm server"
                    rows.append(
                        {
                            "case": case,
                            "post_to_first_ms": (first - sent) * 1000,
                            "created_to_first_ms": (first - created) * 1000,
                        }
                    )
                    time.sleep(0.5)  # let the pool go idle between runs
    finally:
        shutil.rmtree(home, ignore_errors=True)
    warm = [float(r["post_to_first_ms"]) for r in rows[1:]]
    return {
        "machine": machine_info(),
        "images_per_batch": images,
        "runs": rows,
        "first_after_ready_ms": round(float(rows[0]["post_to_first_ms"]), 1),
        "warm_median_ms": round(statistics.median(warm), 1),
        "warm_max_ms": round(max(warm), 1),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Batch start: POST to the first item's start",
        "",
        *machine_lines(report["machine"]),
        "",
        f"`retouch serve --workers 2`, a batch of {report['images_per_batch']} 12 MP JPEGs from `storage://local/`.",
        "",
        "| run | case | POST → first item started (ms) | task created → first item started (ms) |",
        "|---:|---|---:|---:|",
    ]
    for index, row in enumerate(report["runs"]):
        lines.append(f"| {index} | {row['case']} | {row['post_to_first_ms']:.1f} | {row['created_to_first_ms']:.1f} |")
    met = "met" if report["warm_max_ms"] <= TARGET_MS else "NOT met"
    lines += [
        "",
        f"- Warm server: median {report['warm_median_ms']} ms, worst {report['warm_max_ms']} ms "
        f"(target ≤ {TARGET_MS:.0f} ms: {met}).",
        f"- First batch right after /readyz: {report['first_after_ready_ms']} ms.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--name", default="batch-start")
    args = parser.parse_args()
    write_results(run(args.runs, args.images), args.name, markdown)


if __name__ == "__main__":
    main()
