"""restorations.polish: a documented classical sharpen/denoise combination (no offline model exists).
Upscaling and JPEG repair live in the resize and source stages, where the geometry is decided."""

from __future__ import annotations

import pyvips

from retouch.pipeline.edit import Edit

__all__ = ["polish"]


def polish(image: pyvips.Image, edit: Edit) -> pyvips.Image:
    r = edit.ops.restorations
    if r is None or not r.polish:
        return image
    from retouch.models.superres import polish as polish_image

    return polish_image(image)
