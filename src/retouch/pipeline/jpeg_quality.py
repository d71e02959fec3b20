"""The quality a JPEG was saved at, read from its quantisation tables, and what ``decompress: auto`` makes of it.

Classical arithmetic on the file's bytes (no model, no decoding): the source stage calls it on the
source bytes, because after decoding nothing says the pixels came from a JPEG. The networks that
then repair the file are in ``retouch.models.superres``.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import numpy.typing as npt

__all__ = ["jpeg_quality", "needs_decompress"]

#: ``auto`` decompression thresholds on the estimated IJG quality (see ``needs_decompress``).
AUTO_CLEAN_FROM = 90
AUTO_STRONG_BELOW = 40

# The IJG (libjpeg) base tables, ITU-T T.81 Annex K, in zig-zag order as they are stored in DQT.
_IJG_LUMA = np.array([
    16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49, 35, 37,
    29, 40, 58, 51, 61, 60, 57, 51, 56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81, 87,
    95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99,
], dtype=np.float64)  # fmt: skip
_IJG_CHROMA = np.array([17, 18, 18, 24, 21, 24, 47, 26, 26, 47, 99, 66, 56, 66, 99] + [99] * 49, dtype=np.float64)


def _ijg_table(base: npt.NDArray[np.float64], quality: int) -> npt.NDArray[np.float64]:
    """libjpeg's ``jpeg_add_quant_table`` at ``quality`` (with ``force_baseline``)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((base * scale + 50) / 100), 1, 255)


_CANDIDATES = {q: (np.log(_ijg_table(_IJG_LUMA, q)), np.log(_ijg_table(_IJG_CHROMA, q))) for q in range(1, 101)}


def _dqt_tables(data: bytes) -> dict[int, npt.NDArray[np.float64]] | None:
    """The quantisation tables (id -> 64 values, zig-zag) of a JPEG, or None if it is not one."""
    if not data.startswith(b"\xff\xd8"):
        return None
    tables: dict[int, npt.NDArray[np.float64]] = {}
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return tables or None  # lost sync: a damaged file; use what was found
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # parameterless markers
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: every DQT comes before
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xDB:
            i = 0
            while i < len(segment):
                precision, table_id = segment[i] >> 4, segment[i] & 0x0F
                size = 128 if precision else 64
                body = segment[i + 1 : i + 1 + size]
                if len(body) < size:
                    break
                values = struct.unpack(">64H", body) if precision else tuple(body)
                tables[table_id] = np.array(values, dtype=np.float64)
                i += 1 + size
        pos += 2 + length
    return tables or None


def jpeg_quality(data: bytes) -> int | None:
    """The IJG quality (1-100) whose standard tables best match this JPEG's, or None if not a JPEG.

    Least squares on log quantiser steps over the luminance table (and the chrominance table when
    present, e.g. not for greyscale): a ratio error, so the large high-frequency steps do not drown
    the small low-frequency ones. Encoders with their own tables (cameras, Photoshop, mozjpeg's
    default) get the IJG quality that quantises about as coarsely, which is what deblocking needs.
    Ties (near q100 every step is 1) go to the higher quality.
    """
    tables = _dqt_tables(data)
    if not tables:
        return None
    luma = tables.get(0, next(iter(tables.values())))
    chroma = tables.get(1)
    log_luma = np.log(np.maximum(luma, 1))
    log_chroma = None if chroma is None else np.log(np.maximum(chroma, 1))
    best, best_err = 100, math.inf
    for quality in range(100, 0, -1):
        ref_luma, ref_chroma = _CANDIDATES[quality]
        err = float(np.sum((log_luma - ref_luma) ** 2))
        if log_chroma is not None:
            err += float(np.sum((log_chroma - ref_chroma) ** 2))
        if err < best_err - 1e-12:
            best, best_err = quality, err
    return best


def needs_decompress(data: bytes) -> str | None:
    """What ``decompress: auto`` should do with these source bytes: None, ``moderate`` or ``strong``.

    None when the file is not a JPEG or its estimated quality is ``AUTO_CLEAN_FROM`` (90) or more:
    the artefacts are invisible and denoising would only soften detail. ``strong`` below
    ``AUTO_STRONG_BELOW`` (40), where blocking is visible at 100 % and denoise level 3 wins on PSNR;
    ``moderate`` in between.
    """
    quality = jpeg_quality(data)
    if quality is None or quality >= AUTO_CLEAN_FROM:
        return None
    return "strong" if quality < AUTO_STRONG_BELOW else "moderate"
