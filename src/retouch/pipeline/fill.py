"""Fill colour (``background.color``): what fills canvas and padding, and what alpha is flattened onto.

Decided once per edit and read by every step that paints (``Edit.fill``). The AI parts of
``background`` (remove, blur) are the ``remove_background`` step.
"""

from __future__ import annotations

from retouch.contracts.operations import ImageOperations
from retouch.formats import FORMATS, OUTPUT_FORMATS

__all__ = ["ALPHA_FORMATS", "fill_color"]

ALPHA_FORMATS = frozenset(ext for ext in OUTPUT_FORMATS if FORMATS[ext].alpha)
WHITE = (255, 255, 255, 255)


def _hex(value: str) -> tuple[int, int, int, int]:
    digits = value[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), 255


def fill_color(ops: ImageOperations, has_alpha: bool, out_format: str) -> tuple[int, int, int, int]:
    """RGBA fill. Default: white, or transparent when the input has alpha and the output keeps it.
    Transparent on a format without alpha becomes white, never black (DECISIONS.md)."""
    color = ops.background.color if ops.background else None
    if color is None:
        color = "transparent" if has_alpha and out_format in ALPHA_FORMATS else "#ffffff"
    if color == "transparent":
        return (255, 255, 255, 0) if out_format in ALPHA_FORMATS else WHITE
    return _hex(color)
