"""Synthetic scenes for the outpaint tests and docs/outpaint/make_pictures.py: deterministic, made in numpy.

* ``studio`` - a light backdrop with a soft vignette and sensor grain, a dark product in the middle;
* ``gradient`` - a backdrop lit from above (a vertical colour gradient) with grain, a red box in the middle;
* ``textured`` - gravel-like multi-scale texture with a magenta disc (the foreground object) in the middle.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyvips

__all__ = ["MAGENTA", "gradient", "png", "studio", "textured"]

MAGENTA = (230, 20, 220)


def _finish(image: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def studio(width: int = 600, height: int = 450, seed: int = 1) -> npt.NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    r2 = ((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2
    image = np.empty((height, width, 3))
    image[:] = (236.0, 234.0, 230.0)
    image -= 12 * r2[:, :, None]  # vignette: ~6 levels darker in the corners
    image += rng.normal(0, 2.0, (height, width, 1))
    x0, x1, y0, y1 = int(width * 0.38), int(width * 0.62), int(height * 0.3), int(height * 0.75)
    image[y1 : y1 + 8, x0 + 6 : x1 + 6] -= 25  # a contact shadow
    image[y0:y1, x0:x1] = (45, 60, 95)
    return _finish(image)


def gradient(width: int = 600, height: int = 450, seed: int = 2) -> npt.NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, height)[:, None, None]
    image = np.array([110.0, 140.0, 205.0]) * (1 - t) + np.array([200.0, 200.0, 160.0]) * t
    image = np.broadcast_to(image, (height, width, 3)).copy()
    image += rng.normal(0, 1.5, (height, width, 1))
    image[int(height * 0.35) : int(height * 0.65), int(width * 0.4) : int(width * 0.6)] = (200, 60, 40)
    return _finish(image)


def textured(width: int = 480, height: int = 360, seed: int = 3) -> npt.NDArray[np.uint8]:
    """Gravel: noise at three scales, earthy colours; a magenta disc (radius 13% of the shorter side) in the middle."""
    rng = np.random.default_rng(seed)
    field = np.zeros((height, width))
    for cell, weight in ((24, 1.0), (8, 0.6), (2, 0.35)):
        small = rng.normal(0, 1, (height // cell + 2, width // cell + 2))
        up = pyvips.Image.new_from_array(small).resize(cell, kernel="cubic").numpy()
        field += weight * up[:height, :width]
    field = (field - field.mean()) / field.std()
    image = np.stack([120 + 38 * field, 105 + 32 * field, 80 + 26 * field], axis=2)
    yy, xx = np.mgrid[0:height, 0:width]
    disc = (xx - width / 2) ** 2 + (yy - height / 2) ** 2 < (0.13 * min(width, height)) ** 2
    image[disc] = MAGENTA
    return _finish(image)


def png(image: npt.NDArray[np.uint8]) -> bytes:
    data: bytes = pyvips.Image.new_from_array(image, interpretation="srgb").pngsave_buffer()
    return data
