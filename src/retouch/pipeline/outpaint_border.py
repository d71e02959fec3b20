"""What ``fit: outpaint`` measures on the border and how it blends the fill in: complexity, grain, feathering.

* :func:`complexity` - how far the border is from what :func:`outpaint_fill.extend_plain` would make of it,
  in CIE76 Delta E (95th percentile over the bands along the extended edges, measured on a small copy so
  grain and JPEG noise do not count). A studio backdrop, a colour gradient or a vignette scores ~0.5-2;
  foliage, fabric, a scene or a subject cut by the edge scores 8 and more.
* :func:`grain` - noise as strong as the border's own grain next to it: the generated area does not look
  plastic next to a grainy photo.
* :func:`compose` - the original, and the generated layer plus grain, blended over the feathering zone.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from retouch.pipeline.outpaint_fill import F32, Sides, extend_plain

__all__ = ["GRAIN_SIGMA", "complexity", "compose", "feather_weights", "grain"]

#: Scale of what counts as grain: detail finer than a Gaussian of this sigma (px at full resolution).
GRAIN_SIGMA = 1.5
#: The grain's strength map is this many times smaller than the picture.
_STRENGTH_STEP = 4
#: The border is judged on a copy this long on its longest side.
_MEASURE_SIDE = 256


def _lab(rgb: F32) -> F32:
    import cv2

    lab = cv2.cvtColor(np.clip(rgb / 255.0, 0, 1).astype(np.float32), cv2.COLOR_RGB2Lab)
    return np.asarray(lab, dtype=np.float32)


def _band_sides(sides: Sides) -> list[tuple[str, int]]:
    return [(name, depth) for name, depth in vars(sides).items() if depth > 0]


def _oriented(image: npt.NDArray[Any], side: str) -> npt.NDArray[Any]:
    """``image`` turned so that ``side`` is its right edge."""
    if side == "right":
        return image
    if side == "left":
        return image[:, ::-1]
    if side == "bottom":
        return image.transpose(1, 0, 2)
    return image[::-1].transpose(1, 0, 2)  # top


def complexity(rgb: npt.NDArray[np.uint8], sides: Sides) -> float:
    """Delta E between each extended edge's band and its own plain continuation (see the module doc)."""
    import cv2

    height, width, _ = rgb.shape
    scale = min(1.0, _MEASURE_SIDE / max(width, height))
    small: npt.NDArray[Any] = rgb
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    image = np.asarray(
        cv2.GaussianBlur(small.astype(np.float32), (0, 0), 1.0), dtype=np.float32
    )  # what is left of grain at this scale
    worst = 0.0
    for side, _depth in _band_sides(sides):
        turned = np.ascontiguousarray(_oriented(image, side))
        w = turned.shape[1]
        band = max(2, min(w, round(w * 0.08)))
        if w <= band:
            continue  # nothing inside the band to predict it from: judged by the rest
        # Predict the band from the picture just inside it, the way the plain fill would continue it.
        inner = turned[:, : w - band]
        # The gradient carries on unclipped here: a steep but smooth ramp is a plain border too.
        predicted = extend_plain(inner, Sides(0, 0, band, 0), drift=math.inf)[:, w - band :]
        delta = np.linalg.norm(_lab(turned[:, w - band :]) - _lab(predicted), axis=2)
        worst = max(worst, float(np.percentile(delta, 95)))
    return worst


def grain(rgb: npt.NDArray[np.uint8], sides: Sides) -> F32:
    """Noise over the whole canvas with the border's grain, place by place: the local strength of the finest
    detail (per channel) is measured over the picture and continued outwards like a plain backdrop, so a
    grainy shadow along one edge and a clean sky along another each keep their own. One noise field for all
    channels (luminance grain, as cameras and JPEG leave it); seeded, so a request gives the same picture."""
    import cv2

    height, width, _ = rgb.shape
    image = rgb.astype(np.float32)
    fine = image - cv2.GaussianBlur(image, (0, 0), GRAIN_SIGMA, borderType=cv2.BORDER_REFLECT)
    # Mean absolute fine detail over ~16 px, as a standard deviation (x 1.25 for Gaussian noise). It varies
    # slowly, so it is measured and continued on a 4x smaller map (a third of the step's time at full size).
    canvas_h, canvas_w = height + sides.top + sides.bottom, width + sides.left + sides.right
    small = (max(1, width // _STRENGTH_STEP), max(1, height // _STRENGTH_STEP))
    strength = cv2.resize(np.abs(fine), small, interpolation=cv2.INTER_AREA)
    strength = 1.25 * cv2.GaussianBlur(strength, (0, 0), 8.0 / _STRENGTH_STEP, borderType=cv2.BORDER_REFLECT)
    step = Sides(*(round(depth / _STRENGTH_STEP) for depth in vars(sides).values()))
    strength = extend_plain(np.asarray(strength, dtype=np.float32).reshape(small[1], small[0], 3), step)
    strength = cv2.resize(strength, (canvas_w, canvas_h), interpolation=cv2.INTER_LINEAR)
    noise = np.random.default_rng(20261204).standard_normal((canvas_h, canvas_w), dtype=np.float32)
    unit = noise - cv2.GaussianBlur(noise, (0, 0), GRAIN_SIGMA, borderType=cv2.BORDER_REFLECT)
    unit /= max(float(unit.std()), 1e-6)
    field = np.asarray(strength, dtype=np.float32)
    field *= unit[:, :, None]  # in place: at 12 MP every canvas-sized copy is 200 MB
    return field


def feather_weights(height: int, width: int, sides: Sides, feathering: float) -> F32:
    """Weight of the generated layer over the content (height x width): 0 inside, rising smoothly to 1 at
    each extended edge over ``feathering`` x that side's extension depth (at most a third of the content)."""
    weights = np.zeros((height, width), dtype=np.float32)
    for side, depth in _band_sides(sides):
        across = width if side in ("left", "right") else height
        zone = min(round(feathering * depth), across // 3)
        if zone < 1:
            continue
        t = np.clip(1.0 - (np.arange(across, dtype=np.float32) + 0.5) / zone, 0.0, 1.0)
        ramp = t * t * (3.0 - 2.0 * t)  # smoothstep: no kink where the zone begins
        if side == "left":
            weights = np.maximum(weights, ramp[None, :])
        elif side == "right":
            weights = np.maximum(weights, ramp[::-1][None, :])
        elif side == "top":
            weights = np.maximum(weights, ramp[:, None])
        else:
            weights = np.maximum(weights, ramp[::-1][:, None])
    return weights


def compose(
    content: npt.NDArray[np.uint8], generated: F32, sides: Sides, feathering: float, grain: F32
) -> npt.NDArray[np.uint8]:
    """The canvas: the generated layer plus grain outside the content, the original inside, and between
    them a feathering zone where the original fades into the generated layer towards each extended edge."""
    height, width, _ = content.shape
    out = generated  # the caller's layer, added to in place (a canvas-sized copy saved)
    out += grain
    box = (slice(sides.top, sides.top + height), slice(sides.left, sides.left + width))
    weight = feather_weights(height, width, sides, feathering)[:, :, None]
    out[box] = content * (1.0 - weight) + out[box] * weight
    result: npt.NDArray[np.uint8] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return result
