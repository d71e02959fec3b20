"""The RAM handoff folder: spare files are reused without stale bytes, capped, and never handed out twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from retouch import handoff as handoff_module
from retouch.handoff import Handoff


@pytest.fixture
def handoff() -> Iterator[Handoff]:
    made = Handoff()
    yield made
    made.close()


def _write(handoff: Handoff, data: bytes) -> Path:
    made = handoff.create()
    assert made is not None
    path, handle = made
    handle.write(data)
    handoff.seal(handle)
    return path


def test_a_spare_file_is_reused_and_cut_to_the_new_contents(handoff: Handoff) -> None:
    first = _write(handoff, b"x" * 100_000)
    handoff.release(first)
    assert handoff.spares == [first]
    second = _write(handoff, b"short")
    assert second == first and second.read_bytes() == b"short"
    assert handoff.spares == []  # in use: not a spare until released again


def test_a_file_a_worker_may_still_read_is_removed_not_reused(handoff: Handoff) -> None:
    path = _write(handoff, b"data")
    handoff.release(path, reuse=False)
    assert not path.exists() and handoff.spares == []


def test_spares_are_capped_in_number_and_size(handoff: Handoff, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handoff_module, "SPARE_FILES", 2)
    monkeypatch.setattr(handoff_module, "SPARE_BYTES", 1000)
    big = _write(handoff, b"x" * 2000)
    handoff.release(big)
    assert not big.exists()  # too large to keep
    paths = [_write(handoff, b"y") for _ in range(3)]
    for path in paths:
        handoff.release(path)
    assert len(handoff.spares) == 2 and sum(p.exists() for p in paths) == 2


def test_a_spare_removed_from_outside_is_skipped(handoff: Handoff) -> None:
    path = _write(handoff, b"z")
    handoff.release(path)
    path.unlink()
    again = _write(handoff, b"fresh")
    assert again != path and again.read_bytes() == b"fresh"
