"""Flatten what the format cannot hold, write metadata, and encode.

Metadata is stripped by default (EXIF can carry GPS positions of a seller's home); only the ICC
profile of a CMYK output and the requested DPI are written.
"""

from __future__ import annotations

from pathlib import Path

import pyvips

from retouch.contracts.output import EncodeSpec, Metadata
from retouch.pipeline.edit import Edit
from retouch.pipeline.fill import ALPHA_FORMATS

__all__ = ["CMYK_PROFILES", "encode", "flatten"]

#: The named press profiles of the contract. We cannot ship the FOGRA/SWOP/GRACoL files (their
#: licences forbid redistribution), so an operator may drop them into RETOUCH_HOME/profiles/ under
#: these names; otherwise libvips' built-in CMYK profile is used (docs/operations.md says so).
CMYK_PROFILES = {
    "ISO_Coated": "ISOcoated_v2_eci.icc",
    "ISO_Uncoated": "ISOuncoated.icc",
    "USWeb_Coated": "USWebCoatedSWOP.icc",
    "USWeb_Uncoated": "USWebUncoated.icc",
}


def flatten(image: pyvips.Image, edit: Edit) -> pyvips.Image:
    if image.bands == 4 and edit.encode.format not in ALPHA_FORMATS:
        # JPEG has no alpha: flatten onto the fill colour (white by default), never black.
        return image.flatten(background=list(edit.fill[:3]))
    return image


def _profile(name: str, profile_dir: Path | None) -> str:
    if profile_dir is not None:
        candidate = profile_dir / CMYK_PROFILES[name]
        if candidate.is_file():
            return str(candidate)
    return "cmyk"


def encode(image: pyvips.Image, spec: EncodeSpec, metadata: Metadata | None, profile_dir: Path | None = None) -> bytes:
    keep = "none"
    if metadata is not None and metadata.dpi:
        per_mm = metadata.dpi / 25.4
        image = image.copy(xres=per_mm, yres=per_mm)
        if spec.format == "jpeg":
            # libvips writes a JPEG's resolution only inside EXIF: drop the input's EXIF (GPS, camera
            # serials) and let libvips write a fresh minimal block that carries just the resolution.
            for field in image.get_fields():
                if field.startswith("exif-") or field == "orientation":
                    image.remove(field)
            keep = "exif"
    if metadata is not None and metadata.color_space is not None and metadata.color_space.type == "CMYK":
        if image.bands == 4 and image.interpretation != "cmyk":
            image = image.flatten(background=[255, 255, 255])
        image = image.icc_transform(_profile(metadata.color_space.color_profile, profile_dir), intent="perceptual")
        keep = "icc" if keep == "none" else "icc:exif"
    fmt = spec.format
    if fmt == "jpeg":
        return bytes(
            image.jpegsave_buffer(
                Q=spec.quality, interlace=spec.progressive, keep=keep, optimize_coding=spec.progressive
            )
        )
    if fmt == "png":
        # fast: no row filter, zlib 1; optimal: adaptive filter at zlib 6 (a third smaller for ~2x the time);
        # best: zlib 9 adaptive. The measured trade-off is in docs/performance.md.
        level, filt = {"fast": (1, "none"), "optimal": (6, "all"), "best": (9, "all")}[spec.png_compression]
        return bytes(image.pngsave_buffer(compression=level, filter=filt, keep=keep))
    if fmt == "webp":
        return bytes(image.webpsave_buffer(Q=spec.quality, lossless=spec.lossless, effort=4, keep=keep))
    if fmt == "avif":
        # effort 2 (aom speed 7): at q60 on 1000x750 photos (12 of the bench corpora) 0.08 dB and 3 % bytes
        # behind effort 3 (36.01 vs 36.08 dB, 75 vs 73 KB) for 55 % of its CPU (221 vs 403 ms); effort 4 costs 5x
        # effort 3 for 4 % fewer bytes. Encoding is ~90 % of an AVIF edit, so this sets AVIF throughput.
        return bytes(
            image.heifsave_buffer(Q=spec.quality, lossless=spec.lossless, compression="av1", effort=2, keep=keep)
        )
    if fmt == "tiff":
        if spec.lossless:
            return bytes(image.tiffsave_buffer(compression="lzw", predictor="horizontal", keep=keep))
        return bytes(image.tiffsave_buffer(compression="jpeg", Q=spec.quality, keep=keep))
    raise AssertionError(f"unknown output format {fmt}")  # the contract admits only the five above
