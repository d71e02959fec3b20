"""Canvas and padding: shrink the image to its planned content size and centre it on the canvas.

Runs after the colour work so the fill colour is exact (an adjustment must not tint the padding),
and before sharpening so the content's final resample is sharpened too.
"""

from __future__ import annotations

import pyvips

from retouch.pipeline.edit import Edit

__all__ = ["frame"]


def frame(image: pyvips.Image, edit: Edit) -> pyvips.Image:
    plan, fill = edit.plan, edit.fill
    if (image.width, image.height) != plan.content:
        image = image.thumbnail_image(plan.content[0], height=plan.content[1], size="force")
    if not plan.framed or plan.outpaint:
        return image  # under fit outpaint the next step generates the canvas around the content
    if fill[3] < 255 and image.bands == 3:
        image = image.bandjoin(255)
    background = list(fill) if image.bands == 4 else list(fill[:3])
    return image.embed(
        plan.offset[0], plan.offset[1], plan.canvas[0], plan.canvas[1], extend="background", background=background
    )
