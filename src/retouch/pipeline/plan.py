"""The geometry of an edit, computed once from the source size and the request: pure arithmetic.

Everything about sizes is decided here, before a single pixel is decoded, so limits are checked
up front and the decoder can shrink on load straight to the planned size.
"""

from __future__ import annotations

from dataclasses import dataclass

from retouch.contracts.common import Length, parse_length
from retouch.contracts.operations import Fit, ImageOperations, Padding
from retouch.errors import ImageError, InputError, LimitExceeded
from retouch.settings import Limits

__all__ = ["Plan", "make_plan"]


@dataclass(frozen=True)
class Plan:
    """Sizes in pixels of the oriented source, the resized image, and the final canvas."""

    source: tuple[int, int]
    #: Size the source is scaled to (before any crop); equals ``source`` when nothing is resized.
    scaled: tuple[int, int]
    #: Size after the fit step: ``scaled`` cut to the box under crop, else ``scaled``.
    fitted: tuple[int, int]
    #: "centre" or "attention" when the fit cuts, else None.
    crop: str | None
    #: Size the fitted image is shrunk to so padding fits around it (== fitted without padding/canvas).
    content: tuple[int, int]
    #: Final output size; the content is centred on it inside the padding, the rest is background.
    canvas: tuple[int, int]
    #: Top-left corner of the content on the canvas.
    offset: tuple[int, int]
    #: fit outpaint: the canvas around the content is generated (``outpaint.py``), not filled with a colour.
    outpaint: bool = False

    @property
    def resizes(self) -> bool:
        return self.scaled != self.source

    @property
    def framed(self) -> bool:
        return self.canvas != self.content


def _side(value: Length | None, source: int) -> int | None:
    return None if value is None else value.pixels(source)  # None: "auto"


def _scale(size: tuple[int, int], factor: float) -> tuple[int, int]:
    return max(1, round(size[0] * factor)), max(1, round(size[1] * factor))


def _padding_px(padding: Padding, canvas: tuple[int, int]) -> tuple[int, int, int, int]:
    w, h = canvas
    out = []
    for index, value in enumerate(padding.sides()):
        along = h if index in (0, 2) else w  # top/bottom are measured on the height, left/right on the width
        out.append(value.pixels(along))
    return out[0], out[1], out[2], out[3]


def make_plan(source: tuple[int, int], ops: ImageOperations, limits: Limits) -> Plan:
    """Compute the geometry; raises :class:`LimitExceeded` before any pixel work when the output is too big."""
    sw, sh = source
    scaled = fitted = canvas = source
    crop: str | None = None
    resizing = ops.resizing
    outpaint = resizing is not None and resizing.fit.type == "outpaint"
    if resizing is not None and outpaint:
        w, h = _side(resizing.width, sw), _side(resizing.height, sh)
        scaled, canvas = _outpaint_sizes(source, w, h, resizing.fit)
        fitted = scaled
    elif resizing is not None:
        w, h = _side(resizing.width, sw), _side(resizing.height, sh)
        fit = resizing.fit.type
        if w is not None and h is None:
            # One side given: the other keeps the aspect ratio, whatever the fit (DECISIONS.md).
            scaled = fitted = canvas = (w, max(1, round(sh * w / sw)))
        elif h is not None and w is None:
            scaled = fitted = canvas = (max(1, round(sw * h / sh)), h)
        elif w is not None and h is not None:
            cover = max(w / sw, h / sh)
            contain = min(w / sw, h / sh)
            if fit == "crop":
                scaled, fitted, canvas = _scale(source, cover), (w, h), (w, h)
                crop = "attention" if resizing.fit.crop == "smart" else "centre"
                # Rounding may leave the cover size a pixel short of the box; never cut below it.
                scaled = (max(scaled[0], w), max(scaled[1], h))
            elif fit == "cover":
                scaled = fitted = canvas = _scale(source, cover)
            elif fit == "bounds":
                scaled = fitted = canvas = _scale(source, contain)
            else:  # canvas
                scaled = fitted = _scale(source, contain)
                canvas = (w, h)
    _check_output(canvas, limits)

    content = fitted
    if ops.padding is not None and not ops.padding.is_zero():
        top, right, bottom, left = _padding_px(ops.padding, canvas)
        inner = (canvas[0] - left - right, canvas[1] - top - bottom)
        if inner[0] < 1 or inner[1] < 1:
            # The request is well-formed; this image cannot be served with it: an image error, like a limit.
            raise ImageError(
                f"padding {ops.padding} leaves no room for the image on a {canvas[0]}x{canvas[1]} output",
                details={"operations.padding": ["padding is larger than the output"]},
            )
        # The padding keeps the output size, so the image shrinks to make room (never grows).
        factor = min(inner[0] / fitted[0], inner[1] / fitted[1], 1.0)
        content = _scale(fitted, factor)
        offset = (left + (inner[0] - content[0]) // 2, top + (inner[1] - content[1]) // 2)
    else:
        offset = ((canvas[0] - content[0]) // 2, (canvas[1] - content[1]) // 2)
    return Plan(source, scaled, fitted, crop, content, canvas, offset, outpaint)


def _outpaint_sizes(
    source: tuple[int, int], w: int | None, h: int | None, fit: Fit
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(content, canvas) under fit outpaint (docs/outpaint.md).

    ``outpaint_by`` grows the picture: one value for both axes or "width height", each a percentage of the
    picture's side on that axis or pixels. Width and height, when given, are the output's size: the picture
    is scaled so that it and its growth fit inside them (the rest is generated too); one side given, the
    other follows from the grown picture's shape; neither, the picture keeps its size and only grows.
    Without ``outpaint_by`` this is fit canvas with generated content instead of a colour."""
    sw, sh = source
    by = [parse_length(part, "outpaint_by") for part in (fit.outpaint_by or "0px").split()]
    bx, byy = by[0], by[-1]

    def factor(length: Length) -> tuple[float, float]:  # grown side = side * k + a
        return (1 + length.amount / 100, 0.0) if length.is_percent else (1.0, float(length.amount))

    (kx, ax), (ky, ay) = factor(bx), factor(byy)
    fits = []
    if w is not None:
        fits.append((w - ax) / (sw * kx))
    if h is not None:
        fits.append((h - ay) / (sh * ky))
    scale = min(fits) if fits else 1.0
    if scale <= 0:
        raise InputError(
            f"outpaint_by {fit.outpaint_by} leaves no room for the image in a {w or 'auto'}x{h or 'auto'} output",
            details={"operations.resizing.fit.outpaint_by": ["larger than the output"]},
        )
    content = _scale(source, scale)
    canvas = (
        w if w is not None else content[0] + bx.pixels(content[0]),
        h if h is not None else content[1] + byy.pixels(content[1]),
    )
    # Rounding must never leave the content a pixel larger than its canvas.
    return (min(content[0], canvas[0]), min(content[1], canvas[1])), canvas


def _check_output(size: tuple[int, int], limits: Limits) -> None:
    mps = size[0] * size[1] / 1e6
    if mps > limits.max_output_megapixels:
        raise LimitExceeded(
            f"The output would be {size[0]}x{size[1]} ({mps:.1f} megapixels), over the output limit of "
            f"{limits.max_output_megapixels:g} megapixels."
        )
