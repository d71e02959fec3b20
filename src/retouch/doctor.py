"""`retouch doctor`: what an operator checks before (and after) the first request.

Each check answers ok, warn (works, but not as the operator probably wants) or fail (something the
service needs is missing or unreachable). The CLI prints them and exits 1 on any failure, so a
deployment's start script or a container healthcheck can run it.

Checks are plain functions over the settings; each catches its own errors, so one broken part never
hides the others.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from retouch.settings import Settings

__all__ = ["Check", "diagnose"]

Status = Literal["ok", "warn", "fail"]

# Below this, uploads and downloads no longer fit the RAM hand-off folder and stay in process memory
# (Docker's default /dev/shm is 64 MB; one 100 MB input would not fit).
SHM_WANTED = 256 * 1024 * 1024


@dataclass(frozen=True)
class Check:
    area: str
    name: str
    status: Status
    detail: str


def diagnose(settings: Settings, *, load_models: bool = True) -> list[Check]:
    """Every check, in the order an operator reads them."""
    found: list[Check] = []
    sections: list[tuple[str, Callable[[], Iterator[Check]]]] = [
        ("images", lambda: _image_stack(settings)),
        ("ai", lambda: _ai(settings, load_models)),
        ("memory", lambda: _memory(settings)),
        ("database", lambda: _database(settings)),
        ("broker", lambda: _broker(settings)),
        ("folders", lambda: _folders(settings)),
        ("allow-list", lambda: _allow_list(settings)),
    ]
    for area, section in sections:
        try:
            found.extend(section())
        except Exception as exc:  # a check that breaks is a finding, never a traceback
            found.append(Check(area, "check", "fail", f"{type(exc).__name__}: {exc}"))
    return found


def _image_stack(_settings: Settings) -> Iterator[Check]:
    import pyvips

    version = f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    yield Check("images", "libvips", "ok", version)
    for suffix in (".jpg", ".png", ".webp", ".avif", ".tif", ".gif"):
        try:
            (pyvips.Image.black(8, 8) + 1).write_to_buffer(suffix)
            yield Check("images", f"encode {suffix}", "ok", "")
        except pyvips.Error as exc:
            yield Check("images", f"encode {suffix}", "fail", str(exc).splitlines()[0])
    try:
        import pillow_heif

        yield Check("images", "decode .heic", "ok", f"pillow-heif {pillow_heif.__version__}")
    except ImportError:
        yield Check("images", "decode .heic", "fail", "pip install pillow-heif")


# The runtimes the AI operations import, and which operations need them.
_RUNTIMES = {
    "onnxruntime": "background, identity crop, car plates",
    "ncnn": "upscale, decompress",
    "cv2": "car plates",
}


def _ai(settings: Settings, load_models: bool) -> Iterator[Check]:
    import importlib
    import importlib.util

    from retouch import models

    for module, used_by in _RUNTIMES.items():
        try:
            runtime = importlib.import_module(module)
            yield Check("ai", f"runtime {module}", "ok", getattr(runtime, "__version__", "") or "")
        except ImportError:
            hint = f"not installed: {used_by} answer 422 ({models.INSTALL_HINT})"
            yield Check("ai", f"runtime {module}", "warn", hint)
    for operation, libraries in models.LIBRARIES.items():
        missing = [dist for module, dist in libraries.items() if importlib.util.find_spec(module) is None]
        status: Status = "warn" if missing else "ok"
        detail = f"missing {', '.join(missing)}: it answers 422" if missing else ", ".join(libraries.values())
        yield Check("ai", f"libraries for {operation}", status, detail)
    models.configure(threads=1, overrides=settings.model_overrides)
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    for operation, (name, package, _resource) in models.REQUIRED.items():
        if (name, package) in seen:
            continue
        seen.add((name, package))
        label = f"model {name}" if name not in names else f"model {name} ({package})"  # a second package
        names.add(name)
        try:
            models.require(operation)
        except models.ModelMissing as exc:
            yield Check("ai", label, "warn", str(exc))
            continue
        if not load_models:
            yield Check("ai", label, "ok", "found (not loaded: --quick)")
            continue
        began = time.perf_counter()
        try:
            _LOADERS[name]()
        except Exception as exc:  # a corrupt or incompatible file: the operation would fail on every image
            yield Check("ai", label, "fail", f"found but does not load: {type(exc).__name__}: {exc}")
            continue
        yield Check("ai", label, "ok", f"loads in {(time.perf_counter() - began) * 1000:.0f} ms")


def _load_u2netp() -> None:
    from retouch.models import background

    background.load()


def _load_centerface() -> None:
    from retouch.models import faces

    faces.load()


def _load_ppocr() -> None:
    from retouch.models import plates

    plates.load()


def _load_waifu2x() -> None:
    from retouch.models import superres

    superres.load_all()


def _load_style() -> None:
    from retouch.models import style

    style.load()


_LOADERS: dict[str, Callable[[], None]] = {
    "u2netp": _load_u2netp,
    "centerface": _load_centerface,
    "ppocr_det": _load_ppocr,
    "waifu2x": _load_waifu2x,
    "style_transform": _load_style,
}


def _memory(settings: Settings) -> Iterator[Check]:
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        yield Check("memory", "/dev/shm", "warn", "missing or not writable: uploads are kept in process memory")
    else:
        stat = os.statvfs(shm)
        size, free = stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize
        text = f"{size / 2**20:.0f} MB, {free / 2**20:.0f} MB free"
        if free < SHM_WANTED:
            hint = "inputs above it are kept in process memory; give the container more (docker: shm_size: 1g)"
            yield Check("memory", "/dev/shm", "warn", f"{text}: {hint}")
        else:
            yield Check("memory", "/dev/shm", "ok", text)
    cores = os.cpu_count() or 1
    workers = settings.workers or cores
    status: Status = "warn" if workers > 2 * cores else "ok"
    yield Check("memory", "workers", status, f"{workers} image workers on {cores} cores")


def _database(settings: Settings) -> Iterator[Check]:
    from sqlalchemy import text

    from retouch.stores.db import make_engine, schema_is_current

    url = settings.resolved_database_url
    shown = url.split("@")[-1]  # never print a password
    try:
        engine = make_engine(url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = schema_is_current(engine)
        engine.dispose()
    except Exception as exc:
        yield Check("database", "reachable", "fail", f"{shown}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return
    yield Check("database", "reachable", "ok", shown)
    if current:
        yield Check("database", "schema", "ok", "at the newest migration")
    else:
        yield Check("database", "schema", "fail", "behind the newest migration: run `retouch db upgrade`")


def _broker(settings: Settings) -> Iterator[Check]:
    if settings.executor != "celery":
        yield Check("broker", "executor", "ok", "local (no broker needed)")
    elif not settings.broker_url:
        yield Check("broker", "executor", "fail", "RETOUCH_EXECUTOR=celery needs RETOUCH_BROKER_URL")
    checked = (
        ("broker", settings.broker_url if settings.executor == "celery" else None),
        ("rate limits", settings.shared_redis_url),
    )
    for label, url in checked:
        if not url:
            continue
        if not url.startswith(("redis://", "rediss://")):
            yield Check("broker", label, "warn", f"{_without_password(url)}: only Redis URLs are checked")
            continue
        try:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            client.ping()
            client.close()
            yield Check("broker", label, "ok", _without_password(url))
        except Exception as exc:
            yield Check("broker", label, "fail", f"{_without_password(url)}: {type(exc).__name__}: {exc}")


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.split('@')[-1]}" if sep else url


def _folders(settings: Settings) -> Iterator[Check]:
    roots = [("home", settings.resolved_home)]
    roots += [("local storage root", root) for root in settings.storage_roots]
    for label, folder in roots:
        yield _writable(label, folder)
    if settings.tmp_storage:
        yield Check("folders", "tmp storage", "ok", f"{settings.tmp_storage} (checked by the service at start)")


def _writable(label: str, folder: Path) -> Check:
    """Writable for real: create and remove a file (os.access says yes on read-only mounts for root)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".retouch-doctor-"):
            pass
    except OSError as exc:
        return Check("folders", label, "fail", f"{folder}: not writable ({exc.strerror or exc})")
    return Check("folders", label, "ok", f"{folder}")


# Entries that let every account reach what the guard exists to protect.
_METADATA = ipaddress.ip_network("169.254.169.254/32")


def _allow_list(settings: Settings) -> Iterator[Check]:
    from retouch.net.guard import FetchPolicy

    entries = tuple(settings.fetch_allow_hosts)
    if not entries:
        yield Check("allow-list", "RETOUCH_FETCH_ALLOW_HOSTS", "ok", "empty: URL inputs reach public addresses only")
        return
    try:
        FetchPolicy(allow_hosts=entries)
    except ValueError as exc:
        yield Check("allow-list", "RETOUCH_FETCH_ALLOW_HOSTS", "fail", str(exc))
        return
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            yield Check("allow-list", entry, "ok", "a host name: admitted whatever it resolves to")
            continue
        if network.version == 4 and network.overlaps(_METADATA):
            yield Check("allow-list", entry, "warn", "admits the cloud metadata address 169.254.169.254")
        elif network.prefixlen < (16 if network.version == 4 else 48):
            yield Check(
                "allow-list",
                entry,
                "warn",
                f"admits {network.num_addresses:,} addresses: every account may fetch from all of them",
            )
        else:
            yield Check("allow-list", entry, "ok", f"{network.num_addresses:,} address(es)")
