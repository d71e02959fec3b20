"""Style transfer (``generative.style_transfer``): the photo painted in the style of a reference image.

The network (``models/style.py``) works at 384 px; the output keeps the photo's full resolution by *guided
upsampling*: the stylised image is computed at the working size and scaled up, and in CIELAB the result takes
its colours (a, b) and its coarse tones from the stylised image, and its fine luminance detail from the photo
(``L = up(L_stylised) + (L_photo - up(L_photo at working size))``). So edges and texture finer than the working
size stay the photo's own, instead of a 384-px painting blown up to 12 MP. Everything at full resolution is
lazy libvips work (streamed in strips), so the extra memory of a 12 MP photo is the network's, not the photo's.

How the contract's knobs map (docs/ai.md):

- ``style_strength`` s: the style vector is ``s * reference + (1 - s) * photo's own``, *and* the stylised image
  is blended over the photo with weight ``s * denoising_strength``. The second factor is what makes 0 mean
  "unchanged": the network re-painting a photo in its own style is not the photo (22.6 dB PSNR, mean error
  15/255 on skimage's chelsea), so the vector alone could not give 0 = unchanged.
- ``denoising_strength`` d: how much of the stylised image is blended over the photo (0 = the photo).
- ``prompt``, ``depth_strength``: accepted, without effect (the offline model takes no text and no depth).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyvips

from retouch.errors import ImageError, LimitExceeded, RetouchError
from retouch.pipeline.edit import Edit
from retouch.pipeline.load import decode, probe
from retouch.pipeline.plan import Plan
from retouch.settings import Limits

__all__ = ["REFERENCE_FIELD", "reference_error", "reference_square", "style_transfer"]

REFERENCE_FIELD = "operations.generative.style_transfer.style_reference_image"


def reference_error(exc: RetouchError) -> ImageError:
    """A problem with the reference image, as a 422 ``image`` error naming the field (a limit stays a limit)."""
    kind = LimitExceeded if isinstance(exc, LimitExceeded) else ImageError
    reason = exc.public_message
    return kind(f"{REFERENCE_FIELD}: {reason}", details={REFERENCE_FIELD: [reason]})


def _to_array(image: pyvips.Image) -> npt.NDArray[np.uint8]:
    array: npt.NDArray[np.uint8] = np.ndarray(
        buffer=image.write_to_memory(), dtype=np.uint8, shape=(image.height, image.width, image.bands)
    )
    return array


def _rgb(image: pyvips.Image) -> pyvips.Image:
    """8-bit sRGB, three bands: alpha flattened onto white (a transparent style image has no colour there)."""
    from retouch.pipeline.colour import srgb

    image = srgb(image)
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    return image.cast("uchar")


def reference_square(data: bytes, limits: Limits) -> npt.NDArray[np.uint8]:
    """The reference image's centre square at the predictor's 256 px, as the predictor wants it. The same
    checks as an input (format from the bytes, byte and megapixel limits); any problem names the field."""
    from retouch.models.style import PREDICT_SIDE

    try:
        info = probe(data, limits)
        side = (PREDICT_SIDE, PREDICT_SIDE)
        plan = Plan(info.size, side, side, "centre", side, side, (0, 0))
        square = _rgb(decode(data, info, plan))
        if (square.width, square.height) != side:  # thumbnail's rounding; never off by more than a pixel
            square = square.resize(PREDICT_SIDE / square.width, vscale=PREDICT_SIDE / square.height)
        return _to_array(square)[:PREDICT_SIDE, :PREDICT_SIDE, :3].copy()
    except RetouchError as exc:
        raise reference_error(exc) from None
    except pyvips.Error:
        raise reference_error(ImageError("the image could not be decoded (corrupt or truncated)")) from None


def _scaled_to(image: pyvips.Image, width: int, height: int) -> pyvips.Image:
    """``image`` resized to exactly width×height (resize may round a pixel off; the edge is repeated)."""
    scaled = image.resize(width / image.width, vscale=height / image.height, kernel="cubic")
    if (scaled.width, scaled.height) != (width, height):
        scaled = scaled.embed(0, 0, width, height, extend="copy")
    return scaled


def _working_size(width: int, height: int, side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def style_transfer(image: pyvips.Image, edit: Edit) -> pyvips.Image:
    st = edit.ops.generative.style_transfer if edit.ops.generative is not None else None
    if st is None:
        return image
    weight = st.style_strength * st.denoising_strength
    if weight <= 0:
        return image  # 0 = unchanged, exactly (see the module's notes)
    if edit.style_reference is None:
        raise reference_error(ImageError("no style reference image was given to the pipeline"))
    from retouch.models.style import PREDICT_SIDE, WORK_SIDE, style_vector, stylise

    # Read twice (the working copy, then full resolution) while the decoder is sequential: decode once into
    # memory (36 MB at 12 MP, far below the network's own ~160 MB).
    image = image.copy_memory()
    alpha = image[image.bands - 1] if image.hasalpha() else None
    rgb = image[0:3] if image.bands > 3 else image
    width, height = rgb.width, rgb.height

    # The photo at the working size: what the network paints, and the low-pass of the photo's own luminance.
    sw, sh = _working_size(width, height, WORK_SIDE)
    small_image = _scaled_to(rgb, sw, sh).cast("uchar")
    small = _to_array(small_image)
    vector = style_vector(edit.style_reference)
    if st.style_strength < 1:
        side = min(sw, sh)
        own = small_image.crop((sw - side) // 2, (sh - side) // 2, side, side)
        own = _scaled_to(own, PREDICT_SIDE, PREDICT_SIDE).cast("uchar")
        vector = st.style_strength * vector + (1 - st.style_strength) * style_vector(_to_array(own))
    painted = stylise(small, vector.astype(np.float32))
    painted_image = pyvips.Image.new_from_memory(painted.tobytes(), sw, sh, 3, "uchar").copy(interpretation="srgb")

    # Guided upsampling in CIELAB: the painting's colours and coarse tones, the photo's fine luminance detail.
    photo_lab = rgb.colourspace("lab")
    painted_lab = _scaled_to(painted_image.colourspace("lab"), width, height)
    low_l = _scaled_to(small_image.copy(interpretation="srgb").colourspace("lab")[0], width, height)
    lightness = (painted_lab[0] + (photo_lab[0] - low_l)).cast("float")
    styled = lightness.bandjoin(painted_lab[1:3]).copy(interpretation="lab").colourspace("srgb")
    mixed = (rgb.cast("float") * (1 - weight) + styled.cast("float") * weight + 0.5).cast("uchar")
    mixed = mixed.copy(interpretation="srgb")
    return mixed.bandjoin(alpha) if alpha is not None else mixed
