"""Which waifu2x network serves each ``restorations.upscale`` value: the measurement behind docs/ai.md.

Protocol: each of skimage's chelsea, astronaut and coffee (cut to even sides) is downscaled 2x with Lanczos3
(Pillow), upscaled back by every offline 2x network, and compared with the original (PSNR); the table gives
the gain over a centred Lanczos3 enlargement (Pillow) of the same small image, and the wall time.

    python bench/upscale_psnr.py
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image
from skimage import data

from retouch import models
from retouch.models import superres

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
]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255**2 / mse))


def main() -> None:
    models.configure(threads=2)
    photos = {"chelsea": data.chelsea(), "astronaut": data.astronaut(), "coffee": data.coffee()}
    gains: dict[str, dict[str, tuple[float, float]]] = {}
    base: dict[str, float] = {}
    for name, image in photos.items():
        h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        image = image[:h, :w]
        small = np.asarray(Image.fromarray(image).resize((w // 2, h // 2), Image.Resampling.LANCZOS))
        base[name] = psnr(np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.LANCZOS)), image)
        for net in NETWORKS:
            began = time.perf_counter()
            up = superres._run(net, small)
            gains.setdefault(net, {})[name] = (psnr(up, image) - base[name], time.perf_counter() - began)
    print("| network | " + " | ".join(photos) + " |")
    print("|---|" + "---|" * len(photos))
    print("| Lanczos3 (PSNR) | " + " | ".join(f"{base[n]:.2f} dB" for n in photos) + " |")
    for net, row in gains.items():
        print(f"| {net} | " + " | ".join(f"{row[n][0]:+.2f} dB ({row[n][1]:.1f} s)" for n in photos) + " |")


if __name__ == "__main__":
    main()
