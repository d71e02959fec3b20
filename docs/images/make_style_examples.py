"""Make the style transfer pictures of docs/ai.md (small JPEGs in this folder) and print the figures quoted there.

Run from the repository root with the AI extra and the model carriers installed:

    python docs/images/make_style_examples.py

Inputs are scikit-image's sample photos (a dev dependency): chelsea (the cat) and coffee are the content,
astronaut (a warm, saturated photo) is the style reference, so the change of colours is easy to see.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyvips
from skimage import data

import retouch
from retouch.models.style import PREDICT_SIDE, WORK_SIDE, style_vector, stylise

HERE = Path(__file__).parent


def jpeg(array: np.ndarray) -> bytes:
    return bytes(pyvips.Image.new_from_array(array).copy(interpretation="srgb").jpegsave_buffer(Q=95))


def pixels(buffer: bytes) -> np.ndarray:
    return np.asarray(pyvips.Image.new_from_buffer(buffer, "").numpy())[..., :3]


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance between joint RGB histograms (16 bins a channel), as in the tests."""

    def hist(x: np.ndarray) -> np.ndarray:
        h, _ = np.histogramdd(x.reshape(-1, 3), bins=16, range=[(0, 256)] * 3)
        return h.ravel() / h.sum()

    return float(0.5 * np.abs(hist(a) - hist(b)).sum())


def styled(photo: bytes, reference: bytes, strength: float, denoising: float = 0.75) -> bytes:
    ops = {
        "generative": {
            "style_transfer": {
                "style_reference_image": "-",
                "style_strength": strength,
                "denoising_strength": denoising,
            }
        }
    }
    return retouch.edit(photo, ops, {"format": "png"}, style_reference=reference).data


def strip(images: list[np.ndarray], height: int = 200) -> pyvips.Image:
    joined = None
    for array in images:
        tile = pyvips.Image.new_from_array(np.ascontiguousarray(array)).copy(interpretation="srgb")
        tile = tile.resize(height / tile.height)
        joined = tile if joined is None else joined.join(tile, "horizontal", shim=6, background=[255, 255, 255])
    assert joined is not None
    return joined


def main() -> None:
    reference = jpeg(data.astronaut())
    ref = pixels(reference)
    print("| photo | strength (denoising 0.75) | colour distance to the reference | time |")
    print("|---|---|---|---|")
    for name, photo_array in (("chelsea", data.chelsea()), ("coffee", data.coffee())):
        photo = jpeg(photo_array)
        row = [pixels(photo), ref]
        for strength in (0.0, 0.5, 1.0):
            began = time.perf_counter()
            out = pixels(styled(photo, reference, strength))
            took = time.perf_counter() - began
            print(
                f"| {name} | {strength:g} | {colour_distance(pixels(photo), ref):.3f} -> "
                f"{colour_distance(out, ref):.3f} | {took:.2f} s |"
            )
            if strength:
                row.append(out)
        strip(row).jpegsave(str(HERE / f"style-{name}.jpg"), Q=80, strip=True)

    # Full resolution: the 384-px painting scaled up (Lanczos) against the guided upsampling retouch does. The
    # photo is coffee at 2400 px with small print on it (detail far finer than 384 px); 100% crops.
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.fromarray(data.coffee()).resize((2400, 1600), Image.LANCZOS)
    draw = ImageDraw.Draw(canvas)
    for row in range(4):
        draw.text(
            (1450, 1000 + 34 * row), "retouch keeps fine print", fill=(20, 20, 20), font=ImageFont.load_default(size=26)
        )
    big = pyvips.Image.new_from_array(np.asarray(canvas)).copy(interpretation="srgb")
    photo = bytes(big.jpegsave_buffer(Q=92))
    guided = pixels(styled(photo, reference, 1.0, 1.0))
    small = big.resize(WORK_SIDE / max(big.width, big.height), kernel="lanczos3")
    square = pyvips.Image.new_from_array(ref).thumbnail_image(PREDICT_SIDE, height=PREDICT_SIDE, crop="centre")
    painted = stylise(np.asarray(small.numpy()), style_vector(np.asarray(square.numpy())))
    naive = pyvips.Image.new_from_array(painted).copy(interpretation="srgb")
    naive = naive.resize(big.width / naive.width, vscale=big.height / naive.height, kernel="lanczos3")
    x, y, w, h = 1420, 960, 380, 200
    crops = [np.asarray(img.crop(x, y, w, h).numpy())[..., :3] for img in (big, naive)]
    crops.append(guided[y : y + h, x : x + w])
    strip(crops, height=h).jpegsave(str(HERE / "style-full-resolution.jpg"), Q=82, strip=True)
    print("wrote", ", ".join(p.name for p in sorted(HERE.glob("style-*.jpg"))))


if __name__ == "__main__":
    main()
