"""Background blur (``background.blur``): everything but the u2netp subject mask is blurred.

It runs on the resized image, before colour work, as background removal does: the mask is computed
at the output's own resolution (cheaper than the source's) and on the original colours. The mask and
the blur itself are in ``retouch.models.background``, shared with removal.
"""

from __future__ import annotations

import pyvips

from retouch.pipeline.edit import Edit

__all__ = ["blur_background"]


def blur_background(image: pyvips.Image, edit: Edit) -> pyvips.Image:
    bg = edit.ops.background
    if bg is None or bg.blur is None:
        return image
    from retouch.models.background import blur_background as blur

    return blur(image, bg.blur.type, bg.blur.level, bg.blur.category)
