"""Make the before/after pictures of docs/outpaint.md: each JPEG is the input (left) and the output of
``fit: outpaint`` (right), scaled to 300 px high. Deterministic; run from the repository root:

    .venv/bin/python docs/outpaint/make_pictures.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pyvips

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.pipeline.outpaint_scenes import gradient, png, studio, textured  # noqa: E402

import retouch  # noqa: E402

HERE = Path(__file__).resolve().parent
FIXTURES = ROOT / "tests" / "fixtures"
HEIGHT = 300
GAP = 12

CASES: list[tuple[str, bytes, dict[str, Any]]] = [
    ("studio", png(studio(600, 450)), {"width": 1000, "height": 450, "fit": "outpaint"}),
    ("gradient", png(gradient(600, 450)), {"fit": {"type": "outpaint", "outpaint_by": "30%"}}),
    ("gravel", png(textured(480, 360)), {"fit": {"type": "outpaint", "outpaint_by": "30% 20%"}}),
    ("coffee", (FIXTURES / "coffee.jpg").read_bytes(), {"width": 800, "height": 400, "fit": "outpaint"}),
    ("chelsea", (FIXTURES / "chelsea.jpg").read_bytes(), {"fit": {"type": "outpaint", "outpaint_by": "25% 0%"}}),
]


def main() -> None:
    for name, data, resizing in CASES:
        out = retouch.edit(data, {"resizing": resizing}, {"format": "png"})
        before = pyvips.Image.new_from_buffer(data, "")
        after = pyvips.Image.new_from_buffer(out.data, "")
        # Same scale for both, so the picture's size inside the output can be compared by eye.
        scale = HEIGHT / max(before.height, after.height)
        left, right = before.resize(scale, kernel="lanczos3"), after.resize(scale, kernel="lanczos3")
        width = left.width + GAP + right.width
        sheet = pyvips.Image.black(width, max(left.height, right.height), bands=3).new_from_image([255, 255, 255])
        sheet = sheet.insert(left[:3], 0, (sheet.height - left.height) // 2)
        sheet = sheet.insert(right[:3], left.width + GAP, (sheet.height - right.height) // 2)
        target = HERE / f"{name}.jpg"
        sheet.copy(interpretation="srgb").jpegsave(str(target), Q=78, keep="none", optimize_coding=True)
        print(f"{target.relative_to(ROOT)}: {resizing} -> {out.width}x{out.height}")


if __name__ == "__main__":
    main()
