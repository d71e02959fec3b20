"""STEPS: the one ordered list of pixel steps. Read it top to bottom; each line says why it is there.

Decoding happens before this list (``load.decode``: upright, shrunk on load, cut to the fit) and
encoding after it (``encode.encode``).
"""

from __future__ import annotations

from collections.abc import Callable

import pyvips

from retouch.pipeline.adjust import adjust, sharpen
from retouch.pipeline.colour import to_srgb
from retouch.pipeline.edit import Edit
from retouch.pipeline.encode import flatten
from retouch.pipeline.frame import frame

__all__ = ["STEPS", "Step"]

Step = Callable[[pyvips.Image, Edit], pyvips.Image]

STEPS: tuple[Step, ...] = (
    # Every later step assumes 8-bit sRGB(A): CMYK/P3/16-bit/grey inputs are converted first.
    to_srgb,
    # Colour work on the resized image (cheaper than on the source) and before the frame, so the
    # padding and canvas fill keep the exact requested colour.
    adjust,
    # Shrink to the content size and centre on the canvas with the background colour.
    frame,
    # Sharpen last among pixel steps: any resample after it would soften it again.
    sharpen,
    # Formats without alpha get the fill colour under transparent pixels (white, never black).
    flatten,
)
