"""The structure holds: imports point down the layers declared in pyproject.toml, and every image goes through
the one unit of work (``work.item.process``) - no path runs the pipeline on its own."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import retouch

SRC = Path(retouch.__file__).parent


def test_import_layers_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is a dev dependency"
    done = subprocess.run([lint], cwd=SRC.parent.parent, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:]


def _calls(name: str) -> set[str]:
    """Modules (relative to the package) with a call to ``name`` imported from the module that defines it."""
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name:
                found.add(path.relative_to(SRC).as_posix())
    return found


def test_one_unit_of_work() -> None:
    # The pipeline runs in the unit of work, and in the library's own retouch.edit() (bytes in, bytes out).
    assert _calls("run") == {"work/item.py", "__init__.py"}
    # process() serves every path: sync edits and uploads (edit_now), async and batch items on the local pool
    # and on Celery workers (run_item), `retouch batch` (localbatch) and `retouch edit` (cli).
    assert _calls("process") == {"work/runner.py", "localbatch.py", "cli.py"}
