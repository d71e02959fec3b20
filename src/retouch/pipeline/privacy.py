"""Privacy: ``privacy.blur_car_plate`` finds licence plates and blurs them beyond legibility.

Detection is :func:`retouch.models.plates.find_plates` (PP-OCRv4 text + a plate-text rule, or an
operator's YOLO model). Each box is pixelated (4 blocks over its height), then gaussian-blurred,
and composited back with a feathered edge that starts at the box and fades out beyond it, so the box
itself is fully covered. Alpha is kept as it was. An image without plates comes back pixel-identical.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pyvips

from retouch.pipeline.edit import Edit

__all__ = ["blur_plates", "blur_regions"]

BLOCKS = 4  # pixel blocks over the height of a (widened) plate box
SIGMA = 0.8  # gaussian sigma after pixelation, in blocks
FEATHER = 0.15  # feather width outside the box, as a share of the box's shorter side


def blur_plates(image: pyvips.Image, edit: Edit) -> pyvips.Image:
    privacy = edit.ops.privacy
    if privacy is None or not privacy.blur_car_plate:
        return image
    from retouch.models.plates import DETECT_SIDE, find_plates

    # One evaluation of the (sequential-access) decode: detection and compositing both read these pixels.
    image = image.copy_memory()
    # The detector never looks at more than DETECT_SIDE px on the long side, so shrink here, in
    # libvips: handing it the full 12 MP array (plus its BGR copy) cost ~100 MB of peak memory for
    # pixels it would have thrown away. Boxes are scaled back outwards (floor/ceil: never smaller).
    scale = min(1.0, DETECT_SIDE / max(image.width, image.height))
    view = image if scale == 1.0 else image.resize(scale)
    boxes = [_scale_box(box, scale, image.width, image.height) for box in find_plates(_rgb(view))]
    return blur_regions(image, boxes) if boxes else image


def _scale_box(box: tuple[int, int, int, int], scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    if scale == 1.0:
        return box
    x, y, w, h = box
    x0, y0 = max(0, math.floor(x / scale)), max(0, math.floor(y / scale))
    x1, y1 = min(width, math.ceil((x + w) / scale)), min(height, math.ceil((y + h) / scale))
    return (x0, y0, x1 - x0, y1 - y0)


def _rgb(image: pyvips.Image) -> np.ndarray:
    colour = image.bands - 1 if image.hasalpha() else image.bands
    pixels = np.asarray(image.numpy())
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    pixels = pixels[..., :colour]
    if colour < 3:
        pixels = np.repeat(pixels[..., :1], 3, axis=2)
    return np.ascontiguousarray(pixels[..., :3], dtype=np.uint8)


def blur_regions(image: pyvips.Image, boxes: Iterable[tuple[int, int, int, int]]) -> pyvips.Image:
    """Pixelate + blur each ``(x, y, w, h)`` box of an 8-bit image, feathered outwards; alpha untouched.

    Boxes are processed in order on the result so far, so overlapping boxes stay blurred."""
    boxes = [b for b in boxes if b[2] > 0 and b[3] > 0]
    if not boxes:
        return image
    out = image.copy_memory()  # random access for the crops (a no-op when already in memory)
    colour = out.bands - 1 if out.hasalpha() else out.bands
    for x, y, w, h in boxes:
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(out.width, x + w), min(out.height, y + h)
        if x1 <= x0 or y1 <= y0:
            continue
        feather = max(2, round(FEATHER * min(x1 - x0, y1 - y0)))
        px0, py0 = max(0, x0 - feather), max(0, y0 - feather)
        px1, py1 = min(out.width, x1 + feather), min(out.height, y1 + feather)
        patch = np.asarray(out.crop(px0, py0, px1 - px0, py1 - py0).numpy())
        if patch.ndim == 2:
            patch = patch[..., None]
        pixels = patch[..., :colour].astype(np.float32)
        obscured = _obscure(pixels, y1 - y0)
        mask = _mask(px1 - px0, py1 - py0, (x0 - px0, y0 - py0, x1 - px0, y1 - py0), feather)
        mixed = pixels + (obscured - pixels) * mask[..., None]
        result = patch.copy()
        result[..., :colour] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        tile = pyvips.Image.new_from_memory(
            np.ascontiguousarray(result).tobytes(), result.shape[1], result.shape[0], result.shape[2], "uchar"
        )
        out = out.insert(tile, px0, py0)
    return out.copy_memory()


def _obscure(pixels: np.ndarray, box_height: int) -> np.ndarray:
    """Pixelate to ~BLOCKS blocks over the box height (area average), upscale, then gaussian blur."""
    import cv2

    height, width = pixels.shape[:2]
    block = max(2.0, box_height / BLOCKS)
    small = cv2.resize(
        pixels, (max(1, round(width / block)), max(1, round(height / block))), interpolation=cv2.INTER_AREA
    )
    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    if big.ndim == 2:
        big = big[..., None]
    blurred = cv2.GaussianBlur(big, (0, 0), SIGMA * block, borderType=cv2.BORDER_REPLICATE)
    if blurred.ndim == 2:
        blurred = blurred[..., None]
    return np.asarray(blurred, dtype=np.float32)


def _mask(width: int, height: int, box: tuple[int, int, int, int], feather: int) -> np.ndarray:
    """1 inside the box, a smoothstep fade to 0 over ``feather`` px outside it."""
    x0, y0, x1, y1 = box
    xs = np.arange(width, dtype=np.float32) + 0.5
    ys = np.arange(height, dtype=np.float32) + 0.5
    dx = np.maximum(np.maximum(x0 - xs, xs - x1), 0)
    dy = np.maximum(np.maximum(y0 - ys, ys - y1), 0)
    distance = np.hypot(dx[None, :], dy[:, None])  # rounded corners
    t = np.clip(1 - distance / feather, 0, 1)
    return np.asarray(t * t * (3 - 2 * t), dtype=np.float32)
