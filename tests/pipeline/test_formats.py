"""Encoders and their options round-trip: quality, progressive, compression, dpi, CMYK output."""

from __future__ import annotations

import pytest
import pyvips

from tests.pipeline.helpers import decoded, edit


def test_jpeg_quality_changes_size() -> None:
    low = edit("astronaut.png", {}, {"format": {"type": "jpeg", "quality": 30}})
    high = edit("astronaut.png", {}, {"format": {"type": "jpeg", "quality": 95}})
    assert len(low.data) * 1.5 < len(high.data)


def test_jpeg_progressive_flag() -> None:
    progressive = edit("coffee.jpg", {}, {"format": {"type": "jpeg", "progressive": True}})
    baseline = edit("coffee.jpg", {}, {"format": {"type": "jpeg", "progressive": False}})
    assert decoded(progressive).get("interlaced") == 1
    assert not (baseline_img := decoded(baseline)).get_typeof("interlaced") or baseline_img.get("interlaced") == 0
    default = edit("coffee.jpg", {}, {"format": "jpeg"})
    assert decoded(default).get("interlaced") == 1  # the contract's default is progressive


@pytest.mark.parametrize("fmt", ["webp", "avif"])
def test_lossy_vs_lossless(fmt: str) -> None:
    lossy = edit("photo.png", {}, {"format": {"type": fmt, "compression": {"type": "lossy", "quality": 40}}})
    lossless = edit("photo.png", {}, {"format": {"type": fmt, "compression": "lossless"}})
    assert len(lossy.data) < len(lossless.data)
    original = pyvips.Image.new_from_file("tests/fixtures/photo.png")
    assert (decoded(lossless) - original).abs().max() == 0


def test_png_compression_levels() -> None:
    fast = edit("astronaut.png", {}, {"format": {"type": "png", "compression": "fast"}})
    best = edit("astronaut.png", {}, {"format": {"type": "png", "compression": "best"}})
    assert len(best.data) < len(fast.data)


def test_tiff_lossless_default_and_lossy() -> None:
    lossless = edit("photo.png", {}, {"format": "tiff"})
    lossy = edit("photo.png", {}, {"format": {"type": "tiff", "compression": {"type": "lossy", "quality": 50}}})
    assert len(lossy.data) < len(lossless.data)
    original = pyvips.Image.new_from_file("tests/fixtures/photo.png")
    assert (decoded(lossless) - original).abs().max() == 0


@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff"])  # WebP and AVIF have no resolution field
def test_dpi_written(fmt: str) -> None:
    image = decoded(edit("coffee.jpg", {}, {"format": fmt, "metadata": {"dpi": 300}}))
    assert image.xres * 25.4 == pytest.approx(300, rel=0.01)


def test_cmyk_output_is_really_cmyk() -> None:
    result = edit(
        "coffee.jpg",
        {},
        {"format": "jpeg", "metadata": {"color_space": {"type": "CMYK", "color_profile": "ISO_Coated"}}},
    )
    image = decoded(result)
    assert image.interpretation == "cmyk" and image.bands == 4
    assert image.get_typeof("icc-profile-data")


def test_metadata_stripped() -> None:
    image = decoded(edit("exif_rotated_6.jpg", {}, {"format": "jpeg"}))
    assert not image.get_typeof("exif-data")
    with_dpi = decoded(edit("exif_rotated_6.jpg", {}, {"format": "jpeg", "metadata": {"dpi": 150}}))
    assert with_dpi.get("exif-ifd0-Orientation").startswith("1")  # a fresh block: upright, no camera data
    assert not any(f.startswith("exif-ifd3") for f in with_dpi.get_fields())  # no GPS


def test_unknown_keys_in_format_object_ignored() -> None:
    result = edit("coffee.jpg", {}, {"format": {"type": "png", "quality": 85}})
    assert result.format == "png"
