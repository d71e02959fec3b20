"""The JPEG fast path (pipeline/jpegfast.py) against the general libvips path it replaces.

Each comparison runs the same request twice, once with the fast path and once with it switched off, and checks
what the issue asks of it: the same size and orientation, PSNR against a full-resolution decode + Lanczos
reference within 0.3 dB of the general path's, chroma kept on 4:4:4 inputs; and that inputs it does not handle
exactly (CMYK, grey, a foreign ICC profile, damaged data, no shrink) go to the general path."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import pyvips
from PIL import Image

from retouch.contracts.edit import UploadData
from retouch.pipeline import Encoded, jpegfast, run
from retouch.pipeline.load import probe
from retouch.pipeline.plan import make_plan
from retouch.settings import Limits
from tests.conftest import FIXTURES, fixture_bytes

SIZE = (1600, 1200)


def _photo(seed: int = 0) -> npt.NDArray[np.uint8]:
    """A camera-like 1600x1200 picture: a real photo upscaled, plus fine colour detail and grain (a pure upscale
    is too smooth to tell decoders apart)."""
    rng = np.random.default_rng(seed)
    base = Image.open(FIXTURES / "chelsea.jpg").convert("RGB").resize(SIZE, Image.Resampling.LANCZOS)
    pixels = np.asarray(base, dtype=np.float32)
    # Red/blue stripes of 6 px: detail that lives in the chroma only, lost at once by a decoder that halves it.
    stripes = (np.arange(SIZE[0]) // 6 % 2).astype(np.float32)[None, :] * 2 - 1
    pixels[:, :, 0] += 30 * stripes
    pixels[:, :, 2] -= 30 * stripes
    pixels += rng.standard_normal(pixels.shape).astype(np.float32) * 3
    return np.clip(pixels + 0.5, 0, 255).astype(np.uint8)


def _jpeg(pixels: npt.NDArray[np.uint8], subsampling: str = "4:4:4", quality: int = 92, **kw: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, "JPEG", quality=quality, subsampling=subsampling, **kw)
    return buf.getvalue()


def _with_orientation(data: bytes, orientation: int) -> bytes:
    image = pyvips.Image.new_from_buffer(data, "").copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return bytes(image.jpegsave_buffer(Q=92, subsample_mode="off"))


def _run(data: bytes, operations: dict[str, Any], output: Any) -> Encoded:
    request = UploadData.model_validate({"operations": operations, "output": output})
    return run(data, request.operations, request.output, Limits())


def _both(
    data: bytes, operations: dict[str, Any], output: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Encoded, Encoded]:
    """(fast, general): the same edit with the fast path and without it; asserts the fast path was taken."""
    taken: list[bool] = []
    real = jpegfast.fast_decode

    def spy(*args: Any) -> Any:
        image = real(*args)
        taken.append(image is not None)
        return image

    monkeypatch.setattr("retouch.pipeline.resize.fast_decode", spy)
    fast = _run(data, operations, output)
    assert taken == [True], "the fast path was not taken"
    monkeypatch.setattr(jpegfast, "simplejpeg", None)
    general = _run(data, operations, output)
    assert taken == [True, False]
    return fast, general


def _pixels(result: Encoded | bytes) -> npt.NDArray[np.float64]:
    data = result.data if isinstance(result, Encoded) else result
    return np.asarray(pyvips.Image.new_from_buffer(data, "").numpy(), dtype=np.float64)


def _reference(pixels: npt.NDArray[np.uint8], size: tuple[int, int]) -> npt.NDArray[np.float64]:
    """Full-resolution pixels resized with Lanczos: what both paths are judged against."""
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS), dtype=np.float64)


def _psnr(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return float("inf")
    return 10 * float(np.log10(255**2 / mse))


def _chroma(rgb: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Cb and Cr (BT.601, as JPEG stores them)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.stack([-0.1687 * r - 0.3313 * g + 0.5 * b, 0.5 * r - 0.4187 * g - 0.0813 * b], axis=-1)


@pytest.mark.parametrize("width", [400, 800])
@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:0"])
def test_quality_within_0_3_db_of_the_general_path(
    subsampling: str, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _photo()
    data = _jpeg(source, subsampling, quality=92 if subsampling == "4:4:4" else 90)
    output = {"format": {"type": "jpeg", "quality": 85, "progressive": False}}
    size = (width, width * 3 // 4)
    fast, general = _both(data, {"resizing": {"width": width}}, output, monkeypatch)
    assert (fast.width, fast.height) == (general.width, general.height) == size
    # The reference is the decoded input at full resolution (what the JPEG holds), resized with Lanczos.
    reference = _reference(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), size)
    fast_db, general_db = _psnr(_pixels(fast), reference), _psnr(_pixels(general), reference)
    assert fast_db >= general_db - 0.3, (fast_db, general_db)


def test_chroma_of_444_inputs_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    source = _photo(1)
    data = _jpeg(source, "4:4:4")
    # PNG output: nothing after the decode subsamples the chroma. 1600 -> 800 is an exact 1/2 DCT scale, the
    # fast path's worst case (no Lanczos pass after the decoder's own reduction).
    fast = _run(data, {"resizing": {"width": 800}}, {"format": "png"})
    reference = _chroma(_reference(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), (800, 600)))
    fast_db = _psnr(_chroma(_pixels(fast)), reference)
    # Control: the same picture stored with half-resolution chroma (4:2:0), through the same path, is measurably
    # worse against the same 4:4:4 reference: this test would see a decoder that dropped half the chroma.
    halved = _run(_jpeg(source, "4:2:0"), {"resizing": {"width": 800}}, {"format": "png"})
    halved_db = _psnr(_chroma(_pixels(halved)), reference)
    # Measured: 42.4 dB (RMS error under 2 levels of 255 on Cb/Cr: not visible) against 39.1 dB for the control.
    assert fast_db > 41 > halved_db, (fast_db, halved_db)
    # And the 3 px stripes (6 px at the source), which live in the chroma only, survive the resize.
    columns = _chroma(_pixels(fast))[..., 1].mean(axis=0)
    assert columns.max() - columns.min() > 20


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_and_size_match_the_general_path(orientation: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _with_orientation(_jpeg(_photo(2)), orientation)
    fast, general = _both(data, {"resizing": {"width": 300}}, {"format": "png"}, monkeypatch)
    assert (fast.width, fast.height) == (general.width, general.height)
    assert fast.width == 300
    # Same picture the same way up: a rotated or mirrored one would differ by far more than the decoders do.
    assert _psnr(_pixels(fast), _pixels(general)) > 30


@pytest.mark.parametrize(
    "operations",
    [
        {"resizing": {"width": 500, "height": 500, "fit": "crop"}},
        {"resizing": {"width": 500, "height": 500, "fit": "bounds"}},
        {"resizing": {"width": 500, "height": 200, "fit": "cover"}},
        {"resizing": {"height": 333}},
    ],
    ids=["crop", "bounds", "cover", "height"],
)
def test_fits_match_the_general_path(operations: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    data = _with_orientation(_jpeg(_photo(3)), 6)
    fast, general = _both(data, operations, {"format": "png"}, monkeypatch)
    assert (fast.width, fast.height) == (general.width, general.height)
    assert _psnr(_pixels(fast), _pixels(general)) > 30


def test_progressive_input_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _jpeg(_photo(4), "4:2:0", progressive=True)
    fast, general = _both(data, {"resizing": {"width": 400}}, {"format": "png"}, monkeypatch)
    assert (fast.width, fast.height) == (general.width, general.height)
    assert _psnr(_pixels(fast), _pixels(general)) > 30


def _fast(data: bytes, operations: dict[str, Any]) -> pyvips.Image | None:
    request = UploadData.model_validate({"operations": operations})
    info = probe(data, Limits())
    return jpegfast.fast_decode(data, info, make_plan(info.size, request.operations, Limits()))


@pytest.mark.parametrize(
    "name",
    ["cmyk.jpg", "gray.jpg", "icc_p3.jpg", "truncated.jpg"],
)
def test_inputs_that_need_more_take_the_general_path(name: str) -> None:
    assert _fast(fixture_bytes(name), {"resizing": {"width": 100}}) is None


def test_damaged_scan_data_takes_the_general_path() -> None:
    # Every file of the corrupt-JPEG corpus that loses pixels: libjpeg-turbo warns, the fast path declines, and
    # the general path gives the contract's answer (tests/pipeline/test_jpeg_defects.py checks that answer).
    for path in sorted((FIXTURES / "jpeg_defects" / "bad").glob("*.jpg")):
        assert _fast(path.read_bytes(), {"resizing": {"width": 100}}) is None, path.name


def test_benign_defects_decode_as_the_general_path_does() -> None:
    # A benign warning either stops the fast path too (the general path then decodes leniently) or, when it sits
    # after the last scan (bytes before the end marker, which libjpeg-turbo never reads here), every pixel was
    # decoded: the same picture as the general path's.
    for path in sorted((FIXTURES / "jpeg_defects" / "benign").glob("*.jpg")):
        data = path.read_bytes()
        image = _fast(data, {"resizing": {"width": 100}})
        if image is not None:
            general = _run(data, {"resizing": {"width": 100}}, {"format": "png"})
            fast = np.asarray(image.numpy(), dtype=np.float64)
            assert fast.shape == _pixels(general).shape
            assert _psnr(fast, _pixels(general)) > 30, path.name


def test_no_shrink_or_an_enlargement_takes_the_general_path() -> None:
    data = _jpeg(_photo(5))
    assert _fast(data, {}) is None
    assert _fast(data, {"resizing": {"width": 1000}}) is None  # less than 2x: DCT scaling saves nothing
    assert _fast(data, {"resizing": {"width": 3200}}) is None
    assert _fast(data, {"resizing": {"width": 800}}) is not None
