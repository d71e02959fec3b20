"""JPEG quality estimation from the quantisation tables, and what ``decompress: auto`` makes of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvips

from retouch.pipeline.jpeg_quality import jpeg_quality, needs_decompress

FIXTURES = Path(__file__).parents[1] / "fixtures"


def load(name: str) -> pyvips.Image:
    return pyvips.Image.new_from_file(str(FIXTURES / name))


def jpeg(image: pyvips.Image, quality: int) -> bytes:
    data: bytes = image.jpegsave_buffer(Q=quality)
    return data


@pytest.mark.parametrize("quality", [5, 15, 30, 50, 70, 85, 90, 95, 100])
def test_jpeg_quality_of_vips_jpegs(quality: int) -> None:
    # vips' jpegsave uses the standard IJG (Annex K) tables with the IJG scaling (quant_table=0).
    estimate = jpeg_quality(jpeg(load("astronaut.png"), quality))
    assert estimate is not None and abs(estimate - quality) <= 3


def test_jpeg_quality_of_other_files() -> None:
    # Pillow (libjpeg) wrote these fixtures at q90 / q85, grey (one table) included.
    assert jpeg_quality((FIXTURES / "coffee.jpg").read_bytes()) == 90
    assert jpeg_quality((FIXTURES / "gray.jpg").read_bytes()) == 90
    assert jpeg_quality((FIXTURES / "photo_large.jpg").read_bytes()) == 85
    progressive = load("chelsea.jpg").jpegsave_buffer(Q=40, interlace=True, optimize_coding=True)
    assert abs((jpeg_quality(progressive) or 0) - 40) <= 3
    for name in ("astronaut.png", "photo.webp", "empty.bin", "garbage.jpg"):
        assert jpeg_quality((FIXTURES / name).read_bytes()) is None, name


def test_needs_decompress() -> None:
    image = load("astronaut.png")
    assert needs_decompress(jpeg(image, 95)) is None
    assert needs_decompress(jpeg(image, 90)) is None
    assert needs_decompress(jpeg(image, 75)) == "moderate"
    assert needs_decompress(jpeg(image, 50)) == "moderate"
    assert needs_decompress(jpeg(image, 15)) == "strong"
    assert needs_decompress((FIXTURES / "astronaut.png").read_bytes()) is None
