"""Kill the server (SIGKILL, whole process group) in the middle of a batch, start it again: the batch
completes, every input exactly once in the results, no partial output file. Stop it (SIGTERM) while items wait on
their origin: none of them fails, the next start runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pyvips

from tests.conftest import FIXTURES, free_port, wait_healthy
from tests.servers.origins import GatedOrigin

ITEMS = 60


def _start(home: Path, port: int, **settings: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "RETOUCH_HOME": str(home),
        "RETOUCH_RATE_LIMIT_PER_MINUTE": "0",
        "RETOUCH_RATE_LIMIT_PER_SECOND": "0",
        **settings,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "retouch", "serve", "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    wait_healthy(port)
    return proc


def _get(port: int, key: str, task_id: int) -> dict[str, Any]:
    response = httpx.get(
        f"http://127.0.0.1:{port}/v1/image/edit/batch/{task_id}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    data: dict[str, Any] = response.json()["data"]
    return data


def _until_ended(port: int, key: str, task_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (view := _get(port, key, task_id))["status"] not in ("DONE", "ERROR"):
        assert time.monotonic() < deadline, view["progress"]
        time.sleep(0.2)
    return view


def test_sigkill_mid_batch_then_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    proc = _start(home, port)
    key = (home / "initial-api-key").read_text().strip()
    folder = home / "storage" / "default" / "in"
    folder.mkdir(parents=True)
    data = (FIXTURES / "photo_large.jpg").read_bytes()
    for i in range(ITEMS):
        (folder / f"img-{i:03d}.jpg").write_bytes(data)
    body = {
        "input": "storage://local/in/",
        "operations": {"resizing": {"width": 800}, "adjustments": {"hdr": 60}},
        "output": "storage://local/out/",
    }
    try:
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/image/edit/batch",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        task_id = response.json()["data"]["id"]
        deadline = time.monotonic() + 60
        while _get(port, key, task_id)["progress"]["done"] < 8:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the API process and its workers, mid-item
        proc.wait(timeout=10)
    before = _get_offline_done(home)
    assert before < ITEMS, "the batch finished before the kill; the test proves nothing"

    proc = _start(home, port)
    try:
        view = _until_ended(port, key, task_id, timeout=120)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert view["status"] == "DONE", view["errors"]
    assert view["progress"] == {"total": ITEMS, "done": ITEMS, "failed": 0}
    sources = [r["output_object"]["claid_storage_uri"] for r in view["results"]]
    assert len(sources) == ITEMS and len(set(sources)) == ITEMS
    out = home / "storage" / "default" / "out"
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == [f"img-{i:03d}.jpg" for i in range(ITEMS)]
    for path in out.iterdir():
        if path.name.startswith("."):
            continue  # a temp file of a write cut by SIGKILL: hidden, never listed, never a result
        image = pyvips.Image.new_from_file(str(path), fail_on="truncated")
        assert image.width == 800 and image.avg() > 0  # decodes completely


def test_sigterm_while_inputs_download_then_restart(tmp_path: Path) -> None:
    """A stop while batch items wait on a slow origin - some downloading, some waiting for a download slot - fails
    none of them: they go back to the store, and the next start runs each once. (Before, the downloads cut off by
    the stop failed their items with "the download process stopped".)"""
    home = tmp_path / "home"
    port = free_port()
    settings = {"RETOUCH_FETCH_ALLOW_HOSTS": "127.0.0.1", "RETOUCH_FETCH_PER_HOST": "2"}
    origin = GatedOrigin((FIXTURES / "coffee.jpg").read_bytes())
    proc = _start(home, port, **settings)
    try:
        key = (home / "initial-api-key").read_text().strip()
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/image/edit/batch",
            json={
                "input": [origin.url(f"g{k}.jpg") for k in range(8)],
                "operations": {"resizing": {"width": 200}},
                "output": "storage://local/gated/",
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        task_id = response.json()["data"]["id"]
        deadline = time.monotonic() + 30
        while len(origin.requests) < 2:  # two downloads in flight (the per-host limit), the rest wait
            assert time.monotonic() < deadline, origin.requests
            time.sleep(0.05)
        time.sleep(0.3)
        assert _count(home, "RUNNING") >= 2
        stopping = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)  # -15: uvicorn shuts down gracefully, then re-raises the signal it caught
        stopped = time.monotonic() - stopping
        # Downloads in flight are not waited for (their items go back): well inside the 30-s fetch timeout.
        assert stopped < 10, stopped
        assert _count(home, "ERROR") == 0
        assert _count(home, "RUNNING") == 0  # given back, not left to a lease
        origin.gate.set()
        proc = _start(home, port, **settings)
        view = _until_ended(port, key, task_id, timeout=60)
    finally:
        origin.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    assert view["status"] == "DONE", view["errors"]
    assert view["progress"] == {"total": 8, "done": 8, "failed": 0}
    names = sorted(p.name for p in (home / "storage" / "default" / "gated").iterdir() if not p.name.startswith("."))
    assert names == [f"g{k}.jpg" for k in range(8)]


def test_sigterm_mid_item_gives_it_back_without_counting_an_attempt(tmp_path: Path) -> None:
    """An item running past the API's 2-s drain when the server stops is killed and given back: PENDING, its
    attempt not counted (three restarts during one long item used to fail it as a poison input), nothing ERROR."""
    home = tmp_path / "home"
    port = free_port()
    proc = _start(home, port)
    try:
        key = (home / "initial-api-key").read_text().strip()
        folder = home / "storage" / "default" / "slow"
        folder.mkdir(parents=True)
        for k in range(2):
            (folder / f"s{k}.jpg").write_bytes((FIXTURES / "photo_large.jpg").read_bytes())  # 2400x1600
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/image/edit/batch",
            # A 2x neural enlargement of 3.8 MP: about a minute of CPU per item (4 s at 0.24 MP), far past the drain.
            json={
                "input": "storage://local/slow/",
                "operations": {"restorations": {"upscale": "smart_enhance"}, "resizing": {"width": 3600}},
                "output": "storage://local/slow-out/",
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 60
        while _begun(home) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert _count(home, "ERROR") == 0 and _count(home, "RUNNING") == 0
    assert _count(home, "DONE") == 0, "an item finished within the drain: the test proves nothing"
    assert _attempts(home) == 0


def _query(home: Path, sql: str, *args: str) -> int:
    import sqlite3

    db = sqlite3.connect(home / "retouch.db")
    try:
        return int(db.execute(sql, args).fetchone()[0] or 0)
    finally:
        db.close()


def _begun(home: Path) -> int:
    return _query(home, "SELECT count(*) FROM items WHERE started_at IS NOT NULL")


def _attempts(home: Path) -> int:
    return _query(home, "SELECT sum(attempts) FROM items")


def _count(home: Path, status: str) -> int:
    return _query(home, "SELECT count(*) FROM items WHERE status = ?", status)


def _get_offline_done(home: Path) -> int:
    return _count(home, "DONE")
