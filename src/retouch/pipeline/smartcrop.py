"""Content-aware crops: face-aware smart crop (``crop: smart``) and the privacy identity crop.

Smart crop picks the ``width x height`` window of an image that already covers that size, in this order:
faces (CenterFace), else the salient object (a mask callable, u2netp in practice), else libvips' own
``attention`` smartcrop, which is what ``crop: smart`` did before the models existed. Analysis runs on a
copy shrunk to about one megapixel: the window only needs to be right to a pixel or two, and the detector
would shrink to that size anyway.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyvips

from retouch.errors import ImageError
from retouch.models import ModelMissing
from retouch.models.faces import MAX_PIXELS, Face, detect_faces

__all__ = [
    "FACE_MARGIN",
    "Saliency",
    "identity_crop",
    "identity_crop_box",
    "smart_crop",
    "smart_crop_window",
]

log = logging.getLogger("retouch.smartcrop")

#: HxWx3 uint8 -> HxW alpha in 0..1 (a mask of another size is scaled to the image).
Saliency = Callable[[npt.NDArray[np.uint8]], npt.NDArray[Any]]
#: Face boxes are grown by this fraction of their size on every side before fitting them in the window:
#: CenterFace boxes run from brow to chin, so without it hair and ears are cut right at the edge.
FACE_MARGIN = 0.15

_Box = tuple[float, float, float, float]


def _analysis_rgb(image: pyvips.Image) -> tuple[npt.NDArray[np.uint8], float, float]:
    """A small 8-bit RGB copy as numpy, and the x/y factors that map its pixels back to ``image``.

    Shrinking in libvips first means a 12 MP input never becomes a 36 MB array just to be shrunk again.
    """
    scale = min(1.0, math.sqrt(MAX_PIXELS / (image.width * image.height)))
    small = image.resize(scale, kernel="linear") if scale < 1.0 else image
    if small.hasalpha():
        small = small.extract_band(0, n=small.bands - 1)
    if small.bands < 3 or small.interpretation in ("rgb16", "grey16"):
        small = small.colourspace("srgb")  # also scales 16-bit to 8-bit, which a plain cast would clip
    if small.format != "uchar":
        small = small.cast("uchar")
    rgb: npt.NDArray[np.uint8] = small.numpy()
    return rgb, image.width / small.width, image.height / small.height


def _fits(box: _Box, width: int, height: int) -> bool:
    return box[2] - box[0] <= width and box[3] - box[1] <= height


def _union(a: _Box, b: _Box) -> _Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _expand(box: _Box, margin: float, bounds: tuple[int, int]) -> _Box:
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    return max(0.0, x1 - dx), max(0.0, y1 - dy), min(float(bounds[0]), x2 + dx), min(float(bounds[1]), y2 + dy)


def _points_box(points: Sequence[tuple[float, float]]) -> _Box:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _face_region(
    faces: list[Face], width: int, height: int, bounds: tuple[int, int]
) -> tuple[_Box, tuple[float, float]]:
    """The box to keep whole, and the point to centre on along any axis where that box is too big.

    The most prominent face (area x score) anchors the region: its box with the margin, else its bare box,
    else the eyes-to-mouth landmark box. Then each other face, most prominent first, joins when the union
    still fits (with its margin if possible), so when not all fit, the big and confident ones win.
    """
    ranked = sorted(faces, key=lambda f: f.area * f.score, reverse=True)
    top = ranked[0]
    core = _points_box(top.landmarks)
    focus = ((core[0] + core[2]) / 2, (core[1] + core[3]) / 2)
    candidates = (_expand(top.box, FACE_MARGIN, bounds), top.box, core)
    region = next((box for box in candidates if _fits(box, width, height)), core)
    for face in ranked[1:]:
        for box in (_expand(face.box, FACE_MARGIN, bounds), face.box):
            joined = _union(region, box)
            if _fits(joined, width, height):
                region = joined
                break
    return region, focus


def _salient_region(mask: npt.NDArray[Any], image_size: tuple[int, int]) -> tuple[_Box, tuple[float, float]] | None:
    """Bounding box and centroid of mask > 0.5, in image pixels; None when nothing is salient."""
    alpha = np.asarray(mask, dtype=np.float32)
    if alpha.ndim == 3:
        alpha = alpha[:, :, 0]
    ys, xs = np.nonzero(alpha > 0.5)
    if xs.size == 0:
        return None
    fx, fy = image_size[0] / alpha.shape[1], image_size[1] / alpha.shape[0]
    box = (float(xs.min()) * fx, float(ys.min()) * fy, float(xs.max() + 1) * fx, float(ys.max() + 1) * fy)
    return box, ((float(xs.mean()) + 0.5) * fx, (float(ys.mean()) + 0.5) * fy)


def _place(lo: float, hi: float, focus: float, size: int, total: int) -> int:
    """Offset along one axis: centre [lo, hi] in the window if it fits (and then keep it whole), else
    centre on ``focus``. The window never leaves the image: at an edge, centring gives way (containment of
    [lo, hi] still holds, since it lies inside the image)."""
    if hi - lo <= size:
        start = round((lo + hi - size) / 2)
        # Rounding may shave a fractional pixel off one side; nudge the window to contain the region.
        if math.ceil(hi) - math.floor(lo) <= size:
            start = min(max(start, math.ceil(hi) - size), math.floor(lo))
    else:
        start = round(focus - size / 2)
    return min(max(start, 0), total - size)


def smart_crop_window(
    image: pyvips.Image, width: int, height: int, saliency: Saliency | None = None
) -> tuple[int, int]:
    """(left, top) of the ``width x height`` window :func:`smart_crop` cuts from ``image``.

    ``image`` must cover the window (both sides >= the window's). If the face model is not installed, or
    the saliency callable raises :class:`ModelMissing`, the next strategy is used: ``crop: smart`` worked
    without the AI extra before, and must keep working.
    """
    total_w, total_h = image.width, image.height
    if width > total_w or height > total_h or width < 1 or height < 1:
        raise ValueError(f"smart crop window {width}x{height} does not fit in the {total_w}x{total_h} image")
    if (width, height) == (total_w, total_h):
        return 0, 0
    found: tuple[_Box, tuple[float, float]] | None = None
    rgb, fx, fy = _analysis_rgb(image)
    try:
        faces = detect_faces(rgb)
    except ModelMissing as exc:
        log.info("smart crop without faces: %s", exc.public_message)
        faces = []
    if faces:
        scaled = [
            Face(
                (f.box[0] * fx, f.box[1] * fy, f.box[2] * fx, f.box[3] * fy),
                f.score,
                tuple((x * fx, y * fy) for x, y in f.landmarks),
            )
            for f in faces
        ]
        found = _face_region(scaled, width, height, (total_w, total_h))
    elif saliency is not None:
        try:
            found = _salient_region(saliency(rgb), (total_w, total_h))
        except ModelMissing as exc:
            log.info("smart crop without saliency: %s", exc.public_message)
    if found is not None:
        (x1, y1, x2, y2), (cx, cy) = found
        return _place(x1, x2, cx, width, total_w), _place(y1, y2, cy, height, total_h)
    # libvips reports only the attention centre; it places the window exactly like this (checked in tests).
    _, info = image.smartcrop(width, height, interesting="attention", attention_x=True, attention_y=True)
    left = min(max(int(info["attention_x"]) - width // 2, 0), total_w - width)
    top = min(max(int(info["attention_y"]) - height // 2, 0), total_h - height)
    return left, top


def smart_crop(image: pyvips.Image, width: int, height: int, saliency: Saliency | None = None) -> pyvips.Image:
    """Cut ``width x height`` out of ``image`` (already scaled to cover it), keeping faces, else the salient
    object, else what libvips' attention finds interesting."""
    # The image is read twice (analysis, then the crop); a sequential decode cannot be re-read, and the
    # image is already at output size, so holding it in memory is bounded by the output limits.
    image = image.copy_memory()
    left, top = smart_crop_window(image, width, height, saliency)
    return image.crop(left, top, width, height)


def identity_crop_box(rgb: npt.NDArray[Any]) -> tuple[int, int, int, int]:
    """(left, top, width, height) that removes everything above the nose-mouth line, for every face.

    Each face's line is halfway between its nose tip and the mean of its mouth corners. With several faces
    the lowest line is used, so no face keeps its eyes and nose in the result (privacy first: a group photo
    loses more than the top face's forehead). The cut is rounded down the image, and at least one row is kept.
    Raises :class:`ImageError` when no face is found: an "identity removed" image must never silently keep one.
    """
    height, width = rgb.shape[:2]
    faces = detect_faces(rgb)
    if not faces:
        raise ImageError("privacy.identity_crop: no face found in the image")
    lines = [(f.landmarks[2][1] + (f.landmarks[3][1] + f.landmarks[4][1]) / 2) / 2 for f in faces]
    cut = min(max(math.ceil(max(lines)), 0), height - 1)
    return 0, cut, width, height - cut


def identity_crop(image: pyvips.Image) -> pyvips.Image:
    """:func:`identity_crop_box` applied to a pyvips image (analysis on a ~1 MP copy, cut at full size)."""
    image = image.copy_memory()
    rgb, _, fy = _analysis_rgb(image)
    _, top, _, _ = identity_crop_box(rgb)
    cut = min(math.ceil(top * fy), image.height - 1)
    return image.crop(0, cut, image.width, image.height - cut)
