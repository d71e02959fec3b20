"""Bring every decoded image to 8-bit sRGB (plus alpha), the space every later step works in.

CMYK, Display P3, Adobe RGB and other tagged inputs are converted with their embedded profile, so
colours look the same after the edit; 16-bit and grey inputs become 8-bit sRGB.
"""

from __future__ import annotations

import pyvips

from retouch.pipeline.edit import Edit

__all__ = ["is_srgb_profile", "srgb", "to_srgb"]


def is_srgb_profile(image: pyvips.Image) -> bool:
    data = image.get("icc-profile-data")
    # The profile description sits in the 'desc' tag; sRGB profiles say so. Converting an sRGB image
    # with its own sRGB profile changes nothing but costs a full pass, so skip it.
    return b"sRGB" in data[:4096] or b"s\x00R\x00G\x00B" in data[:4096]


def to_srgb(image: pyvips.Image, edit: Edit) -> pyvips.Image:
    return srgb(image)


def srgb(image: pyvips.Image) -> pyvips.Image:
    if image.get_typeof("icc-profile-data") and not is_srgb_profile(image):
        try:
            image = image.icc_transform("srgb", embedded=True, intent="perceptual")
        except pyvips.Error:
            # A broken embedded profile: fall back to the generic conversion rather than failing the edit.
            image = image.colourspace("srgb")
    elif image.interpretation not in ("srgb", "b-w") or image.format != "uchar":
        image = image.colourspace("srgb")
    if image.interpretation == "b-w":
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    return image
