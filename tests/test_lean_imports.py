"""Each process of `retouch serve` imports only what it runs (docs/performance.md, "Memory").

The API process hands jobs over without the image stack; an image worker runs sync edits without SQLAlchemy,
httpx or cryptography (they load with the first database or storage use); the download process fetches URLs
without the database. Each of these was ~25-35 MB per process; a stray top-level import brings it back
silently, so each is checked in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

IMAGE_STACK = ["pyvips", "numpy", "simplejpeg", "onnxruntime", "ncnn", "PIL"]
DATABASE_AND_NETWORK = ["sqlalchemy", "httpx", "cryptography", "boto3"]
HTTPX_CLI = ["click", "rich", "pygments"]  # what httpx's command-line client would pull in


def _loaded(statement: str, watched: list[str]) -> list[str]:
    # (a None entry is a blocked import, not a loaded module: retouch/__init__.py blocks httpx's CLI)
    names = "{m.split('.')[0] for m, module in sys.modules.items() if module is not None}"
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted({names})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    return [name for name in watched if name in modules]


@pytest.mark.parametrize(
    "module", ["retouch.api.app", "retouch.bootstrap", "retouch.service", "retouch.executors.router"]
)
def test_the_api_process_does_not_load_the_image_stack(module: str) -> None:
    assert _loaded(f"import {module}", IMAGE_STACK + HTTPX_CLI) == []


def test_an_image_worker_loads_no_database_or_network_library_until_it_needs_one() -> None:
    # What a pool worker imports at start (init_worker pre-imports the runner) before its first job.
    assert _loaded("import retouch.work.runner, retouch.work.entry, retouch.work.output", DATABASE_AND_NETWORK) == []


def test_the_download_process_loads_no_database_until_a_storage_input_comes() -> None:
    # It gets its settings pickled (and its fetch policy as a plain dataclass): pydantic, too, loads only with the
    # storages.
    watched = ["sqlalchemy", "cryptography", "pydantic", "pydantic_settings", *IMAGE_STACK, *HTTPX_CLI]
    statement = (
        "import os, pickle, subprocess, tempfile\n"
        "os.environ['RETOUCH_HOME'] = tempfile.mkdtemp()\n"
        "code = 'import pickle, sys; from retouch.settings import Settings; from retouch.inputs import fetch_policy; "
        "s = Settings(); sys.stdout.buffer.write(pickle.dumps((fetch_policy(s), pickle.dumps(s))))'\n"
        "policy, settings = pickle.loads(subprocess.run([sys.executable, '-c', code], capture_output=True).stdout)\n"
        "from retouch.downloader import _reader\n"
        "reader = _reader(policy, settings)"
    )
    assert _loaded(statement, watched) == []
    # ... and the catalog opens on first use, with the database behind it.
    used = statement + "\nreader.storages"
    assert _loaded(used, ["sqlalchemy", "pydantic"]) == ["sqlalchemy", "pydantic"]


def test_serve_migrates_a_new_database_in_a_child_and_never_loads_alembic_itself() -> None:
    statement = (
        "import os, tempfile\n"
        "os.environ['RETOUCH_HOME'] = tempfile.mkdtemp()\n"
        "from retouch.bootstrap import open_service\n"
        "from retouch.cli import _migrate_apart\n"
        "from retouch.settings import Settings\n"
        "from retouch.stores.db import HEAD_REVISION, revision\n"
        "settings = Settings()\n"
        "_migrate_apart(settings)  # a new database: `retouch db upgrade` in a child\n"
        "service = open_service(settings)\n"
        "assert revision(service.engine) == HEAD_REVISION\n"
        "assert service.keys is not None"
    )
    assert _loaded(statement, ["alembic", "mako"]) == []
