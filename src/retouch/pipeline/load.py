"""Recognise, check and decode the input: format from the bytes, limits from the header, shrink on load.

Order matters here: the format is taken from magic numbers (never a name or a content type), the
header is read and checked against the limits before any pixel is decoded, and the decode goes
straight to the planned size (libvips' ``thumbnail`` uses JPEG DCT scaling and WebP/HEIF
sub-resolution loads, the largest single speed and memory lever).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import pyvips

from retouch.errors import ImageError, LimitExceeded
from retouch.formats import FORMATS, sniff
from retouch.pipeline.plan import Plan
from retouch.settings import Limits

__all__ = ["SourceInfo", "corrupt", "decode", "is_decode_error", "loses_pixels", "probe", "sniff"]


# libvips in pyvips-binary has no BMP loader and no HEVC decoder; Pillow (+ pillow-heif) decodes those.
_PILLOW_FORMATS = {"bmp", "heif"}


@dataclass(frozen=True)
class SourceInfo:
    """What the header says, with orientation applied to the size."""

    ext: str
    width: int
    height: int
    pages: int
    alpha: bool
    #: Decode JPEGs with libvips' fail_on=warning. libjpeg only *warns* when scan data is missing (a file cut
    #: mid-scan with an end marker appended, a header that claims more rows than the data holds) and fills the
    #: rest with grey; fail_on=truncated lets that through. The strict decode stops at the first warning; a
    #: warning that loses no pixels (see ``loses_pixels``) makes the pipeline run again with strict=False.
    strict: bool = True
    #: EXIF orientation (1-8) of formats libvips reads; the size above is already upright.
    orientation: int = 1
    #: 8-bit, 3-band sRGB without an ICC profile, or with an sRGB one: colour the JPEG fast path may decode
    #: as is (anything else, CMYK, grey, 16-bit or a foreign profile, needs the general path's conversions).
    plain: bool = False

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def _source(data: bytes) -> pyvips.Source:
    """The bytes as a libvips source, without a copy. libvips reads them lazily, so they must outlive the
    image: every caller keeps them until the image is encoded (``pipeline.run`` holds ``data`` to the end)."""
    return pyvips.Source.new_from_memory(data)


#: libjpeg's warnings that mean pixels were not in the file: what follows them is grey or garbage. Every other
#: warning (extraneous bytes before a marker, an unknown JFIF revision, odd SOS parameters for a sequential
#: file, a bad ICC marker: what cameras and editors write) leaves every pixel decoded.
_LOST_PIXELS = (
    "premature end of data segment",  # JWRN_HIT_MARKER: a marker inside the scan, the rest of it missing
    "premature end of jpeg",  # JWRN_JPEG_EOF / libvips: the file ends before the image does
    "bad huffman code",  # JWRN_HUFF_BAD_CODE
    "bad arithmetic code",  # JWRN_ARITH_BAD_CODE
    "instead of rst",  # JWRN_MUST_RESYNC: restart markers out of order, a stretch of rows lost
    "truncated",
)


def _reason(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines()]
    skip = ("load_buffer", "load_source", "unable to call", "load error", "error in tile", "read gave")
    detail = next((ln for ln in lines if ln and not any(s in ln for s in skip)), "") or "unreadable data"
    for prefix in ("VipsJpeg: ", "VipsForeignLoad"):
        if detail.startswith(prefix):
            detail = detail[len(prefix) :]
    return detail


_LOADER_WORDS = re.compile(r"load|jpeg|png|webp|tiff|gif|heif|avif|read|decode|premature|corrupt|truncat", re.I)


def is_decode_error(exc: Exception) -> bool:
    """Whether a libvips error came from reading the input (a loader), not from an operation of ours."""
    return bool(_LOADER_WORDS.search(str(exc)))


def loses_pixels(exc: Exception) -> bool:
    """Whether a decode failure means missing or garbled image data (as opposed to a benign warning)."""
    text = str(exc).lower()
    return "vipsjpeg" not in text or any(marker in text for marker in _LOST_PIXELS)


def corrupt(ext: str, exc: Exception) -> ImageError:
    """The answer for an input whose pixels cannot all be decoded, naming the defect."""
    return ImageError(
        f"The input {FORMATS[ext].name} image could not be decoded (truncated or corrupt): {_reason(exc)}"
    )


def _fail_on(info: SourceInfo) -> str:
    return "warning" if info.strict and info.ext == "jpeg" else "truncated"


def probe(data: bytes, limits: Limits) -> SourceInfo:
    """Identify the image and check the input limits from the header alone."""
    if not data:
        raise ImageError("The input is empty (0 bytes); expected an image.")
    if len(data) > limits.max_input_bytes:
        raise LimitExceeded(
            f"The input is {len(data)} bytes, over the input size limit of {limits.max_input_bytes} bytes."
        )
    ext = sniff(data)
    if ext is None:
        raise ImageError(
            "The input is not a supported image: expected BMP, GIF, JPEG, PNG, TIFF, WEBP, AVIF or HEIC data."
        )
    if ext in _PILLOW_FORMATS:
        width, height, pages, alpha = _pillow_header(data, ext)
        orientation = 1
        plain = False
    else:
        try:
            # From a memory source: new_from_buffer would first copy the whole file into a libvips blob
            # only for the header to be parsed (~0.25 ms per 3 MB JPEG, 0.5 % of a 12 MP resize).
            header = pyvips.Image.new_from_source(_source(data), "", access="sequential")
            width = header.width
            pages = header.get("n-pages") if header.get_typeof("n-pages") else 1
            height = header.get("page-height") if header.get_typeof("page-height") else header.height
            orientation = header.get("orientation") if header.get_typeof("orientation") else 1
            alpha = header.hasalpha()
            plain = _plain_colour(header)
        except pyvips.Error as exc:
            raise corrupt(ext, exc) from None
    # All frames count toward the limit: a 1000-frame GIF costs what its frames cost.
    mps = width * height * max(1, pages) / 1e6
    if mps > limits.max_input_megapixels:
        raise LimitExceeded(
            f"The input is {width}x{height}"
            + (f" with {pages} frames" if pages > 1 else "")
            + f" ({mps:.1f} megapixels), over the input limit of {limits.max_input_megapixels:g} megapixels."
        )
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    orientation = orientation if orientation in range(1, 9) else 1  # libvips ignores other values too
    return SourceInfo(ext, width, height, max(1, pages), bool(alpha), orientation=orientation, plain=plain)


def _plain_colour(header: pyvips.Image) -> bool:
    from retouch.pipeline.colour import is_srgb_profile

    if header.bands != 3 or header.format != "uchar" or header.interpretation != "srgb":
        return False
    return not header.get_typeof("icc-profile-data") or is_srgb_profile(header)


def decode(data: bytes, info: SourceInfo, plan: Plan) -> pyvips.Image:
    """Decode the first frame, upright, at ``plan.scaled`` (cut to ``plan.fitted`` when the fit crops).

    Raises ``pyvips.Error`` for undecodable data, here or (decoding is lazy) when the pixels are pulled:
    ``pipeline.run`` turns it into the answer, with a lenient second run for benign JPEG warnings."""
    if info.ext in _PILLOW_FORMATS:
        image = _pillow_decode(data)
        if not plan.resizes and plan.crop is None:
            return image
        return image.thumbnail_image(
            plan.fitted[0],
            height=plan.fitted[1],
            size="force" if plan.crop is None else "both",
            crop=plan.crop or "none",
        )
    fail_on = _fail_on(info)
    if not plan.resizes and plan.crop is None:
        image = pyvips.Image.new_from_source(_source(data), "", access="sequential", fail_on=fail_on)
        return image.autorot()
    if plan.crop is not None:
        width, height = plan.fitted
        return pyvips.Image.thumbnail_source(
            _source(data), width, height=height, crop=plan.crop, option_string=f"fail_on={fail_on}"
        )
    width, height = plan.scaled
    return pyvips.Image.thumbnail_source(
        _source(data), width, height=height, size="force", option_string=f"fail_on={fail_on}"
    )


def decode_upright(data: bytes, info: SourceInfo) -> pyvips.Image:
    """The first frame at full size, EXIF orientation applied (for the source stage). Errors as ``decode``."""
    if info.ext in _PILLOW_FORMATS:
        return _pillow_decode(data)
    return pyvips.Image.new_from_source(_source(data), "", fail_on=_fail_on(info)).autorot()


def _pillow_open(data: bytes):  # type: ignore[no-untyped-def]
    from PIL import Image

    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # HEIC support is optional; BMP needs only Pillow.
        pass
    return Image.open(io.BytesIO(data))


def _pillow_header(data: bytes, ext: str) -> tuple[int, int, int, bool]:
    try:
        img = _pillow_open(data)
        return img.width, img.height, getattr(img, "n_frames", 1), "A" in img.getbands()
    except Exception as exc:  # Pillow raises many types for bad data
        raise ImageError(f"The input {FORMATS[ext].name} image could not be read: {exc}") from None


def _pillow_decode(data: bytes) -> pyvips.Image:
    from PIL import ImageOps

    img = ImageOps.exif_transpose(_pillow_open(data))
    assert img is not None
    if img.mode not in ("RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
    img.load()
    return pyvips.Image.new_from_memory(img.tobytes(), img.width, img.height, len(img.getbands()), "uchar")
