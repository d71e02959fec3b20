"""The two classical fills behind ``fit: outpaint`` (the step is ``outpaint.py``), in numpy.

* :func:`extend_plain` - studio and plain backgrounds: every extended edge is continued from the
  border's own colour and its gradient across the edge, and the colour profile along the edge diffuses
  (blurs more the further out), like heat spreading from the border: a soft shadow near the edge fades
  out instead of streaking to the canvas edge. Grain is added afterwards (``outpaint_border.grain``).
* :func:`extend_texture` - textured borders: PatchMatch at a reduced working size, with only a band
  along the extended edges as its source, so it continues the border's texture and cannot copy the
  subject in the middle of the picture into the new area.

Both return a float32 "generated layer" over the whole canvas; ``outpaint_border.compose`` blends it
with the original. Arrays are HxWxC float32 in 0-255 unless a name says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["WORK_PIXELS", "Sides", "extend_plain", "extend_texture", "source_band"]

F32 = npt.NDArray[np.float32]

#: Canvas pixels PatchMatch works on (~0.075 MP, e.g. 336x225). Its time grows faster than the pixel count
#: (0.075 MP: ~0.9 s, 0.10 MP: ~1.7 s, 0.15 MP: ~3 s on a loaded 2-core machine), and the 2-second budget for
#: a 1-MP picture decides: the fill is soft at full size, and the border's grain stands in for its detail.
WORK_PIXELS = 75_000
#: Levels the gradient across an edge may add as it carries on (it fades over a band's width).
MAX_DRIFT = 2.0


@dataclass(frozen=True)
class Sides:
    """Pixels added on each side of the content."""

    left: int
    top: int
    right: int
    bottom: int

    def any(self) -> bool:
        return max(self.left, self.top, self.right, self.bottom) > 0


def _blur_along(profile: F32, sigma: float) -> F32:
    """Gaussian blur of an (N, C) profile along N, mirrored at the ends."""
    if sigma < 0.3 or profile.shape[0] < 2:
        return profile
    import cv2

    out = cv2.GaussianBlur(profile[:, None, :], (1, 0), sigmaX=0.1, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    return np.asarray(out, dtype=np.float32).reshape(profile.shape)


def _band_width(length: int) -> int:
    """How many pixels next to an edge describe it: 5% of the picture's depth, 3..48 px."""
    return int(min(length, max(3, min(48, round(length * 0.05)))))


def _extend_right(image: F32, depth: int, drift: float) -> F32:
    """The (H, depth, C) strip that continues ``image`` past its right edge."""
    width = image.shape[1]
    band = _band_width(width)
    values = image[:, width - band :, :]
    # A straight line through each row of the band, measured at the last column: its value there is
    # the edge's colour (the band's mean would sit half a band inside, a step on any gradient), and its
    # slope the gradient across the edge.
    x = np.arange(band, dtype=np.float32) - (band - 1)
    xm = float(x.mean())
    spread = float(((x - xm) ** 2).sum()) or 1.0
    mean = values.mean(axis=1)
    slope = ((x - xm)[None, :, None] * (values - mean[:, None, :])).sum(axis=1) / spread
    edge = mean - slope * xm
    # Grain and texture inside the band must not become streaks: smooth along the edge over a band's width.
    edge = _blur_along(edge.astype(np.float32), band / 2)
    slope = _blur_along(slope.astype(np.float32), band / 2)
    # The gradient carries on, but fades over a band's width and adds at most `drift` levels: a lit backdrop
    # keeps its direction across the seam without drifting away from the border's colour.
    tau = float(band)
    slope = np.clip(slope, -drift / tau, drift / tau)

    def carried(d: float) -> float:  # how far the gradient has carried on at distance d (linear when unbounded)
        return d if math.isinf(drift) else tau * (1.0 - math.exp(-d / tau))

    # Profiles at a few distances (geometric steps), linearly interpolated between: the blur along the edge
    # grows with the distance (half of it), which is what diffusing from the border looks like.
    steps = np.unique(np.concatenate([[0.0], np.geomspace(1.0, max(depth, 1), num=min(depth, 24))]))
    profiles = np.stack([_blur_along((edge + slope * carried(float(d))).astype(np.float32), 0.5 * d) for d in steps])
    d = np.arange(1, depth + 1, dtype=np.float32)
    index = np.clip(np.searchsorted(steps, d) - 1, 0, len(steps) - 2)
    lo, hi = steps[index], steps[index + 1]
    weight = ((d - lo) / np.maximum(hi - lo, 1e-6)).astype(np.float32)[:, None, None]
    strip = profiles[index] * (1.0 - weight) + profiles[index + 1] * weight  # (depth, H, C)
    return np.ascontiguousarray(strip.transpose(1, 0, 2), dtype=np.float32)


def _extend_rows(image: F32, left: int, right: int, drift: float) -> F32:
    parts = []
    if left:
        parts.append(_extend_right(image[:, ::-1], left, drift)[:, ::-1])
    parts.append(image)
    if right:
        parts.append(_extend_right(image, right, drift))
    return np.concatenate(parts, axis=1) if len(parts) > 1 else image


def extend_plain(image: F32, sides: Sides, drift: float = MAX_DRIFT) -> F32:
    """``image`` continued by ``sides``: left and right first, then top and bottom over the full width, so
    the corners continue the side extensions too. ``drift``: how many levels the continued gradient may add
    (``math.inf``: the gradient goes on as a straight line - how the border's complexity is judged)."""
    wide = _extend_rows(image, sides.left, sides.right, drift)
    if not (sides.top or sides.bottom):
        return wide
    tall = _extend_rows(np.ascontiguousarray(wide.transpose(1, 0, 2)), sides.top, sides.bottom, drift)
    return np.ascontiguousarray(tall.transpose(1, 0, 2))


def source_band(depth: int, across: int, shorter: int) -> int:
    """Depth (in content pixels) of the band along an extended edge that PatchMatch may copy from: one and
    a half times the extension, at least 8% of the shorter side, at most 30% of the picture across that edge
    - wide enough to hold the texture, never reaching the subject in the middle of the picture."""
    return int(min(0.3 * across, max(1.5 * depth, 0.08 * shorter, 8)))


def extend_texture(rgb: npt.NDArray[np.uint8], sides: Sides) -> F32:
    """PatchMatch fill of the extension at a reduced working size, scaled back up to the canvas (smooth:
    ``compose`` adds the grain and blends it in)."""
    import cv2

    from retouch.models.patchmatch import inpaint

    height, width, _ = rgb.shape
    canvas_w, canvas_h = width + sides.left + sides.right, height + sides.top + sides.bottom
    scale = min(1.0, float(np.sqrt(WORK_PIXELS / (canvas_w * canvas_h))))

    def small(v: int) -> int:
        return max(1, round(v * scale))

    sw, sh = small(width), small(height)
    left, top = small(sides.left) if sides.left else 0, small(sides.top) if sides.top else 0
    right, bottom = small(sides.right) if sides.right else 0, small(sides.bottom) if sides.bottom else 0
    work = np.zeros((sh + top + bottom, sw + left + right, 3), dtype=np.uint8)
    work[top : top + sh, left : left + sw] = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
    hole = np.ones(work.shape[:2], dtype=np.uint8)
    hole[top : top + sh, left : left + sw] = 0
    # Only bands along the extended edges are a source; the rest of the content is frozen.
    frozen = np.zeros_like(hole)
    shorter = min(width, height)
    x0 = left + (round(source_band(sides.left, width, shorter) * scale) if sides.left else 0)
    x1 = left + sw - (round(source_band(sides.right, width, shorter) * scale) if sides.right else 0)
    y0 = top + (round(source_band(sides.top, height, shorter) * scale) if sides.top else 0)
    y1 = top + sh - (round(source_band(sides.bottom, height, shorter) * scale) if sides.bottom else 0)
    if x1 > x0 and y1 > y0:
        frozen[y0:y1, x0:x1] = 1
    filled = inpaint(work, hole, frozen)
    up = cv2.resize(filled, (canvas_w, canvas_h), interpolation=cv2.INTER_LINEAR)
    return np.asarray(up, dtype=np.float32)
