"""Issue 13: logs an operator can use. `retouch serve` with RETOUCH_LOG_FORMAT=json writes one JSON object per
line; every request has an access line with its request id and the account's name (never the key), and a line
the image worker writes for that request carries the same request id."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.api.test_jobs import wait_done
from tests.conftest import FIXTURES, free_port, wait_healthy


def test_json_lines_with_request_id_and_account(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "RETOUCH_HOME": str(tmp_path / "home"), "RETOUCH_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "retouch", "serve", "--port", str(port), "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        key = [proc.stdout.readline() for _ in range(2)][1].strip()
        wait_healthy(port)
        auth = {"Authorization": f"Bearer {key}", "X-Request-ID": "trace-me-42"}
        files = {"file": ("junk.jpg", (FIXTURES / "garbage.jpg").read_bytes())}
        refused = httpx.post(f"http://127.0.0.1:{port}/v1/image/edit/upload", files=files, headers=auth, timeout=60)
        assert refused.status_code == 422 and refused.headers["x-request-id"] == "trace-me-42"
        keyless = httpx.get(f"http://127.0.0.1:{port}/v1/storage/storages")
        assert keyless.status_code == 401
        # An async task's item runs later, in a worker, for no request: its lines carry the id that created it.
        shutil.copy(FIXTURES / "garbage.jpg", tmp_path / "home" / "storage" / "default" / "junk.jpg")
        later = {"Authorization": f"Bearer {key}", "X-Request-ID": "trace-async-7"}
        body = {"input": "storage://local/junk.jpg", "operations": {}}
        task = httpx.post(f"http://127.0.0.1:{port}/v1/image/edit/async", json=body, headers=later, timeout=60)
        assert task.status_code == 200, task.text
        with httpx.Client(headers=later) as client:
            assert wait_done(client, task.json()["data"]["result_url"])["status"] == "ERROR"
        time.sleep(0.5)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert len(lines) == len([line for line in err.splitlines() if line.strip()]), err[-2000:]  # all JSON
    mine = [line for line in lines if line.get("request_id") == "trace-me-42"]
    access = [line for line in mine if line["logger"] == "retouch.access"]
    assert access and access[0]["status"] == 422 and access[0]["account"] == "default", mine
    assert access[0]["path"] == "/v1/image/edit/upload" and access[0]["time"].endswith("Z")
    worker = [line for line in mine if line["logger"] == "retouch.work"]
    assert worker and worker[0]["account"] == "default" and "not edited" in worker[0]["message"], mine
    assert any(line["logger"] == "retouch.access" and line["status"] == 401 for line in lines)
    item = [line for line in lines if line.get("request_id") == "trace-async-7" and line["logger"] == "retouch.work"]
    assert item and item[0]["account"] == "default" and item[0]["task_id"] and item[0]["item_id"], lines[-10:]
    assert key not in err and key[3:] not in err


def test_text_lines_carry_the_ids() -> None:
    import logging

    from retouch.logs import TextFormatter, _WithIds, bind

    record = logging.makeLogRecord(
        {"name": "retouch.work", "levelname": "INFO", "msg": "not edited: %s", "args": ("x",)}
    )
    with bind(request_id="r-1", account="acme", task_id=7, item_id=9):
        _WithIds().filter(record)
    line = TextFormatter().format(record)
    assert line.endswith("INFO retouch.work [r-1 acme task 7/item 9] not edited: x"), line
