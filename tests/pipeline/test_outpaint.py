"""fit outpaint: exact sizes for every form of outpaint_by, colour and seams on plain backdrops, no seam and
no copied subject on a textured scene, feathering, alpha, and the refusal where neither fill is plausible."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import pyvips

from retouch.contracts.edit import UploadData
from retouch.errors import ImageError, InputError
from retouch.pipeline import Encoded, run
from retouch.settings import Limits
from tests.conftest import fixture_bytes
from tests.pipeline.outpaint_scenes import MAGENTA, gradient, png, studio, textured

pytest.importorskip("cv2")
pytest.importorskip("patchmatch")


def outpaint(data: bytes, resizing: dict[str, Any] | None = None, **fit: Any) -> Encoded:
    ops = {"resizing": {**(resizing or {}), "fit": {"type": "outpaint", **fit}}}
    request = UploadData.model_validate({"operations": ops, "output": {"format": "png"}})
    return run(data, request.operations, request.output, Limits())


def array(result: Encoded) -> npt.NDArray[np.uint8]:
    return np.asarray(pyvips.Image.new_from_buffer(result.data, "").numpy())


def lab(rgb: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    from skimage.color import rgb2lab

    out: npt.NDArray[np.float64] = rgb2lab(np.clip(rgb, 0, 255) / 255.0)
    return out


def smooth(rgb: npt.NDArray[Any], sigma: float = 4.0) -> npt.NDArray[np.float64]:
    import cv2

    out: npt.NDArray[np.float64] = cv2.GaussianBlur(rgb.astype(np.float64), (0, 0), sigma)
    return out


def content_box(out: npt.NDArray[Any], source: npt.NDArray[Any]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the source on the canvas (centred, as the plan puts it)."""
    (h, w), (ch, cw) = source.shape[:2], out.shape[:2]
    x0, y0 = (cw - w) // 2, (ch - h) // 2
    return x0, y0, x0 + w, y0 + h


def seam_ratios(out: npt.NDArray[np.uint8], box: tuple[int, int, int, int]) -> list[float]:
    """For each of the four seams: the mean step in grey across the seam over the mean step between
    neighbouring lines just inside the picture (1 = the seam is as busy as the picture, no more)."""
    grey = out.astype(np.float64).mean(axis=2)
    x0, y0, x1, y1 = box
    rows, cols = slice(y0, y1), slice(x0, x1)

    def steps(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
        return float(np.abs(a - b).mean())

    inside = 12
    ratios = [
        steps(grey[rows, x0], grey[rows, x0 - 1])
        / np.mean([steps(grey[rows, x], grey[rows, x + 1]) for x in range(x0 + 2, x0 + inside)]),
        steps(grey[rows, x1 - 1], grey[rows, x1])
        / np.mean([steps(grey[rows, x], grey[rows, x - 1]) for x in range(x1 - inside, x1 - 2)]),
        steps(grey[y0, cols], grey[y0 - 1, cols])
        / np.mean([steps(grey[y, cols], grey[y + 1, cols]) for y in range(y0 + 2, y0 + inside)]),
        steps(grey[y1 - 1, cols], grey[y1, cols])
        / np.mean([steps(grey[y, cols], grey[y - 1, cols]) for y in range(y1 - inside, y1 - 2)]),
    ]
    return [float(r) for r in ratios]


def outside(out: npt.NDArray[Any], box: tuple[int, int, int, int]) -> npt.NDArray[np.bool_]:
    mask = np.ones(out.shape[:2], dtype=bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = False
    return mask


# ------------------------------------------------------------------------------------------- sizes

SOURCE = studio(200, 100)


@pytest.mark.parametrize(
    ("resizing", "outpaint_by", "size"),
    [
        ({}, "10%", (220, 110)),
        ({}, "5% 15%", (210, 115)),
        ({}, "5% 0%", (210, 100)),
        ({}, "1024px", (1224, 1124)),
        ({}, "1024px 512px", (1224, 612)),
        ({}, "0px 1024px", (200, 1124)),
        ({}, None, (200, 100)),  # nothing asked: nothing grows
        ({"width": 400}, "10%", (400, 200)),  # one side: the other follows the grown picture's shape
        ({"width": "200%"}, "10%", (400, 200)),
        ({"height": 300}, "0px 100px", (400, 300)),
        ({"width": 300, "height": 300}, None, (300, 300)),  # both sides: one direction only, from the shape
        ({"width": 300, "height": 300}, "20%", (300, 300)),
        ({"width": 640, "height": 360}, "30px", (640, 360)),
    ],
)
def test_every_outpaint_by_form_gives_the_exact_size(
    resizing: dict[str, Any], outpaint_by: str | None, size: tuple[int, int]
) -> None:
    fit = {"outpaint_by": outpaint_by} if outpaint_by else {}
    result = outpaint(png(SOURCE), resizing, **fit)
    assert (result.width, result.height) == size
    assert array(result).shape[:2] == (size[1], size[0])


def test_outpaint_by_larger_than_the_output_is_refused() -> None:
    with pytest.raises(InputError, match="leaves no room"):
        outpaint(png(SOURCE), {"width": 100, "height": 100}, outpaint_by="200px")


# ------------------------------------------------------------------------------------ plain backdrops


@pytest.mark.parametrize("scene", [studio, gradient], ids=["studio", "gradient"])
def test_plain_backdrop_continues_within_delta_e_3_without_a_seam(scene: Any) -> None:
    from retouch.pipeline.outpaint import PLAIN_DELTA_E, choose
    from retouch.pipeline.outpaint_fill import Sides

    source = scene()
    assert choose(source, Sides(60, 45, 60, 45))[0] == "plain"
    assert choose(source, Sides(60, 45, 60, 45))[1] < PLAIN_DELTA_E / 2  # well clear of the threshold
    out = array(outpaint(png(source), outpaint_by="20%"))
    box = content_box(out, source)
    x0, y0, x1, y1 = box
    # Each new pixel against the border pixel nearest to it, grain smoothed away on both.
    ys, xs = np.nonzero(outside(out, box))
    near = smooth(source)[np.clip(ys, y0, y1 - 1) - y0, np.clip(xs, x0, x1 - 1) - x0]
    delta = np.linalg.norm(lab(smooth(out)[ys, xs]) - lab(near), axis=1)
    assert np.percentile(delta, 99) < 3.0, np.percentile(delta, [50, 99, 100])
    ratios = seam_ratios(out, box)
    assert all(0.6 < r < 1.5 for r in ratios), ratios  # no step, and the new side is not smoother either
    # The grain is matched: fine detail outside as strong as inside (not a plastic fill).
    fine_out = (out.astype(np.float64) - smooth(out, 1.5))[:y0, x0:x1].std()
    fine_in = (source.astype(np.float64) - smooth(source, 1.5))[8:40, 8:-8].std()
    assert 0.7 < fine_out / fine_in < 1.4, (fine_out, fine_in)


def test_feathering_blends_only_the_zone_it_names() -> None:
    source = gradient(300, 200)
    sharp = array(outpaint(png(source), outpaint_by="40%", feathering="0%"))
    soft = array(outpaint(png(source), outpaint_by="40%", feathering="50%"))
    x0, y0, x1, y1 = content_box(sharp, source)
    assert np.array_equal(sharp[y0:y1, x0:x1], source)  # 0%: the original untouched
    inner = soft[y0:y1, x0:x1].astype(int) - source
    depth = x0  # 20% of 300 per side = 60 px; 50% feathering = 30 px inside each edge
    assert np.abs(inner[:, :5]).mean() > 0.5  # blended next to the edge
    assert not np.any(inner[40:-40, depth // 2 + 2 : -(depth // 2 + 2)])  # untouched beyond the zone


def test_alpha_is_continued() -> None:
    out = outpaint(fixture_bytes("alpha.png"), outpaint_by="20%")
    pixels = array(out)
    assert pixels.shape == (360, 480, 4)
    assert pixels[:20, :, 3].max() == 0 and pixels[:, :20, 3].max() == 0  # transparent background goes on
    assert tuple(pixels[180, 240]) == (255, 0, 0, 255)


# ------------------------------------------------------------------------------------ textured scenes


def test_textured_scene_has_no_hard_seam_and_no_copied_subject() -> None:
    from retouch.pipeline.outpaint import PLAIN_DELTA_E
    from retouch.pipeline.outpaint_border import complexity
    from retouch.pipeline.outpaint_fill import Sides

    source = textured()
    assert complexity(source, Sides(48, 36, 48, 36)) > PLAIN_DELTA_E  # PatchMatch is what runs here
    out = array(outpaint(png(source), outpaint_by="20%"))
    box = content_box(out, source)
    ratios = seam_ratios(out, box)
    assert max(ratios) < 1.5, ratios
    new = out[outside(out, box)].astype(int)
    magenta = (np.abs(new - np.array(MAGENTA)).max(axis=1) < 60).sum()
    assert magenta == 0  # the subject in the middle was never a source
    assert new.std(axis=0).min() > 10  # a texture, not a flat fill


def test_real_photo_has_no_hard_seam() -> None:
    source = np.asarray(pyvips.Image.new_from_buffer(fixture_bytes("coffee.jpg"), "").numpy())
    out = array(outpaint(fixture_bytes("coffee.jpg"), outpaint_by="20%"))
    ratios = seam_ratios(out, content_box(out, source))
    assert max(ratios) < 1.5, ratios


def test_textured_border_too_far_is_refused_with_the_reason() -> None:
    with pytest.raises(ImageError, match=r"textured .*left edge would grow"):
        outpaint(png(textured()), {"width": 1440, "height": 360})
    # The same request on a studio backdrop is fine: a plain fill goes any distance.
    assert outpaint(png(studio(480, 360)), {"width": 1440, "height": 360}).width == 1440


def test_without_the_libraries_outpaint_answers_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from retouch import models
    from retouch.errors import OperationUnavailable
    from retouch.work.item import check_available

    request = UploadData.model_validate({"operations": {"resizing": {"fit": "outpaint"}}})
    check_available(request.operations)  # installed here: accepted
    monkeypatch.setitem(models.LIBRARIES, "resizing.fit.outpaint", {"no_such_module_here": "PyPatchMatch"})
    with pytest.raises(OperationUnavailable, match=r"PyPatchMatch is missing .*retouch\[ai\]"):
        check_available(request.operations)
