"""Background removal (``background.remove``; u2netp mask refined at full resolution).

It runs on the resized image, before colour work: the mask is computed at the output's own
resolution (cheaper than the source's, and exactly aligned with what is kept), and adjustments then
apply to the kept subject. Clipping is not here: it changes the geometry, so the source stage does it.
"""

from __future__ import annotations

import pyvips

from retouch.pipeline.edit import Edit

__all__ = ["remove_background"]


def remove_background(image: pyvips.Image, edit: Edit) -> pyvips.Image:
    bg = edit.ops.background
    if bg is None or bg.remove is None:
        return image
    if bg.remove.clipping and image.bands == 4:
        cut = image  # the source stage already removed and clipped it
    else:
        from retouch.models.background import remove_background as remove

        cut = remove(image, bg.remove.category)
    if edit.fill[3] == 255:
        # An opaque colour was asked for (or the format has no alpha): it fills the removed background.
        return cut.flatten(background=list(edit.fill[:3]))
    return cut
