"""restorations.polish: the classical denoise + unsharp mask. Run with ``-s`` to see the measured changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import pyvips

from retouch.pipeline.polish import polish_image
from tests.pipeline.helpers import image_pixels, load_fixture

FIXTURES = Path(__file__).parents[1] / "fixtures"
PHOTOS = ["astronaut.png", "coffee.jpg", "chelsea.jpg"]
Array = npt.NDArray[np.uint8]


load = load_fixture
pixels = image_pixels


def psnr(a: Array, b: Array) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / mse)


def sharpness(image: Array) -> float:
    """Mean gradient magnitude of the grey image (higher: crisper edges)."""
    grey = image[..., :3].astype(np.float64).mean(axis=2)
    gy, gx = np.gradient(grey)
    return float(np.mean(np.hypot(gx, gy)))


@pytest.mark.parametrize("name", PHOTOS)
def test_polish_sharpens_modestly(name: str) -> None:
    source = load(name)
    out = polish_image(source)
    assert (out.width, out.height, out.bands, out.format) == (source.width, source.height, 3, "uchar")
    before, after = pixels(source), pixels(out)
    change = psnr(after, before)
    gain = sharpness(after) / sharpness(before)
    print(f"\n{name}: polish changed {change:.1f} dB PSNR, sharpness x{gain:.3f}")
    assert 29 < change < 45
    assert gain > 1.1


def test_polish_keeps_alpha() -> None:
    source = load("alpha.png")
    out = polish_image(source)
    assert out.bands == 4
    assert np.array_equal(pixels(out)[..., 3], pixels(source)[..., 3])


@pytest.mark.parametrize("name", ["alpha.png", "coffee.jpg"])
def test_streamed_source_is_read_once(name: str) -> None:
    # The pipeline's fast path decodes sequentially: a second pass over the source would fail.
    source = pyvips.Image.new_from_file(str(FIXTURES / name), access="sequential")
    width = source.width
    assert polish_image(source).copy_memory().width == width
