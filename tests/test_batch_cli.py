"""`retouch batch` on a folder tree: outputs, progress and summary, exit codes, --resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyvips

from tests.conftest import FIXTURES
from tests.test_cli import retouch


def _tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(FIXTURES / "coffee.jpg", root / "a.jpg")
    shutil.copy(FIXTURES / "photo.png", root / "b.png")
    shutil.copy(FIXTURES / "chelsea.jpg", root / "sub" / "c.JPG")
    shutil.copy(FIXTURES / "photo.webp", root / "sub" / "deeper" / "d.webp")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.jpg").write_bytes((FIXTURES / "coffee.jpg").read_bytes())


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_batch_recursive_outputs_and_summary(tmp_path: Path) -> None:
    _tree(tmp_path / "in")
    done = retouch(
        "batch",
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        "--recursive",
        "--workers",
        "2",
        "--ops",
        '{"resizing": {"width": 64}}',
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert files(tmp_path / "out") == ["a.jpg", "b.jpg", "sub/c.JPG", "sub/deeper/d.jpg"]
    assert pyvips.Image.new_from_file(str(tmp_path / "out" / "sub" / "c.JPG")).width == 64
    assert "retouch batch" in done.stderr and "images/s" in done.stderr  # progress and summary table


def test_batch_root_only_and_format(tmp_path: Path) -> None:
    _tree(tmp_path / "in")
    done = retouch(
        "batch", str(tmp_path / "in"), str(tmp_path / "out"), "--output-options", '{"format": "png"}', home=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert files(tmp_path / "out") == ["a.png", "b.png"]


def test_batch_failure_exit_code_and_resume(tmp_path: Path) -> None:
    _tree(tmp_path / "in")
    shutil.copy(FIXTURES / "truncated.jpg", tmp_path / "in" / "broken.jpg")
    first = retouch("batch", str(tmp_path / "in"), str(tmp_path / "out"), home=tmp_path)
    assert first.returncode == 1
    assert "broken.jpg" in first.stderr and "truncated or corrupt" in first.stderr
    assert files(tmp_path / "out") == ["a.jpg", "b.jpg"]
    # simulate an interrupted run: one output missing, one present (and must not be redone)
    (tmp_path / "out" / "b.jpg").unlink()
    stamp = (tmp_path / "out" / "a.jpg").stat().st_mtime_ns
    (tmp_path / "in" / "broken.jpg").unlink()
    again = retouch("batch", str(tmp_path / "in"), str(tmp_path / "out"), "--resume", home=tmp_path)
    assert again.returncode == 0, again.stderr
    assert files(tmp_path / "out") == ["a.jpg", "b.jpg"]
    assert (tmp_path / "out" / "a.jpg").stat().st_mtime_ns == stamp


def test_batch_usage_errors(tmp_path: Path) -> None:
    missing = retouch("batch", str(tmp_path / "nope"), str(tmp_path / "out"), home=tmp_path)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
    (tmp_path / "in").mkdir()
    bad_ops = retouch(
        "batch", str(tmp_path / "in"), str(tmp_path / "out"), "--ops", '{"resizing": {"width": "x"}}', home=tmp_path
    )
    assert bad_ops.returncode == 2 and "operations.resizing.width" in bad_ops.stderr


def test_batch_output_inside_input_and_over_input(tmp_path: Path) -> None:
    _tree(tmp_path / "in")
    args = ("batch", str(tmp_path / "in"), str(tmp_path / "in" / "small"), "--recursive", "--ops")
    first = retouch(*args, '{"resizing": {"width": 32}}', home=tmp_path)
    again = retouch(*args, '{"resizing": {"width": 32}}', home=tmp_path)  # earlier outputs are not inputs
    assert first.returncode == 0 and again.returncode == 0, again.stderr
    assert files(tmp_path / "in" / "small") == ["a.jpg", "b.jpg", "sub/c.JPG", "sub/deeper/d.jpg"]
    before = (tmp_path / "in" / "a.jpg").read_bytes()
    over = retouch("batch", str(tmp_path / "in"), str(tmp_path / "in"), home=tmp_path)
    assert over.returncode == 1 and "would overwrite the input" in over.stderr
    assert (tmp_path / "in" / "a.jpg").read_bytes() == before
