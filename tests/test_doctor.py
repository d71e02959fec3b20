"""`retouch doctor`, run as an operator runs it: each failure it exists to catch, caught and named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import free_port


def doctor(home: Path, *args: str, **env: str) -> tuple[int, list[dict[str, Any]]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RETOUCH_")}
    done = subprocess.run(
        [sys.executable, "-m", "retouch", "doctor", "--json", *args],
        capture_output=True,
        text=True,
        env={**clean, "RETOUCH_HOME": str(home), **env},
        timeout=120,
    )
    assert not done.stderr.strip() or "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def by_name(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in checks}


def test_a_healthy_installation_passes_and_loads_every_model(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path)
    found = by_name(checks)
    assert code == 0, [c for c in checks if c["status"] != "ok"]
    assert found["encode .avif"]["status"] == "ok"
    assert found["libraries for resizing.fit.outpaint"]["status"] == "ok"
    for model in ("u2netp", "centerface", "ppocr_det", "waifu2x", "style_transform"):
        assert found[f"model {model}"]["status"] == "ok" and "loads in" in found[f"model {model}"]["detail"]
    assert found["/dev/shm"]["status"] in ("ok", "warn") and "MB" in found["/dev/shm"]["detail"]
    assert found["schema"]["status"] == "ok"
    # The human form says the same, one line each and a summary, exit 0.
    text = subprocess.run(
        [sys.executable, "-m", "retouch", "doctor", "--quick"],
        capture_output=True,
        text=True,
        env={**os.environ, "RETOUCH_HOME": str(tmp_path)},
        timeout=120,
    )
    assert text.returncode == 0 and "0 failed" in text.stdout and "found (not loaded: --quick)" in text.stdout


def test_what_an_operator_gets_wrong_is_named(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    garbage = tmp_path / "u2netp.onnx"
    garbage.write_bytes(b"not a network")
    dead = free_port()  # nothing listens there
    code, checks = doctor(
        tmp_path / "home",
        RETOUCH_EXECUTOR="celery",
        RETOUCH_BROKER_URL=f"redis://:hunter2@127.0.0.1:{dead}/0",
        RETOUCH_DATABASE_URL=f"postgresql+psycopg://retouch:hunter2@127.0.0.1:{dead}/retouch",
        RETOUCH_LOCAL_STORAGE_ROOTS=str(not_a_folder),
        RETOUCH_FETCH_ALLOW_HOSTS="0.0.0.0/0,169.254.0.0/16,files.internal:8080,10.1.2.3",
        RETOUCH_MODEL_U2NETP=str(garbage),
    )
    found = by_name(checks)
    assert code == 1
    assert found["broker"]["status"] == "fail" and f"127.0.0.1:{dead}" in found["broker"]["detail"]
    assert found["rate limits"]["status"] == "fail"  # the same Redis serves the shared rate limits
    assert found["reachable"]["status"] == "fail"
    assert found["local storage root"]["status"] == "fail" and "not writable" in found["local storage root"]["detail"]
    assert found["model u2netp"]["status"] == "fail" and "does not load" in found["model u2netp"]["detail"]
    assert found["0.0.0.0/0"]["status"] == "warn"
    assert found["169.254.0.0/16"]["status"] == "warn" and "metadata" in found["169.254.0.0/16"]["detail"]
    assert found["files.internal:8080"]["status"] == "ok"
    assert found["10.1.2.3"]["status"] == "ok"
    assert "hunter2" not in json.dumps(checks)  # passwords in URLs are never printed


def test_an_unreadable_allow_list_fails(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path, "--quick", RETOUCH_FETCH_ALLOW_HOSTS="http://bad/path")
    assert code == 1
    assert by_name(checks)["RETOUCH_FETCH_ALLOW_HOSTS"]["status"] == "fail"
