"""The one table of image formats, and the one way a file name is made from an input name or a URL.

Everything that knows a format — the loader's response fields, the encoder's alpha rule, which keys a folder
listing takes, what a destination's suffix asks for, the output file's extension, the mime type of a tmp
result — reads it here, so adding a format is one row. Pure data: no pyvips, nothing from the rest of retouch.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = [
    "FORMATS",
    "IMAGE_SUFFIXES",
    "OUTPUT_FORMATS",
    "Format",
    "guess_ext",
    "is_image_name",
    "mime_type",
    "name_from_url",
    "output_format_for",
    "output_name",
    "sniff",
    "unique_name",
]


@dataclass(frozen=True)
class Format:
    ext: str  #: the contract's name for it (DECISIONS.md), e.g. "jpeg": the ``ext`` of a response's image object
    name: str  #: the response's ``format`` field, e.g. "JPEG"
    mime: str
    #: File-name suffixes that mean this format; the first is the one an output gets.
    suffixes: tuple[str, ...]
    #: retouch can write it (the contract's ``output.format.type``).
    output: bool
    #: A written file keeps transparency; other formats are flattened onto the fill colour.
    alpha: bool


FORMATS: dict[str, Format] = {
    f.ext: f
    for f in (
        Format("jpeg", "JPEG", "image/jpeg", (".jpg", ".jpeg", ".jpe", ".jfif"), output=True, alpha=False),
        Format("png", "PNG", "image/png", (".png",), output=True, alpha=True),
        Format("webp", "WEBP", "image/webp", (".webp",), output=True, alpha=True),
        Format("avif", "AVIF", "image/avif", (".avif",), output=True, alpha=True),
        Format("tiff", "TIFF", "image/tiff", (".tiff", ".tif"), output=True, alpha=True),
        # Read only: the contract's outputs are the five above.
        Format("heif", "HEIF", "image/heif", (".heic", ".heif"), output=False, alpha=True),
        Format("gif", "GIF", "image/gif", (".gif",), output=False, alpha=True),
        Format("bmp", "BMP", "image/bmp", (".bmp",), output=False, alpha=False),
    )
}

OUTPUT_FORMATS = tuple(ext for ext, f in FORMATS.items() if f.output)
_BY_SUFFIX = {suffix: f for f in FORMATS.values() for suffix in f.suffixes}
#: Suffixes a folder listing takes as images (the bytes are sniffed again when the item runs).
IMAGE_SUFFIXES = frozenset(_BY_SUFFIX)
_DEFAULT_NAME = "image"


def mime_type(ext: str) -> str:
    return FORMATS[ext].mime


def guess_ext(name: str) -> str:
    """The input format as the file name suggests ("" when it does not; the bytes decide when the item runs)."""
    found = _BY_SUFFIX.get(PurePosixPath(name).suffix.lower())
    return found.ext if found is not None else ""


def is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def output_format_for(name: str) -> str | None:
    """The output format a destination's (or the CLI's output file's) suffix asks for; None if it names none."""
    found = _BY_SUFFIX.get(PurePosixPath(name).suffix.lower())
    return found.ext if found is not None and found.output else None


def output_name(input_name: str, input_ext: str, out_format: str) -> str:
    """Input stem + the output format's extension; the input's own extension is kept as written
    when the format does not change (``IMG_1.JPG`` stays ``IMG_1.JPG``)."""
    path = PurePosixPath(input_name or _DEFAULT_NAME)
    extension = FORMATS[out_format].suffixes[0]
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return path.name if out_format == input_ext else path.stem + extension
    return path.name + extension


def name_from_url(raw_path: str) -> str:
    """The file name an http(s) input gets: the percent-decoded last segment of the URL's path, or "image".

    ``raw_path`` is the URL's path as sent (still percent-encoded, query allowed). The segment is split before
    decoding ("a%2Fb.jpg" is one segment), then cut again at any slash or backslash the decoding produced and
    stripped of control characters, so the result is always a plain file name and never a path.
    """
    segment = urllib.parse.unquote(raw_path.split("?", 1)[0].rsplit("/", 1)[-1], errors="replace")
    segment = segment.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in segment if ch.isprintable()).strip()
    return name if name not in ("", ".", "..") else _DEFAULT_NAME


def unique_name(name: str, is_taken: Callable[[str], bool]) -> str:
    """``name``, or ``stem-2.ext``, ``stem-3.ext``... when it is taken: two inputs of one batch (a.jpg and a.png
    written as JPEG) never write the same output."""
    if not is_taken(name):
        return name
    path = PurePosixPath(name)
    n = 2
    while is_taken(candidate := str(path.with_name(f"{path.stem}-{n}{path.suffix}"))):
        n += 1
    return candidate


def sniff(data: bytes) -> str | None:
    """The input format by magic number, or None when the bytes are not an image we accept."""
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    if head.startswith(b"BM") and len(data) > 26:
        return "bmp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        brands = {head[i : i + 4] for i in range(8, min(len(head), 32), 4)}
        if brand in (b"avif", b"avis") or (b"avif" in brands and brand == b"mif1"):
            return "avif"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"):
            return "heif"
    return None
