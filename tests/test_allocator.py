"""The worker's malloc settings: applied on glibc, left alone when the operator chose their own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from retouch.allocator import tune_malloc


def test_applied_in_a_fresh_worker_like_process() -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "LD_PRELOAD")
    }
    code = "from retouch.allocator import tune_malloc; print(tune_malloc())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"  # CI and the Docker image run on glibc


@pytest.mark.parametrize(
    "name,value", [("GLIBC_TUNABLES", "glibc.malloc.arena_max=2"), ("MALLOC_ARENA_MAX", "2"), ("LD_PRELOAD", "x.so")]
)
def test_operator_settings_win(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    assert tune_malloc() is False
