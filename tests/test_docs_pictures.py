"""The before/after strips in docs/: each is referenced from the docs, and the script that makes them still runs."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PICTURES = ROOT / "docs" / "pictures"


def _script() -> object:
    spec = importlib.util.spec_from_file_location("make_pictures", PICTURES / "make_pictures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_pictures"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_strip_is_committed_and_shown() -> None:
    script = _script()
    names = {strip.name for strip in script.STRIPS}  # type: ignore[attr-defined]
    committed = {p.stem for p in PICTURES.glob("*.jpg")}
    assert names <= committed, names - committed
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    shown = set(re.findall(r"\(pictures/([\w-]+)\.jpg\)", docs))
    assert committed <= shown, committed - shown


def test_the_script_makes_a_strip(tmp_path: Path) -> None:
    script = _script()
    padding = next(s for s in script.STRIPS if s.name == "padding")  # type: ignore[attr-defined]
    path = script.make(padding, tmp_path)  # type: ignore[attr-defined]
    with Image.open(path) as sheet:
        assert sheet.height == script.CELL + script.LABEL  # type: ignore[attr-defined]
        assert sheet.width > 3 * 300
