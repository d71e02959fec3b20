"""Colour and light: exposure, contrast and saturation in one matrix pass, then hdr, then sharpness.

Exposure, contrast and saturation are folded into a single 3×3 matrix plus offset, so three
adjustments cost one pass over the pixels. Sharpening runs last, after every resize, because
resampling would soften it again (and sharpening before a downscale only adds aliasing).
"""

from __future__ import annotations

import pyvips

from retouch.contracts.operations import Adjustments
from retouch.pipeline.edit import Edit

__all__ = ["adjust", "color_matrix", "sharpen"]

# Rec. 601 luma weights: the usual weights for "saturation" on gamma-encoded sRGB.
_LUMA = (0.299, 0.587, 0.114)


def color_matrix(adj: Adjustments) -> tuple[list[list[float]], float]:
    """Matrix and offset for exposure (±1 stop at ±100), contrast (about mid-grey), saturation."""
    gain = 2 ** (adj.exposure / 100)
    contrast = 1 + adj.contrast / 100
    sat = 1 + adj.saturation / 100
    matrix = []
    for row in range(3):
        matrix.append([gain * contrast * ((1 - sat) * _LUMA[col] + (sat if row == col else 0.0)) for col in range(3)])
    offset = 128 * (1 - contrast)
    return matrix, offset


def adjust(image: pyvips.Image, edit: Edit) -> pyvips.Image:
    adj = edit.ops.adjustments
    if adj is None:
        return image
    if adj.exposure or adj.contrast or adj.saturation:
        matrix, offset = color_matrix(adj)
        alpha = image[3] if image.bands == 4 else None
        rgb = image[0:3] if image.bands == 4 else image
        rgb = rgb.recomb(matrix).linear([1, 1, 1], [offset] * 3).cast("uchar")
        image = rgb.bandjoin(alpha) if alpha is not None else rgb
    if adj.hdr is not None and adj.hdr.intensity > 0:
        image = _local_tone(image, adj.hdr.intensity)
    return image


def _local_tone(image: pyvips.Image, intensity: int) -> pyvips.Image:
    """Classical "HDR" look: contrast-limited local histogram equalisation of lightness (CLAHE on L*),
    blended with the original by intensity. Colour (a*, b*) is untouched, so hues do not shift."""
    # Local histograms read the image out of order; the decoder streams it top to bottom
    # (shrink-on-load is sequential), so render it into memory first: "out of order read" otherwise.
    image = image.copy_memory()
    alpha = image[3] if image.bands == 4 else None
    rgb = image[0:3] if image.bands == 4 else image
    lab = rgb.colourspace("lab")
    lightness = (lab[0] * (255 / 100)).cast("uchar")
    window = max(8, min(rgb.width, rgb.height) // 8)
    equalised = lightness.hist_local(window, window, max_slope=3)
    weight = intensity / 100 * 0.6  # full strength still keeps 40% of the original tones: avoids the haloed look
    mixed = lightness.cast("float") * (1 - weight) + equalised.cast("float") * weight
    out = (mixed * (100 / 255)).bandjoin([lab[1], lab[2]]).copy(interpretation="lab").colourspace("srgb")
    out = out.cast("uchar")
    return out.bandjoin(alpha) if alpha is not None else out


def sharpen(image: pyvips.Image, edit: Edit) -> pyvips.Image:
    adj = edit.ops.adjustments
    if adj is None or adj.sharpness <= 0:
        return image
    # Unsharp mask in RGB: original + amount × (original − blur). vips' own `sharpen` works in LabS
    # and costs ~2× more for a result users do not tell apart at these strengths.
    amount = adj.sharpness / 100 * 1.5
    alpha = image[3] if image.bands == 4 else None
    rgb = image[0:3] if image.bands == 4 else image
    blurred = rgb.gaussblur(1.0, precision="integer")
    out = (rgb.cast("short") * (1 + amount) - blurred.cast("short") * amount).cast("uchar")
    return out.bandjoin(alpha) if alpha is not None else out
