"""glibc malloc settings for image worker processes.

glibc serves an allocation above its mmap threshold (128 KB at start, raised only as such blocks are
freed) with a fresh ``mmap``, and every page of it is faulted in on first touch and unmapped again on
free. An image worker allocates the same multi-MB buffers for every image - the input's bytes, the
fetcher's socket reads, libvips' decode and encode buffers - so with the defaults it pays those page
faults again per image. With the threshold fixed at 32 MB those buffers come from the heap and are
reused: measured on the sync URL benchmark, image-worker CPU per 12 MP resize 51-52 -> 48 ms.

The heap holding on to more freed memory is the usual price (fragmentation is the most reported
production failure of libvips servers; docs/performance.md). Here it is bounded: blocks of 32 MB and more (model
activations, whole decoded 12 MP frames) are still mmapped and returned on free, the model paths
trim the heap after every call (``models.release_memory``), and the trim threshold keeps a heap
top above 128 MB from lingering. Measured, the worker's peak RSS did not move (batch, AI mixed worker).

Only in worker processes, and not when the operator chose their own allocator settings
(``GLIBC_TUNABLES``, any ``MALLOC_*`` variable, or an ``LD_PRELOAD`` such as jemalloc).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable

__all__ = ["libc_function", "tune_malloc"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 128 * 1024 * 1024


def libc_function(name: str) -> Callable[..., int] | None:
    """A glibc function by name (``mallopt``, ``malloc_trim``), or None on other C libraries (musl, macOS),
    whose allocators neither have nor need these knobs."""
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(path), name)
    except (OSError, AttributeError):
        return None
    return function


def _operator_chose() -> bool:
    return (
        "GLIBC_TUNABLES" in os.environ
        or any(name.startswith("MALLOC_") for name in os.environ)
        or "LD_PRELOAD" in os.environ
    )


def tune_malloc(arenas: int | None = None) -> bool:
    """Apply the settings above; True when they were applied (glibc, and no operator choice).

    ``arenas``: at most this many malloc arenas. glibc gives each thread that allocates an arena of its own (up to
    8 per core), and each keeps its freed buffers: the download process's threads each held their own 1 MiB
    socket reads, and its peak RSS grew 48 -> 76 MB under a 4-client run; with one arena it peaked at 60 MB for
    the same CPU (the threads mostly wait on sockets, so they hardly contend for it)."""
    if _operator_chose():
        return False
    mallopt = libc_function("mallopt")
    if mallopt is None:
        return False
    if arenas is not None and not mallopt(_M_ARENA_MAX, arenas):
        return False
    # mallopt returns 1 on success; setting the mmap threshold also ends glibc's dynamic adjustment.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
