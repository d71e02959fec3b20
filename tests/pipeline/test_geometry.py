"""Every fit mode × size form × orientation: exact output dimensions, never stretched."""

from __future__ import annotations

from typing import Any

import pytest

from retouch.contracts.operations import ImageOperations
from retouch.errors import LimitExceeded
from retouch.pipeline.plan import make_plan
from retouch.settings import Limits
from tests.pipeline.helpers import decoded, edit

# (source size, resizing) -> expected output size. Sources: landscape 600x400, portrait 200x300 (EXIF 6),
# square 512x512.
LANDSCAPE, PORTRAIT, SQUARE = (
    ("coffee.jpg", (600, 400)),
    ("exif_rotated_6.jpg", (200, 300)),
    ("astronaut.png", (512, 512)),
)

CASES: list[tuple[tuple[str, tuple[int, int]], dict[str, Any], tuple[int, int]]] = []
for fit in ("crop", "cover", "bounds", "canvas"):
    # one side in px: the other keeps the aspect ratio, whatever the fit
    CASES += [
        (LANDSCAPE, {"width": 300, "fit": fit}, (300, 200)),
        (LANDSCAPE, {"height": 100, "fit": fit}, (150, 100)),
        (PORTRAIT, {"width": 100, "fit": fit}, (100, 150)),
        (PORTRAIT, {"height": 150, "width": "auto", "fit": fit}, (100, 150)),
        (SQUARE, {"width": 1024, "fit": fit}, (1024, 1024)),
        # percentages
        (LANDSCAPE, {"width": "50%", "fit": fit}, (300, 200)),
        (LANDSCAPE, {"width": "50%", "height": "50%", "fit": fit}, (300, 200)),
        (PORTRAIT, {"height": "200%", "fit": fit}, (400, 600)),
        (SQUARE, {"width": "25%", "height": "auto", "fit": fit}, (128, 128)),
    ]
BOX = {"width": 300, "height": 300}
CASES += [
    (LANDSCAPE, {**BOX, "fit": "crop"}, (300, 300)),
    (LANDSCAPE, {**BOX, "fit": {"type": "crop", "crop": "smart"}}, (300, 300)),
    (LANDSCAPE, {**BOX, "fit": {"crop": "smart"}}, (300, 300)),  # legacy form
    (LANDSCAPE, {**BOX, "fit": "cover"}, (450, 300)),
    (LANDSCAPE, {**BOX, "fit": "bounds"}, (300, 200)),
    (LANDSCAPE, {**BOX, "fit": "canvas"}, (300, 300)),
    (PORTRAIT, {**BOX, "fit": "crop"}, (300, 300)),
    (PORTRAIT, {**BOX, "fit": "cover"}, (300, 450)),
    (PORTRAIT, {**BOX, "fit": "bounds"}, (200, 300)),
    (PORTRAIT, {**BOX, "fit": "canvas"}, (300, 300)),
    (SQUARE, {"width": 400, "height": 100, "fit": "crop"}, (400, 100)),
    (SQUARE, {"width": 400, "height": 100, "fit": "cover"}, (400, 400)),
    (SQUARE, {"width": 400, "height": 100, "fit": "bounds"}, (100, 100)),
    (SQUARE, {"width": 400, "height": 100, "fit": "canvas"}, (400, 100)),
    (SQUARE, {"width": 2000, "height": 1000, "fit": "crop"}, (2000, 1000)),  # enlarge
    (LANDSCAPE, {}, (600, 400)),  # neither side: unchanged
]


@pytest.mark.parametrize(("source", "resizing", "expected"), CASES, ids=[f"{s[0]}-{r}" for s, r, _ in CASES])
def test_output_size(source: tuple[str, tuple[int, int]], resizing: dict[str, Any], expected: tuple[int, int]) -> None:
    result = edit(source[0], {"resizing": resizing} if resizing else {})
    assert (result.width, result.height) == expected
    image = decoded(result)
    assert (image.width, image.height) == expected


@pytest.mark.parametrize(
    ("padding", "resizing", "canvas", "content"),
    [
        ("10%", None, (600, 400), (480, 320)),
        ("10% 0px", None, (600, 400), (480, 320)),  # vertical 40px each side limits the scale
        ("0px 60px", None, (600, 400), (480, 320)),
        ("20px 40px 20px 40px", None, (600, 400), (520, 347)),
        ("50px", {"width": 300, "height": 300, "fit": "crop"}, (300, 300), (200, 200)),
    ],
)
def test_padding_plan(
    padding: str, resizing: dict[str, Any] | None, canvas: tuple[int, int], content: tuple[int, int]
) -> None:
    ops = ImageOperations.model_validate({"padding": padding, "resizing": resizing})
    plan = make_plan((600, 400), ops, Limits())
    assert plan.canvas == canvas
    assert plan.content == content


def test_output_limit_checked_before_decoding() -> None:
    ops = ImageOperations.model_validate({"resizing": {"width": "1000%"}})
    with pytest.raises(LimitExceeded, match="output limit of 100 megapixels"):
        make_plan((2400, 1600), ops, Limits())


def test_shrink_on_load_is_used() -> None:
    # 2400x1600 -> 600 wide: libvips decodes at 1/4 scale; the result must still be exact.
    result = edit("photo_large.jpg", {"resizing": {"width": 600}})
    assert (result.width, result.height) == (600, 400)
