"""Which networks serve each ``restorations.upscale`` value: the measurement behind docs/ai.md.

Protocol: each of skimage's chelsea, astronaut and coffee (cut to even sides) is downscaled 2x, upscaled back
by every offline 2x network (and the refinements tried on top of them), and compared with the original (PSNR);
the table gives the gain over a centred Lanczos3 enlargement (Pillow) of the same small image, and the wall time
of the upscale (plus the refinement). The downscale is Lanczos3 (Pillow) for the main table; ``--kernels`` adds
bicubic and box (area) downscales, so that a choice is not one that only fits the protocol's degradation, and a
Lanczos3 downscale saved as a JPEG at quality 90 (what a web image often is: here the networks see compression
noise the original did not have). The two
JPEG fixtures (a second JPEG generation of chelsea and coffee) are added as columns of the Lanczos3 table.

    python bench/upscale_psnr.py               # the main table (Lanczos3 downscale)
    python bench/upscale_psnr.py --kernels     # plus the bicubic, box and Lanczos3 + JPEG q90 tables
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from retouch import models
from retouch.models import superres

Array = np.ndarray
R = Image.Resampling
FIXTURES = Path(__file__).parents[1] / "tests" / "fixtures"
SMART_ENHANCE = superres.MODEL_FOR_UPSCALE["smart_enhance"]

NETWORKS = [
    "WAIFU2X_PHOTO_UP2X",
    "WAIFU2X_PHOTO_UP2X_DENOISE0X",
    "WAIFU2X_PHOTO_UP2X_DENOISE1X",
    "WAIFU2X_PHOTO_UP2X_DENOISE2X",
    "WAIFU2X_PHOTO_UP2X_DENOISE3X",
    "WAIFU2X_CUNET_UP2X",
    "WAIFU2X_CUNET_UP2X_DENOISE0X",
    "WAIFU2X_CUNET_UP2X_DENOISE1X",
    "WAIFU2X_ANIME_UP2X",
    "spanx2_ch48",
    "spanx2_ch52",
]
KERNELS = {"Lanczos3": R.LANCZOS, "bicubic": R.BICUBIC, "box": R.BOX}


def psnr(a: Array, b: Array) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255**2 / mse))


def resize_float(image: Array, size: tuple[int, int], kernel: R) -> Array:
    """Resample an HxWx3 float image channel by channel in float (no rounding in between)."""
    planes = [
        Image.fromarray(np.ascontiguousarray(image[..., c], np.float32), "F").resize(size, kernel) for c in range(3)
    ]
    return np.stack([np.asarray(p) for p in planes], axis=-1)


def back_project(big: Array, small: Array, iterations: int, down: R) -> Array:
    """Iterative back-projection (Irani & Peleg): push the downscaled output towards the input.

    Each step: residual = input - downscale(output) with kernel ``down``; output += bicubic enlargement of it.
    """
    out = big.astype(np.float32)
    target = small.astype(np.float32)
    (h, w), (hh, ww) = small.shape[:2], big.shape[:2]
    for _ in range(iterations):
        out += resize_float(target - resize_float(out, (w, h), down), (ww, hh), R.BICUBIC)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def flips(names: tuple[str, ...], small: Array, count: int) -> Array:
    """Self-ensemble: the mean over ``count`` of identity, horizontal, vertical and both flips."""
    ops: list[Callable[[Array], Array]] = [
        lambda a: a,
        lambda a: a[:, ::-1],
        lambda a: a[::-1],
        lambda a: a[::-1, ::-1],
    ][:count]
    total = sum(op(superres._run(names, np.ascontiguousarray(op(small))).astype(np.float64)) for op in ops)
    return np.clip(np.asarray(total) / count + 0.5, 0, 255).astype(np.uint8)


def variants(kernels_table: bool) -> dict[str, Callable[[Array], Array]]:
    """Row label -> upscaler of a small uint8 image."""
    rows: dict[str, Callable[[Array], Array]] = {}
    if not kernels_table:
        rows.update({net: (lambda s, n=net: superres._run(n, s)) for net in NETWORKS})
    else:
        rows["WAIFU2X_CUNET_UP2X"] = lambda s: superres._run("WAIFU2X_CUNET_UP2X", s)
        rows["spanx2_ch52"] = lambda s: superres._run("spanx2_ch52", s)
    rows["**smart_enhance**: mean(cunet, SPAN ch52)"] = lambda s: superres._run(SMART_ENHANCE, s)
    rows["SPAN ch52, 2 flips"] = lambda s: flips(("spanx2_ch52",), s, 2)
    rows["SPAN ch52, 4 flips"] = lambda s: flips(("spanx2_ch52",), s, 4)
    rows["cunet, 2 flips"] = lambda s: flips(("WAIFU2X_CUNET_UP2X",), s, 2)
    for label, base in (("cunet", ("WAIFU2X_CUNET_UP2X",)), ("SPAN ch52", ("spanx2_ch52",)), ("mean", SMART_ENHANCE)):
        for down_name, down in KERNELS.items():
            for k in (1, 3):
                rows[f"{label} + back-projection x{k}, {down_name} down"] = lambda s, b=base, d=down, k=k: back_project(
                    superres._run(b, s), s, k, d
                )
    return rows


def shrink(image: Array, size: tuple[int, int], kernel: R, jpeg: int | None) -> Array:
    small = Image.fromarray(image).resize(size, kernel)
    if jpeg is not None:
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=jpeg)
        small = Image.open(buffer).convert("RGB")
    return np.asarray(small)


def table(kernel_name: str, kernel: R, photos: dict[str, Array], kernels_table: bool, jpeg: int | None = None) -> None:
    gains: dict[str, dict[str, tuple[float, float]]] = {}
    base: dict[str, float] = {}
    rows = variants(kernels_table)
    for name, image in photos.items():
        h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        image = image[:h, :w]
        small = shrink(image, (w // 2, h // 2), kernel, jpeg)
        base[name] = psnr(np.asarray(Image.fromarray(small).resize((w, h), R.LANCZOS)), image)
        for label, upscale in rows.items():
            began = time.perf_counter()
            up = upscale(small)
            gains.setdefault(label, {})[name] = (psnr(up, image) - base[name], time.perf_counter() - began)
    print(f"\n{kernel_name} downscale\n")
    print("| variant | " + " | ".join(photos) + " |")
    print("|---|" + "---|" * len(photos))
    print("| Lanczos3 (PSNR) | " + " | ".join(f"{base[n]:.2f} dB" for n in photos) + " |")
    for label, row in gains.items():
        print(f"| {label} | " + " | ".join(f"{row[n][0]:+.2f} dB ({row[n][1]:.1f} s)" for n in photos) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", action="store_true", help="also the bicubic and box downscale tables")
    args = parser.parse_args()
    models.configure(threads=2)
    photos = {"chelsea": data.chelsea(), "astronaut": data.astronaut(), "coffee": data.coffee()}
    for name in ("chelsea.jpg", "coffee.jpg"):
        # The fixtures are a second JPEG generation of chelsea and coffee: the network sees JPEG-ish detail.
        with Image.open(FIXTURES / name) as fixture:
            photos[f"fixture {name}"] = np.asarray(fixture.convert("RGB"))
    superres._run(SMART_ENHANCE, photos["chelsea"][:64, :64])  # load the networks outside the timings
    table("Lanczos3", R.LANCZOS, photos, kernels_table=False)
    if args.kernels:
        skimage_only = {n: a for n, a in photos.items() if not n.startswith("fixture")}
        for kernel_name in ("bicubic", "box"):
            table(kernel_name, KERNELS[kernel_name], skimage_only, kernels_table=True)
        table("Lanczos3 + JPEG q90", R.LANCZOS, skimage_only, kernels_table=True, jpeg=90)


if __name__ == "__main__":
    main()
