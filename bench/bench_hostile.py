"""Load test of the hostile-request defences (not a timed test): real users and junk senders at once.

One `retouch serve --workers 2`. At the same moment:

  - 200 sync edits of 12-megapixel JPEGs (width 1000, JPEG q85), all in flight together: half with a URL input on
    a loopback origin, half uploaded (multipart);
  - 20 clients that each declare a 50 MB JSON body and send no API key, streaming junk until answered.

Wanted (the hardening issue): no 5xx; the API process's RSS stays under 300 MB; every junk body is refused (401)
in under a second. The API process's RSS is sampled every 20 ms; the workers are reported separately.

    .venv/bin/python bench/bench_hostile.py             # -> bench/results/hostile-load.{md,json}
    .venv/bin/python bench/bench_hostile.py -n 40 --junk 5 --name hostile-smoke
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import corpus
import httpx
from common import (
    MB,
    file_server,
    machine_info,
    machine_lines,
    percentile,
    process_tree,
    retouch_server,
    vm_hwm,
    vm_rss,
    write_results,
)

JUNK_BYTES = 50 * 1024 * 1024


def junk_senders(port: int, count: int) -> list[dict[str, Any]]:
    """``count`` connections that each declare a 50 MB JSON body without a key and stream junk until answered,
    all driven by one thread of a process of their own (so the 200 edit threads' GIL does not delay them):
    seconds from connecting to the answer."""
    chunk = b"[" + b"1," * 32767 + b"1"
    conns: dict[socket.socket, dict[str, Any]] = {}
    for i in range(count):
        path = "/v1/image/edit" if i % 2 else "/v1/image/edit/batch"
        started = time.monotonic()
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setblocking(False)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {JUNK_BYTES}\r\n\r\n"
        )
        sock.sendall(head.encode())
        conns[sock] = {"started": started, "sent": 0, "answer": b"", "done": None}
    deadline = time.monotonic() + 60
    while any(c["done"] is None for c in conns.values()) and time.monotonic() < deadline:
        open_socks = [s for s, c in conns.items() if c["done"] is None]
        writers = [s for s in open_socks if conns[s]["sent"] < JUNK_BYTES]
        readable, writable, _ = select.select(open_socks, writers, [], 1)
        for sock in readable:
            state = conns[sock]
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            state["answer"] += data
            if not data or b"\r\n\r\n" in state["answer"]:
                state["done"] = time.monotonic()
        for sock in writable:
            state = conns[sock]
            if state["done"] is None:
                with contextlib.suppress(OSError):
                    state["sent"] += sock.send(chunk[: JUNK_BYTES - state["sent"]])
    results = []
    for sock, state in conns.items():
        sock.close()
        answer = state["answer"]
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
        took = (state["done"] or time.monotonic()) - state["started"]
        results.append({"status": status, "seconds": took, "sent_mb": state["sent"] / MB})
    return results


def edit_client(base: str, key: str, kind: str, image: Path, origin: str) -> dict[str, Any]:
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=600) as client:
        if kind == "url":
            body = {"input": f"{origin}/{image.name}", "operations": {"resizing": {"width": 1000}}}
            response = client.post(f"{base}/v1/image/edit", json=body, headers=headers)
        else:
            response = client.post(
                f"{base}/v1/image/edit/upload",
                files={"file": (image.name, image.read_bytes(), "image/jpeg")},
                data={"data": '{"operations": {"resizing": {"width": 1000}}}'},
                headers=headers,
            )
    return {"kind": kind, "status": response.status_code, "seconds": time.monotonic() - started}


def run(args: argparse.Namespace) -> dict[str, Any]:
    images, _warmup = corpus.ensure_corpus(min(args.n, 60))
    env = {"RETOUCH_FETCH_ALLOW_HOSTS": "127.0.0.1"}
    with (
        file_server(images[0].parent) as (fs_port, _fs_pid),
        retouch_server(args.procs, extra_env=env) as (
            base,
            key,
            pid,
        ),
    ):
        origin = f"http://127.0.0.1:{fs_port}"
        port = int(base.rsplit(":", 1)[1])
        # Warm up: each worker decodes one image, so start-up is not measured.
        for image in images[: args.procs * 2]:
            edit_client(base, key, "url", image, origin)
        idle_rss = vm_rss(pid) / MB
        samples: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(vm_rss(pid) / MB)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        with ThreadPoolExecutor(args.n) as threads:
            edits = [
                threads.submit(edit_client, base, key, "url" if i % 2 else "upload", images[i % len(images)], origin)
                for i in range(args.n)
            ]
            time.sleep(args.junk_delay)  # 0: the junk arrives in the same burst as the 200 edits
            junk = subprocess.run(
                [sys.executable, __file__, "--junk-only", str(port), str(args.junk)], capture_output=True, check=True
            )
            junk_results = json.loads(junk.stdout)
            edit_results = [f.result() for f in edits]
        wall = time.monotonic() - started
        stop.set()
        sampler.join()
        tree = process_tree(pid)
        workers_hwm = [vm_hwm(p) / MB for p in tree[1:]]
        api_hwm = vm_hwm(pid) / MB
    statuses: dict[str, int] = {}
    for result in edit_results:
        statuses[str(result["status"])] = statuses.get(str(result["status"]), 0) + 1
    latencies = [r["seconds"] for r in edit_results]
    return {
        "machine": machine_info(),
        "command": " ".join(sys.argv),
        "procs": args.procs,
        "edits": args.n,
        "junk_clients": args.junk,
        "junk_delay": args.junk_delay,
        "edit_statuses": statuses,
        "edits_5xx": sum(1 for r in edit_results if r["status"] >= 500),
        "edit_seconds": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "max": max(latencies)},
        "images_per_second": args.n / wall,
        "junk_statuses": sorted({r["status"] for r in junk_results}),
        "junk_seconds_max": max(r["seconds"] for r in junk_results),
        "junk_mb_sent_max": max(r["sent_mb"] for r in junk_results),
        "api_rss_mb": {"idle": idle_rss, "peak_sampled": max(samples), "vm_hwm": api_hwm},
        "workers_hwm_mb": workers_hwm,
        "wall_seconds": wall,
    }


def markdown(r: dict[str, Any]) -> str:
    rss = r["api_rss_mb"]
    ok = r["edits_5xx"] == 0 and rss["vm_hwm"] < 300 and r["junk_seconds_max"] < 1 and r["junk_statuses"] == [401]
    lines = [
        "# Hostile load: sync edits and keyless junk bodies at once",
        "",
        f"Run {r['machine']['date']} with `{r['command']}`.",
        "",
        *machine_lines(r["machine"], ("fastapi", "uvicorn", "httpx")),
        f"- {r['edits']} sync edits of 12 MP JPEGs (width 1000) in flight together, half URL input, half upload; "
        f"{r['junk_clients']} clients each declaring a 50 MB JSON body without a key, sent {r['junk_delay']:g} s after "
        f"the edits; {r['procs']} workers.",
        "",
        "| figure | value | wanted | result |",
        "|---|---:|---:|---|",
        f"| edits answered 5xx | {r['edits_5xx']} (statuses {r['edit_statuses']}) | 0 | "
        f"{'pass' if r['edits_5xx'] == 0 else 'FAIL'} |",
        f"| API process RSS: idle / peak sampled / VmHWM | {rss['idle']:.0f} / {rss['peak_sampled']:.0f} / "
        f"{rss['vm_hwm']:.0f} MB | < 300 MB | {'pass' if rss['vm_hwm'] < 300 else 'FAIL'} |",
        f"| junk bodies: answers, slowest | {r['junk_statuses']}, {r['junk_seconds_max'] * 1000:.0f} ms "
        f"(at most {r['junk_mb_sent_max']:.1f} MB of each sent) | 401, < 1 s | "
        f"{'pass' if r['junk_seconds_max'] < 1 and r['junk_statuses'] == [401] else 'FAIL'} |",
        f"| edit latency p50 / p95 / max | {r['edit_seconds']['p50']:.1f} / {r['edit_seconds']['p95']:.1f} / "
        f"{r['edit_seconds']['max']:.1f} s | info | - |",
        f"| throughput | {r['images_per_second']:.1f} img/s | info | - |",
        f"| workers' peak RSS | {', '.join(f'{m:.0f}' for m in r['workers_hwm_mb'])} MB | info | - |",
        "",
        f"Overall: {'pass' if ok else 'FAIL'}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--junk-only"]:
        print(json.dumps(junk_senders(int(sys.argv[2]), int(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="sync edits in flight together (default 200)")
    parser.add_argument("--junk", type=int, default=20, help="keyless 50 MB junk bodies (default 20)")
    parser.add_argument(
        "--junk-delay", type=float, default=0.0, help="seconds after the edits start that the junk is sent (default 0)"
    )
    parser.add_argument("--procs", type=int, default=2, help="server --workers (default 2)")
    parser.add_argument("--name", default="hostile-load", help="results file stem (default hostile-load)")
    args = parser.parse_args()
    write_results(run(args), args.name, markdown)


if __name__ == "__main__":
    main()
