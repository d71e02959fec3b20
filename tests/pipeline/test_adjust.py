"""Adjustments: golden images compared by SSIM (robust to libvips/codec drift), plus the direction of
each change measured on the pixels."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from tests.conftest import FIXTURES
from tests.pipeline.helpers import edit, pixels

GOLDEN = FIXTURES / "golden"
CASES: dict[str, dict[str, Any]] = {
    "exposure_up": {"exposure": 50},
    "exposure_down": {"exposure": -50},
    "contrast_up": {"contrast": 60},
    "saturation_down": {"saturation": -80},
    "saturation_up": {"saturation": 60},
    "sharpness": {"sharpness": 80},
    "hdr": {"hdr": 100},
    "hdr_soft": {"hdr": {"intensity": 40}},
    "combined": {"exposure": 10, "contrast": 15, "saturation": 20, "sharpness": 30},
}


def _render(adjustments: dict[str, Any]) -> np.ndarray:
    return pixels(edit("chelsea.jpg", {"adjustments": adjustments, "resizing": {"width": 240}}, {"format": "png"}))


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    path = GOLDEN / f"{name}.png"
    out = _render(CASES[name])
    if os.environ.get("RETOUCH_REGEN_GOLDEN"):
        import pyvips

        pyvips.Image.new_from_array(out).copy(interpretation="srgb").pngsave(str(path))
    reference = pixels(path.read_bytes())
    score = structural_similarity(out, reference, channel_axis=2, data_range=255)
    assert score >= 0.98, f"{name}: SSIM {score:.4f} against {path.name}"


def _luma(px: np.ndarray) -> np.ndarray:
    return px[..., :3].astype(float) @ np.array([0.299, 0.587, 0.114])


def _chroma(px: np.ndarray) -> float:
    rgb = px[..., :3].astype(float)
    return float((rgb.max(axis=2) - rgb.min(axis=2)).mean())


def test_directions() -> None:
    base = _render({})
    assert _luma(_render({"exposure": 50})).mean() > _luma(base).mean() + 10
    assert _luma(_render({"exposure": -50})).mean() < _luma(base).mean() - 10
    assert _luma(_render({"contrast": 60})).std() > _luma(base).std() * 1.3
    assert _luma(_render({"contrast": -60})).std() < _luma(base).std() * 0.7
    assert _chroma(_render({"saturation": 60})) > _chroma(base) * 1.3
    assert _chroma(_render({"saturation": -100})) < 2  # fully desaturated is grey
    lap = lambda px: np.abs(np.diff(_luma(px), axis=1)).mean()  # noqa: E731
    assert lap(_render({"sharpness": 80})) > lap(base) * 1.2
    # hdr lifts local contrast in flat regions: the spread of local means grows
    assert _luma(_render({"hdr": 100})).std() != pytest.approx(_luma(base).std(), rel=0.02)


def test_zero_adjustments_change_nothing() -> None:
    base = _render({})
    same = _render({"exposure": 0, "contrast": 0, "saturation": 0, "sharpness": 0, "hdr": 0})
    assert np.array_equal(base, same)


def test_hdr_on_a_large_streamed_image() -> None:
    # Regression: local histograms on a sequentially decoded (shrink-on-load) image failed with
    # "out of order read" on images larger than a few tiles.
    result = edit("photo_large.jpg", {"adjustments": {"hdr": 100}, "resizing": {"width": 2000}})
    assert (result.width, result.height) == (2000, 1333)
    plain = edit("photo_large.jpg", {"adjustments": {"hdr": 100}})
    assert (plain.width, plain.height) == (2400, 1600)
