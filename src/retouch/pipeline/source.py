"""The source stage: operations that change what the source *is*, so they run before the geometry
is planned. JPEG repair works best at the source's own scale; identity crop and background clipping
cut the source to a new rectangle that resizing and padding are then measured from."""

from __future__ import annotations

import pyvips

from retouch.contracts.operations import ImageOperations
from retouch.pipeline.load import SourceInfo, decode_upright

__all__ = ["decompress_strength", "needs_source_stage", "prepare_source"]


def decompress_strength(data: bytes, ops: ImageOperations) -> str | None:
    r = ops.restorations
    if r is None or r.decompress is None:
        return None
    if r.decompress != "auto":
        return r.decompress
    # Imported here, not at the top: jpeg_quality needs numpy, which only the ai extra installs.
    from retouch.pipeline.jpeg_quality import needs_decompress

    # auto: estimate the JPEG quality from its quantisation tables; a clean file is left untouched.
    return needs_decompress(data)


def _clipping(ops: ImageOperations) -> bool:
    return bool(ops.background and ops.background.remove and ops.background.remove.clipping)


def needs_source_stage(data: bytes, ops: ImageOperations) -> bool:
    identity = bool(ops.privacy and ops.privacy.identity_crop)
    return identity or _clipping(ops) or decompress_strength(data, ops) is not None


def prepare_source(data: bytes, info: SourceInfo, ops: ImageOperations) -> pyvips.Image:
    """Decode at full size, upright, in sRGB, then repair and cut as requested (in that order: repair
    sees the whole picture; the face and object finders see repaired pixels)."""
    from retouch.pipeline.colour import srgb

    image = srgb(decode_upright(data, info)).copy_memory()
    strength = decompress_strength(data, ops)
    if strength is not None:
        from retouch.models.superres import decompress

        image = decompress(image, strength)
    if ops.privacy and ops.privacy.identity_crop:
        from retouch.pipeline.smartcrop import identity_crop

        image = identity_crop(image)
    if _clipping(ops):
        from retouch.models.background import object_bounds, remove_background

        assert ops.background is not None and ops.background.remove is not None
        cut = remove_background(image, ops.background.remove.category).copy_memory()
        bounds = object_bounds(cut[3].numpy().astype("float32") / 255.0)
        if bounds is not None:
            left, top, width, height = bounds
            cut = cut.crop(left, top, width, height)
        image = cut
    return image
