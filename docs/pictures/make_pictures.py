"""Before/after strips for docs/operations.md: one picture per operation family, made from the test fixtures
through `retouch.edit()` - the same pipeline the service runs - so the pictures show what the code does today.

    .venv/bin/python docs/pictures/make_pictures.py          # writes docs/pictures/*.jpg

Each strip is the input, then one panel per request, each labelled with the operations that made it. Panels
are shown at their own size when at most 300 px high (so sizes compare), else scaled to that height;
transparent outputs are shown over a grey checkerboard. The
script is deterministic for a given set of library versions; rerun it when an operation changes.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
CELL = 300  # panel height in px
LABEL = 44  # label band under each panel


@dataclass(frozen=True)
class Panel:
    label: str
    operations: dict[str, Any]
    output: dict[str, Any] | str | None = None


@dataclass(frozen=True)
class Strip:
    name: str
    fixture: str
    panels: tuple[Panel, ...]
    #: Make the input small and blocky first (width %, JPEG quality), and show it enlarged with nearest
    #: neighbour to the outputs' scale: for the restorations, which exist for such inputs.
    shrink: tuple[str, int, int] | None = None


PNG = {"format": "png"}

STRIPS: tuple[Strip, ...] = (
    Strip(
        "resizing",
        "coffee.jpg",
        (
            Panel("300x300 fit: crop", {"resizing": {"width": 300, "height": 300, "fit": "crop"}}),
            Panel("300x300 fit: bounds", {"resizing": {"width": 300, "height": 300, "fit": "bounds"}}),
            Panel(
                "300x300 fit: canvas",
                {"resizing": {"width": 300, "height": 300, "fit": "canvas"}, "background": {"color": "#dddddd"}},
            ),
            Panel("fit: crop smart", {"resizing": {"width": 300, "height": 300, "fit": {"crop": "smart"}}}),
        ),
    ),
    Strip(
        "adjustments",
        "chelsea.jpg",
        (
            Panel("exposure: 40", {"adjustments": {"exposure": 40}}),
            Panel("contrast: 50", {"adjustments": {"contrast": 50}}),
            Panel("saturation: -80", {"adjustments": {"saturation": -80}}),
            Panel("hdr: 80", {"adjustments": {"hdr": 80}}),
            Panel("sharpness: 80", {"adjustments": {"sharpness": 80}}),
        ),
    ),
    Strip(
        "background",
        "chelsea.jpg",
        (
            Panel("remove (png)", {"background": {"remove": True}}, PNG),
            Panel("remove, color #2a6fdb", {"background": {"remove": True, "color": "#2a6fdb"}}),
            Panel("blur", {"background": {"blur": True}}),
        ),
    ),
    Strip(
        "padding",
        "coffee.jpg",
        (
            Panel("padding: 10%", {"padding": "10%", "background": {"color": "#dddddd"}}),
            Panel("padding: 0px 25%", {"padding": "0px 25%", "background": {"color": "#f4d35e"}}),
            Panel(
                "canvas 400x400 + 5%",
                {"resizing": {"width": 400, "height": 400, "fit": "canvas"}, "padding": "5%"},
            ),
        ),
    ),
    Strip(
        "privacy",
        "astronaut.png",
        (Panel("identity_crop", {"privacy": {"identity_crop": True}}),),
    ),
    Strip(
        "restorations",
        "chelsea.jpg",
        (
            Panel("resizing 400% (Lanczos)", {"resizing": {"width": "400%"}}),
            Panel(
                "upscale: smart_enhance, 400%",
                {"restorations": {"upscale": "smart_enhance"}, "resizing": {"width": "400%"}},
            ),
            Panel(
                "decompress: strong, then 400%",
                {"restorations": {"decompress": "strong"}, "resizing": {"width": "400%"}},
            ),
        ),
        shrink=("25%", 40, 4),
    ),
)


def _checkerboard(width: int, height: int) -> Image.Image:
    board = Image.new("RGB", (width, height), (236, 236, 236))
    draw = ImageDraw.Draw(board)
    for y in range(0, height, 12):
        for x in range(0, width, 12):
            if (x // 12 + y // 12) % 2:
                draw.rectangle((x, y, x + 11, y + 11), fill=(210, 210, 210))
    return board


def _panel(image: Image.Image, label: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> Image.Image:
    """The image at its own size when it fits the cell (sizes stay comparable), else scaled down to it."""
    shown = image
    if image.height > CELL:
        shown = image.resize((max(1, round(image.width * CELL / image.height)), CELL), Image.Resampling.LANCZOS)
    cell = Image.new("RGB", (shown.width, CELL + LABEL), (255, 255, 255))
    if shown.mode in ("RGBA", "LA"):  # a checkerboard shows where the output is transparent
        cell.paste(_checkerboard(shown.width, shown.height), (0, 0))
        cell.paste(shown.convert("RGB"), (0, 0), shown.getchannel("A"))
    else:
        cell.paste(shown.convert("RGB"), (0, 0))
    ImageDraw.Draw(cell).text((8, CELL + 10), label, fill=(20, 20, 20), font=font)
    return cell


def make(strip: Strip, out: Path) -> Path:
    import retouch

    font = ImageFont.load_default(size=18)
    base = (FIXTURES / strip.fixture).read_bytes()
    shown = Image.open(io.BytesIO(base))
    label = f"input ({strip.fixture}, {shown.width}x{shown.height})"
    if strip.shrink is not None:
        width, quality, zoom = strip.shrink
        output = {"format": {"type": "jpeg", "quality": quality}}
        base = retouch.edit(base, {"resizing": {"width": width}}, output).data
        small = Image.open(io.BytesIO(base))
        shown = small.resize((small.width * zoom, small.height * zoom), Image.Resampling.NEAREST)
        label = f"input {small.width}x{small.height} q{quality}, shown x{zoom}"
    cells = [_panel(shown, label, font)]
    for panel in strip.panels:
        result = retouch.edit(base, panel.operations, panel.output)
        cells.append(_panel(Image.open(io.BytesIO(result.data)), panel.label, font))
    gap = 8
    width = sum(c.width for c in cells) + gap * (len(cells) - 1)
    sheet = Image.new("RGB", (width, CELL + LABEL), (255, 255, 255))
    x = 0
    for cell in cells:
        sheet.paste(cell, (x, 0))
        x += cell.width + gap
    path = out / f"{strip.name}.jpg"
    sheet.save(path, quality=82, optimize=True, progressive=True)
    return path


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else HERE
    out.mkdir(parents=True, exist_ok=True)
    for strip in STRIPS:
        print(make(strip, out))


if __name__ == "__main__":
    main(sys.argv)
