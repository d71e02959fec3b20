"""``fit: outpaint``: fill the canvas around the content with a continuation of the picture - classically.

No generative inpainting model ships inside a registry package (LaMa and MI-GAN download their weights at
first use), so retouch does not pretend: it measures the border and picks one of two classical fills
(``outpaint_fill.py``), or refuses where neither would look plausible (docs/outpaint.md):

* plain border (studio backdrop, gradient, vignette; complexity below ``PLAIN_DELTA_E``): the border's
  colour and gradient continued outwards, with the border's grain;
* textured border: PatchMatch at a reduced working size from a band along the edges, scaled up, grain added;
  refused (422) when an edge would grow by more than ``MAX_TEXTURE_DEPTH`` of the picture's side there, or
  the picture is too small to sample a texture from - PatchMatch would only repeat what little it has.

The step runs where ``frame`` would embed the content on its canvas: after the colour work (the extension
continues the adjusted colours) and before polish and sharpening (the seam gets the same final treatment).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyvips

from retouch.contracts.common import parse_length
from retouch.errors import ImageError
from retouch.pipeline.edit import Edit
from retouch.pipeline.outpaint_border import GRAIN_SIGMA, complexity, compose, grain
from retouch.pipeline.outpaint_fill import Sides, extend_plain, extend_texture

__all__ = ["MAX_TEXTURE_DEPTH", "MIN_TEXTURE_SIDE", "PLAIN_DELTA_E", "choose", "outpaint"]

log = logging.getLogger("retouch.pipeline")

#: Borders within this Delta E of their own plain continuation are extended plainly (see outpaint_border).
PLAIN_DELTA_E = 5.0
#: A textured edge may grow by at most this share of the picture's side across it.
MAX_TEXTURE_DEPTH = 0.4
#: A textured picture needs at least this many pixels on its shorter side to sample a texture from.
MIN_TEXTURE_SIDE = 32


def _sides(edit: Edit, width: int, height: int) -> Sides:
    plan = edit.plan
    left, top = plan.offset
    return Sides(left, top, plan.canvas[0] - width - left, plan.canvas[1] - height - top)


def choose(rgb: np.ndarray, sides: Sides) -> tuple[str, float]:
    """("plain" | "texture", the border's complexity in Delta E); raises ImageError where neither fits."""
    score = complexity(rgb, sides)
    if score < PLAIN_DELTA_E:
        return "plain", score
    height, width = rgb.shape[:2]
    if min(width, height) < MIN_TEXTURE_SIDE:
        raise ImageError(
            f"Cannot outpaint this image: its border is textured (complexity {score:.1f} Delta E; plain "
            f"backgrounds are below {PLAIN_DELTA_E:g}) and at {width}x{height} px it is too small to continue "
            f"a texture from (at least {MIN_TEXTURE_SIDE} px a side)."
        )
    for name, depth in vars(sides).items():
        across = width if name in ("left", "right") else height
        if depth > MAX_TEXTURE_DEPTH * across:
            raise ImageError(
                f"Cannot outpaint this image plausibly: its border is textured (complexity {score:.1f} Delta E; "
                f"plain backgrounds are below {PLAIN_DELTA_E:g}), and the {name} edge would grow by {depth} px, "
                f"{100 * depth / across:.0f}% of the picture's {across} px; a classical fill continues a texture "
                f"by at most {100 * MAX_TEXTURE_DEPTH:g}% per edge. Ask for a smaller outpaint_by or a box "
                "closer to the picture's aspect ratio, or use fit canvas."
            )
    return "texture", score


def outpaint(image: pyvips.Image, edit: Edit) -> pyvips.Image:
    plan = edit.plan
    if not plan.outpaint or not plan.framed:
        return image
    import cv2

    assert edit.ops.resizing is not None  # plan.outpaint is set from it
    feathering = parse_length(edit.ops.resizing.fit.feathering, "feathering", max_percent=100).amount / 100
    sides = _sides(edit, image.width, image.height)
    # One read of the pixels: the decoder streams top to bottom, so a second pass would fail.
    pixels = np.asarray(image.numpy(), dtype=np.uint8)
    alpha = pixels[:, :, 3:4].astype(np.float32) if image.bands == 4 else None
    rgb = np.ascontiguousarray(pixels[:, :, :3])
    method, score = choose(rgb, sides)
    log.info("outpaint: %s fill (border complexity %.1f dE), sides %s", method, score, sides)
    content = rgb.astype(np.float32)
    # The grain is measured while the fill runs: PatchMatch, cv2 and numpy release the GIL, so on two
    # cores the two overlap (1-MP textured picture: ~0.3 s less).
    with ThreadPoolExecutor(max_workers=1) as pool:
        noise = pool.submit(grain, rgb, sides)
        if method == "plain":
            generated = extend_plain(content, sides)
            # Inside the content, the layer the original fades into is the original without its grain.
            h, w = rgb.shape[:2]
            smooth = cv2.GaussianBlur(content, (0, 0), GRAIN_SIGMA, borderType=cv2.BORDER_REFLECT)
            generated[sides.top : sides.top + h, sides.left : sides.left + w] = smooth
        else:
            generated = extend_texture(rgb, sides)
        canvas = compose(rgb, generated, sides, feathering, noise.result())
    result = pyvips.Image.new_from_array(canvas, interpretation="srgb")
    if alpha is not None:
        # Transparency is continued like a plain background (no grain): a cut-out stays cut out.
        a = np.clip(np.rint(extend_plain(alpha, sides)[:, :, 0]), 0, 255).astype(np.uint8)
        result = result.bandjoin(pyvips.Image.new_from_array(a)).copy(interpretation="srgb")
    return result
