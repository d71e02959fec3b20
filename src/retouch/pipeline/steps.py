"""STEPS: the one ordered list of pixel steps. Read it top to bottom; each line says why it is there.

Before this list: the source stage (``source.py``: JPEG repair, identity crop, background clipping —
they change what the geometry is measured from), then ``resize.scale_and_fit`` (shrink on load, model
upscaling, centre or face-aware crop). After it: ``encode.encode``.
"""

from __future__ import annotations

from collections.abc import Callable

import pyvips

from retouch.pipeline.adjust import adjust, sharpen
from retouch.pipeline.blur_background import blur_background
from retouch.pipeline.colour import to_srgb
from retouch.pipeline.edit import Edit
from retouch.pipeline.encode import flatten
from retouch.pipeline.frame import frame
from retouch.pipeline.outpaint import outpaint
from retouch.pipeline.polish import polish
from retouch.pipeline.privacy import blur_plates
from retouch.pipeline.remove_background import remove_background
from retouch.pipeline.style_transfer import style_transfer

__all__ = ["STEPS", "Step"]

Step = Callable[[pyvips.Image, Edit], pyvips.Image]

STEPS: tuple[Step, ...] = (
    # Every later step assumes 8-bit sRGB(A): CMYK/P3/16-bit/grey inputs are converted first.
    to_srgb,
    # Plates are found on the picture as it is, before canvas padding and before sharpening.
    blur_plates,
    # The subject mask is computed at output resolution, on the original colours.
    remove_background,
    blur_background,
    # Style transfer paints the picture as it is (plates already blurred, so a painted plate stays unreadable),
    # at output resolution (cheaper than the source's); adjustments then apply to the painting, and the frame's
    # padding and canvas keep the exact requested colour instead of being painted over.
    style_transfer,
    # Colour work on the resized image (cheaper than on the source) and before the frame, so the
    # padding and canvas fill keep the exact requested colour.
    adjust,
    # Shrink to the content size and centre on the canvas with the background colour.
    frame,
    # fit outpaint: frame leaves the canvas to this step, which continues the adjusted content outwards;
    # before polish and sharpening, so the seam gets the same final treatment as the rest.
    outpaint,
    # Polish (denoise + detail) after the last resample, like sharpening.
    polish,
    # Sharpen last among pixel steps: any resample after it would soften it again.
    sharpen,
    # Formats without alpha get the fill colour under transparent pixels (white, never black).
    flatten,
)
