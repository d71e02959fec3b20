"""privacy.blur_car_plate: PP-OCRv4 plate finding, the plate-text rule, the blur, the YOLO override.

No network and no photo fixtures: plates are drawn at test time with Pillow's bundled font
(``ImageFont.load_default(size=...)``, Pillow >= 10.1 with FreeType) on a rounded-rectangle "car".
Run with ``-s`` to see the CPU-time report at 1 MP and 12 MP.
"""

from __future__ import annotations

import io
import resource
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import pyvips

pytest.importorskip("cv2")
pytest.importorskip("rapidocr_onnxruntime")

from PIL import Image, ImageDraw, ImageFont, features

from retouch.contracts.operations import ImageOperations
from retouch.models import ModelMissing, plates
from retouch.pipeline.privacy import blur_plates, blur_regions
from tests.conftest import FIXTURES
from tests.models import use_model_files

if not features.check("freetype2"):  # pragma: no cover - Pillow wheels ship FreeType
    pytest.skip("Pillow without FreeType cannot draw sized text", allow_module_level=True)


# ------------------------------------------------------------------------------------ scenes


def scene(
    text: str,
    size: tuple[int, int] = (1000, 750),
    plate_h: int = 60,
    angle: float = 0,
    car: tuple[int, int, int] = (150, 20, 30),
    plate: tuple[int, int, int] = (245, 245, 240),
) -> tuple[np.ndarray, np.ndarray]:
    """A car with a plate below its middle. Returns (RGB array, boolean mask of the plate's pixels)."""
    width, height = size
    img = Image.new("RGB", size, (90, 110, 95))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((width * 0.15, height * 0.3, width * 0.85, height * 0.85), radius=width // 16, fill=car)
    draw.ellipse((width * 0.2, height * 0.78, width * 0.32, height * 0.95), fill=(25, 25, 25))
    draw.ellipse((width * 0.68, height * 0.78, width * 0.8, height * 0.95), fill=(25, 25, 25))
    font = ImageFont.load_default(size=int(plate_h * 0.7))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pw = int(right - left + plate_h * 0.6)
    tile = Image.new("RGBA", (pw, plate_h), (0, 0, 0, 0))
    tdraw = ImageDraw.Draw(tile)
    tdraw.rounded_rectangle(
        (0, 0, pw - 1, plate_h - 1),
        radius=max(2, plate_h // 10),
        fill=(*plate, 255),
        outline=(20, 20, 20, 255),
        width=max(1, plate_h // 20),
    )
    tdraw.text(
        ((pw - (right - left)) / 2 - left, (plate_h - (bottom - top)) / 2 - top),
        text,
        font=font,
        fill=(10, 10, 10, 255),
    )
    tile = tile.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    x, y = width // 2 - tile.width // 2, int(height * 0.68) - tile.height // 2
    img.paste(tile, (x, y), tile)
    mask = np.zeros((height, width), dtype=bool)
    mask[y : y + tile.height, x : x + tile.width] = np.asarray(tile)[..., 3] > 0
    return np.asarray(img), mask


def sign(text: str, size: tuple[int, int] = (900, 600)) -> np.ndarray:
    """A shop front with a big one-word sign."""
    img = Image.new("RGB", size, (200, 190, 170))
    draw = ImageDraw.Draw(img)
    draw.rectangle((size[0] * 0.2, size[1] * 0.15, size[0] * 0.8, size[1] * 0.4), fill=(30, 60, 120))
    draw.rectangle((size[0] * 0.3, size[1] * 0.5, size[0] * 0.7, size[1]), fill=(60, 40, 30))
    font = ImageFont.load_default(size=int(size[1] * 0.15))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(
        (size[0] / 2 - (right + left) / 2, size[1] * 0.275 - (bottom + top) / 2), text, font=font, fill=(255, 255, 255)
    )
    return np.asarray(img)


def vips(rgb: np.ndarray) -> pyvips.Image:
    """Like the pipeline's decode: a sequential-access image, which may be read only once."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return pyvips.Image.new_from_buffer(buf.getvalue(), "", access="sequential")


def edit(**privacy: Any) -> Any:
    ops = ImageOperations.model_validate({"privacy": privacy} if privacy else {})
    return SimpleNamespace(ops=ops)


def covered(mask: np.ndarray, boxes: list[plates.Box]) -> float:
    """Share of the mask's pixels inside the union of the boxes."""
    inside = np.zeros_like(mask)
    for x, y, w, h in boxes:
        inside[y : y + h, x : x + w] = True
    return float((mask & inside).sum() / mask.sum())


def normalised(text: str) -> str:
    return "".join(c for c in text.upper() if c.isalnum())


PLATES = [
    # text, plate height in px, rotation in degrees, car colour, plate colour
    ("AB 123 CD", 60, 0, (150, 20, 30), (245, 245, 240)),
    ("KX 4821", 40, 0, (30, 60, 150), (245, 245, 240)),
    ("7ABC123", 32, 5, (200, 200, 205), (250, 250, 250)),
    ("AB 123 CD", 26, -8, (40, 40, 40), (245, 245, 240)),
    ("KX 4821", 90, 3, (20, 110, 60), (250, 200, 30)),  # yellow (UK rear style)
]


# ------------------------------------------------------------------------------------ finding + blurring


@pytest.mark.parametrize(("text", "plate_h", "angle", "car", "colour"), PLATES)
def test_synthetic_plates_are_found_and_blurred_illegible(
    text: str, plate_h: int, angle: float, car: tuple[int, int, int], colour: tuple[int, int, int]
) -> None:
    rgb, mask = scene(text, plate_h=plate_h, angle=angle, car=car, plate=colour)
    read = [normalised(t) for _, t, _ in plates.read_text(rgb)]
    assert normalised(text) in read or any(normalised(text)[:5] in r for r in read), read

    boxes = plates.find_plates(rgb)
    assert len(boxes) == 1, boxes
    assert covered(mask, boxes) >= 0.97, (boxes, covered(mask, boxes))
    x, y, w, h = boxes[0]
    assert w * h <= 6 * mask.sum()  # widened to the frame, not to the whole car

    out = blur_plates(vips(rgb), edit(blur_car_plate=True))
    assert (out.width, out.height, out.bands, out.format) == (rgb.shape[1], rgb.shape[0], 3, "uchar")
    result = np.asarray(out.numpy())
    # Illegible: the OCR reads nothing that shares 3 characters in a row with the plate, and no plate.
    after = [normalised(t) for _, t, _ in plates.read_text(result)]
    chars = normalised(text)
    assert not any(chars[i : i + 3] in r for r in after for i in range(len(chars) - 2)), after
    assert plates.find_plates(result) == []
    # Every plate pixel changed or sits in a flat area; nothing far from the box changed.
    feather = max(2, round(0.15 * min(w, h)))
    outside = np.ones(mask.shape, dtype=bool)
    outside[max(0, y - feather) : y + h + feather, max(0, x - feather) : x + w + feather] = False
    assert np.array_equal(result[outside], rgb[outside])
    plate_px = result[mask].astype(int)
    assert np.abs(plate_px - rgb[mask].astype(int)).max() > 60
    assert plate_px.std(axis=0).max() < rgb[mask].astype(int).std(axis=0).max() * 0.6  # text contrast is gone


def test_two_plates_in_one_image_are_both_blurred() -> None:
    left, left_mask = scene("KX 4821", size=(800, 600), plate_h=44)
    right, right_mask = scene("AB 123 CD", size=(800, 600), plate_h=44, car=(30, 60, 150))
    rgb = np.concatenate([left, right], axis=1)
    mask = np.concatenate([left_mask, right_mask], axis=1)
    boxes = plates.find_plates(rgb)
    assert len(boxes) == 2
    assert covered(mask, boxes) >= 0.97
    out = np.asarray(blur_plates(vips(rgb), edit(blur_car_plate=True)).numpy())
    assert plates.find_plates(out) == []


@pytest.mark.parametrize(("plate_h", "where"), [(40, "on the tile seam"), (200, "longer than the overlap")])
def test_large_images_are_read_in_tiles_and_plates_on_the_seams_are_found(plate_h: int, where: str) -> None:
    """2000x1333 is above TILE_AREA: two tiles meeting mid-width plus an overview. The plate sits in
    the middle, where the tiles overlap; a 200 px plate (~750 px long) fits in neither tile whole
    and must come from the overview."""
    rgb, mask = scene("KX 4821", size=(2000, 1333), plate_h=plate_h)
    views = plates.views(rgb)
    assert len(views) > 2 and all(v.shape[0] * v.shape[1] <= plates.TILE_AREA for _, _, _, v in views)
    boxes = plates.find_plates(rgb)
    assert len(boxes) == 1, (where, boxes)  # seen by several views, kept once
    assert covered(mask, boxes) >= 0.97, (where, boxes)


def test_views_cover_the_image_with_overlapping_tiles() -> None:
    small = np.zeros((800, 1200, 3), np.uint8)
    assert [(x, y, s, v.shape) for x, y, s, v in plates.views(small)] == [(0, 0, 1.0, small.shape)]
    for height, width in [(1333, 2000), (2000, 2000), (600, 3000), (1999, 1001)]:
        rgb = np.zeros((height, width, 3), np.uint8)
        seen = np.zeros((height, width), bool)
        *tiles, (ox, oy, scale, overview) = plates.views(rgb)
        assert scale < 1.0
        assert (ox, oy) == (0, 0) and max(overview.shape[:2]) == plates.OVERVIEW_SIDE
        for x, y, s, tile in tiles:
            assert s == 1.0 and tile.shape[0] * tile.shape[1] <= plates.TILE_AREA
            assert np.shares_memory(tile, rgb)  # views, not copies
            seen[y : y + tile.shape[0], x : x + tile.shape[1]] = True
        assert seen.all()
        starts = sorted({x for x, _, _, _ in tiles})
        ends = sorted({x + t.shape[1] for x, _, _, t in tiles})
        assert all(end - start >= plates.TILE_OVERLAP for start, end in zip(starts[1:], ends[:-1], strict=True))


def test_dedupe_keeps_the_larger_of_two_views_of_one_plate() -> None:
    assert plates.dedupe([(10, 10, 100, 40), (12, 11, 96, 38), (300, 10, 100, 40)]) == [
        (10, 10, 100, 40),
        (300, 10, 100, 40),
    ]
    assert plates.dedupe([(0, 0, 100, 40), (60, 0, 100, 40)]) == [(0, 0, 100, 40), (60, 0, 100, 40)]


@pytest.mark.parametrize("resizing", [None, {"width": 800}])
def test_through_the_pipeline(monkeypatch: pytest.MonkeyPatch, resizing: dict[str, Any] | None) -> None:
    """The step right after to_srgb (where the lead is asked to put it), on the real decode and encode."""
    import retouch.pipeline
    from retouch.contracts.edit import UploadData
    from retouch.pipeline.steps import STEPS
    from retouch.settings import Limits

    monkeypatch.setattr(retouch.pipeline, "STEPS", (STEPS[0], blur_plates, *STEPS[1:]))
    rgb, _ = scene("AB 123 CD", size=(1200, 900), plate_h=60)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
    operations: dict[str, Any] = {"privacy": {"blur_car_plate": True}}
    if resizing:
        operations["resizing"] = resizing
    request = UploadData.model_validate({"operations": operations, "output": {"format": "png"}})
    result = retouch.pipeline.run(buf.getvalue(), request.operations, request.output, Limits())
    out = np.asarray(pyvips.Image.new_from_buffer(result.data, "").numpy())
    assert out.shape[1] == (resizing or {"width": 1200})["width"]
    assert plates.read_text(out[..., :3]) == []


@pytest.mark.parametrize("name", ["coffee.jpg", "astronaut.png", "chelsea.jpg"])
def test_images_without_text_are_bit_identical(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    before = np.asarray(pyvips.Image.new_from_buffer(data, "").numpy())
    out = blur_plates(pyvips.Image.new_from_buffer(data, "", access="sequential"), edit(blur_car_plate=True))
    assert np.array_equal(np.asarray(out.numpy()), before)


@pytest.mark.parametrize("word", ["OPEN", "SALE"])
def test_shop_sign_is_read_but_left_alone(word: str) -> None:
    """The OCR does read the sign; the plate rule (4 letters, no digit) is what leaves it alone."""
    rgb = sign(word)
    assert word in [normalised(t) for _, t, _ in plates.read_text(rgb)]
    assert plates.find_plates(rgb) == []
    out = blur_plates(vips(rgb), edit(blur_car_plate=True))
    assert np.array_equal(np.asarray(out.numpy()), rgb)


def test_step_is_a_no_op_unless_asked() -> None:
    image = pyvips.Image.black(10, 10, bands=3)
    assert blur_plates(image, edit()) is image
    assert blur_plates(image, edit(identity_crop=True)) is image
    assert blur_plates(image, edit(blur_car_plate=False)) is image


def test_alpha_is_kept_and_colour_blurred() -> None:
    rgb, mask = scene("KX 4821", plate_h=50)
    alpha = np.full(mask.shape, 255, dtype=np.uint8)
    alpha[:, : mask.shape[1] // 3] = 0  # left third transparent, the plate is in the middle
    rgba = np.dstack([rgb, alpha])
    out = np.asarray(blur_plates(vips(rgba), edit(blur_car_plate=True)).numpy())
    assert out.shape == rgba.shape
    assert np.array_equal(out[..., 3], alpha)
    assert not np.array_equal(out[..., :3][mask], rgb[mask])


# ------------------------------------------------------------------------------------ blur_regions


def test_blur_regions_clips_feathers_and_ignores_empty_boxes() -> None:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(120, 200, 3), dtype=np.uint8)
    image = pyvips.Image.new_from_array(noise)
    assert blur_regions(image, []) is image
    assert np.array_equal(np.asarray(blur_regions(image, [(5, 5, 0, 10)]).numpy()), noise)
    out = np.asarray(blur_regions(image, [(-20, -10, 80, 50), (150, 90, 100, 100)]).numpy())
    assert out.shape == noise.shape
    # Inside the boxes: much smoother than the noise. Far outside: untouched.
    assert out[:40, :60].astype(float).std() < noise[:40, :60].astype(float).std() / 3
    assert out[95:, 155:].astype(float).std() < noise[95:, 155:].astype(float).std() / 3
    assert np.array_equal(out[60:80, 80:140], noise[60:80, 80:140])
    # Feather: just outside a box the result lies between the original and the blur.
    ring = out[45:47, 10:50].astype(int) - noise[45:47, 10:50].astype(int)
    assert 0 < np.abs(ring).mean() < np.abs(out[30:35, 10:50].astype(int) - noise[30:35, 10:50].astype(int)).mean()


def test_blur_regions_keeps_metadata() -> None:
    image = pyvips.Image.new_from_file(str(FIXTURES / "icc_p3.jpg"))
    out = blur_regions(image, [(10, 10, 50, 20)])
    assert out.get("icc-profile-data") == image.get("icc-profile-data")
    assert out.interpretation == image.interpretation


# ------------------------------------------------------------------------------------ the plate rule


def quad(width: float, height: float, angle: float = 0.0) -> np.ndarray:
    pts = np.array(
        [[-width / 2, -height / 2], [width / 2, -height / 2], [width / 2, height / 2], [-width / 2, height / 2]]
    )
    rad = np.deg2rad(angle)
    rot = np.array([[np.cos(rad), -np.sin(rad)], [np.sin(rad), np.cos(rad)]])
    return np.asarray(pts @ rot.T + [500, 400], dtype=np.float32)


@pytest.mark.parametrize(
    ("text", "aspect", "expected"),
    [
        ("AB 123 CD", 5.0, True),
        ("KX 4821", 3.6, True),
        ("7ABC123", 3.4, True),
        ("AB-123-CD", 5.0, True),
        ("H.786 P0J", 4.5, True),
        ("京A12345", 3.5, True),
        ("ab12", 2.5, True),
        ("WATTUP", 4.0, True),  # letters-only vanity plate of 5+ letters in a 2-6 box
        ("123456", 3.5, True),  # digits-only plate
        ("OPEN", 2.7, False),  # 4 letters, no digit
        ("SALE", 2.7, False),
        ("CAT", 2.0, False),  # too short
        ("AB1", 2.0, False),
        ("ABCDEFG12345", 7.0, False),  # too long
        ("AB 123 CD", 1.2, False),  # not a text-line shape
        ("AB 123 CD", 12.0, False),
        ("WASHINGTONS", 6.5, False),
        ("BAKERY", 4.0, True),  # known over-blurring: any 5-8 letter word
        ("AB#123", 3.0, False),  # not alphanumeric after separators
    ],
)
def test_plate_rule(text: str, aspect: float, expected: bool) -> None:
    assert plates.looks_like_plate(text, quad(40 * aspect, 40)) is expected
    assert plates.looks_like_plate(text, quad(40 * aspect, 40, angle=80)) is expected  # rotation-independent


def test_widen_grows_in_the_text_frame_and_clips() -> None:
    assert plates.widen(quad(100, 20), 1000, 800) == (430, 384, 140, 32)
    assert plates.widen(quad(100, 20, angle=90), 1000, 800)[2:] == (32, 140)  # vertical text: grows along y
    assert plates.widen(quad(100, 20) - [480, 0], 1000, 800)[:2] == (0, 384)  # clipped at the left edge
    x, _, w, _ = plates.widen(quad(100, 20) + np.array([520, 0], dtype=np.float32), 1000, 800)
    assert x + w == 1000  # clipped at the right edge


def test_find_plates_checks_its_input() -> None:
    with pytest.raises(ValueError):
        plates.find_plates(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(ValueError):
        plates.find_plates(np.zeros((10, 10, 3), dtype=np.float32))


# ------------------------------------------------------------------------------------ YOLO override


def yolo_model(path: Path, candidates: list[tuple[float, ...]], masks: int = 0, fp16: bool = False) -> Path:
    """A fake Ultralytics export: the input is ignored, output 0 is constant ``[1, 4+1+masks, N]``."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    pred = np.zeros((1, 5 + masks, 64), dtype=np.float32)  # real exports have N (8400) > channels
    for i, cand in enumerate(candidates):
        pred[0, :5, i] = cand
    elem = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    nodes = [helper.make_node("Constant", [], ["output0"], value=numpy_helper.from_array(pred, "pred"))]
    outputs = [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(pred.shape))]
    if masks:
        protos = np.zeros((1, masks, 160, 160), dtype=np.float32)
        nodes.append(helper.make_node("Constant", [], ["output1"], value=numpy_helper.from_array(protos, "protos")))
        outputs.append(helper.make_tensor_value_info("output1", TensorProto.FLOAT, list(protos.shape)))
    graph = helper.make_graph(nodes, "yolo", [helper.make_tensor_value_info("images", elem, [1, 3, 640, 640])], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(("masks", "fp16"), [(0, False), (32, True)])
def test_yolo_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, masks: int, fp16: bool) -> None:
    path = yolo_model(
        tmp_path / f"plates{masks}.onnx",
        [
            (320, 320, 100, 40, 0.9),  # a plate in the middle
            (325, 322, 100, 40, 0.8),  # the same plate again: removed by NMS
            (100, 200, 60, 20, 0.2),  # below the score floor
            (600, 480, 60, 30, 0.5),  # near the bottom-right corner of the letterboxed picture
        ],
        masks,
        fp16,
    )
    use_model_files(monkeypatch, PLATES=str(path))
    boxes = plates.find_plates(np.zeros((720, 1280, 3), dtype=np.uint8))
    # 1280x720 -> 640x360, padded 140 px top and bottom; boxes widened by 20 %.
    assert boxes == [(520, 312, 240, 96), (1128, 644, 144, 72)], boxes


def test_yolo_decode_accepts_transposed_output() -> None:
    pred = np.zeros((1, 10, 5), dtype=np.float32)  # [1, N, 4+K]: N > 4+K
    pred[0, 0] = (320, 320, 100, 40, 0.9)
    pred[0, 1] = (10, 10, 5, 5, 0.1)
    assert plates.decode_yolo(pred) == [(320.0, 320.0, 100.0, 40.0)]
    assert plates.decode_yolo(pred.transpose(0, 2, 1)) == [(320.0, 320.0, 100.0, 40.0)]


def test_missing_override_is_a_422(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_model_files(monkeypatch, PLATES=str(tmp_path / "nope.onnx"))
    with pytest.raises(ModelMissing) as err:
        plates.find_plates(np.zeros((50, 50, 3), dtype=np.uint8))
    assert err.value.status == 422
    assert "RETOUCH_MODEL_PLATES" in err.value.public_message


# ------------------------------------------------------------------------------------ cost report


def test_cpu_time_report() -> None:
    """Not asserted: prints CPU seconds of find_plates (+ blur) at 1 MP and 12 MP (run with -s)."""
    plates.load()
    for size, plate_h in (((1155, 866), 50), ((4000, 3000), 120)):
        rgb, _ = scene("KX 4821", size=size, plate_h=plate_h)
        start = time.process_time()
        boxes = plates.find_plates(rgb)
        found = time.process_time()
        np.asarray(blur_regions(pyvips.Image.new_from_array(rgb), boxes).numpy())
        done = time.process_time()
        print(
            f"\nplates {size[0]}x{size[1]}: find {found - start:.2f} CPU-s, blur {done - found:.3f} CPU-s, "
            f"{len(boxes)} box(es), peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
        )
        assert boxes
