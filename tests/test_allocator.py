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


_THREADS = """
import threading
from retouch.allocator import tune_malloc
assert tune_malloc({arenas}) is True

def rss_kb() -> int:
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])

turn = threading.Lock()
together = threading.Barrier(8)

def download() -> None:
    together.wait()  # all alive at once, as the download threads are (an exited thread's arena is reused)
    with turn:  # one buffer at a time
        buffer = bytearray(4 << 20)  # a few socket reads' worth, touched
        del buffer
    together.wait()

before = rss_kb()
threads = [threading.Thread(target=download) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(rss_kb() - before)
"""


def _growth_kb(arenas: int | None) -> int:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "LD_PRELOAD")
    }
    code = _THREADS.format(arenas=arenas)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_one_arena_lets_threads_reuse_each_others_freed_buffers() -> None:
    # Each thread's own arena keeps its freed 4 MB (the heap is not trimmed below 128 MB): ~32 MB for 8 threads.
    # With one arena the next thread takes the block the last one freed.
    per_thread, shared = _growth_kb(None), _growth_kb(1)
    assert per_thread > 24 * 1024, per_thread
    assert shared < 10 * 1024, shared
