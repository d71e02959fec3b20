"""`import retouch` as a library: a typed edit() result, and no image stack loaded by the import itself."""

from __future__ import annotations

import subprocess
import sys

import retouch
from retouch.pipeline import Encoded
from tests.conftest import fixture_bytes


def test_edit_returns_a_typed_result() -> None:
    result = retouch.edit(fixture_bytes("coffee.jpg"), {"resizing": {"width": 100}}, {"format": "webp"})
    assert isinstance(result, Encoded)
    assert (result.format, result.width, result.source.ext) == ("webp", 100, "jpeg")
    assert result.data[:4] == b"RIFF"


def test_import_loads_no_image_stack() -> None:
    code = "import sys, retouch; print('pyvips' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
