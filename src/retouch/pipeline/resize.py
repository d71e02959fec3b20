"""Scale to the planned size and cut to the fit. The fast path decodes straight to the planned size
(shrink on load); model upscaling, face-aware crops and a prepared source take the general path."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import pyvips

from retouch.contracts.operations import ImageOperations
from retouch.pipeline.jpegfast import fast_decode
from retouch.pipeline.load import SourceInfo, decode, decode_upright
from retouch.pipeline.plan import Plan

__all__ = ["scale_and_fit", "upscale_kind"]

log = logging.getLogger("retouch.pipeline")


def upscale_kind(ops: ImageOperations) -> str | None:
    r = ops.restorations
    if r is None or r.upscale is None:
        return None
    return r.upscale if isinstance(r.upscale, str) else r.upscale.type


def _saliency() -> Callable[[Any], Any] | None:
    try:
        from retouch.models.background import foreground_mask
    except ImportError:
        return None
    return foreground_mask


def _shrink_on_load(data: bytes, info: SourceInfo, plan: Plan) -> pyvips.Image:
    """Decode straight to the planned size: libjpeg-turbo's DCT scaling for plain JPEGs (``jpegfast``),
    else libvips' shrink on load (``load.decode``), cut by libvips."""
    image = fast_decode(data, info, plan)
    return decode(data, info, plan) if image is None else image


def scale_and_fit(
    data: bytes, info: SourceInfo, plan: Plan, ops: ImageOperations, source: pyvips.Image | None
) -> pyvips.Image:
    kind = upscale_kind(ops)
    enlarges = plan.scaled[0] * plan.scaled[1] > plan.source[0] * plan.source[1]
    model_upscale = kind is not None and enlarges
    smart = plan.crop == "attention"
    if source is None and not model_upscale and not smart:
        return _shrink_on_load(data, info, plan)
    if source is not None:
        image = source
    elif model_upscale:
        image = decode_upright(data, info)
    else:  # smart crop: decode to the cover size, uncut, so the faces can be found
        image = _shrink_on_load(data, info, dataclasses.replace(plan, crop=None))
    if (image.width, image.height) != plan.scaled:
        if model_upscale:
            from retouch.models.superres import upscale
            from retouch.pipeline.colour import srgb

            assert kind is not None
            image = upscale(srgb(image), plan.scaled[0], plan.scaled[1], kind)
        else:
            image = image.thumbnail_image(plan.scaled[0], height=plan.scaled[1], size="force")
    if plan.crop is None:
        return image
    width, height = plan.fitted
    if smart:
        from retouch.pipeline.colour import srgb
        from retouch.pipeline.smartcrop import smart_crop

        return smart_crop(srgb(image), width, height, saliency=_saliency())
    return image.crop((image.width - width) // 2, (image.height - height) // 2, width, height)
