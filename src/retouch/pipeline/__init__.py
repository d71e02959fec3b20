"""The edit pipeline: bytes in, encoded bytes out. Knows nothing of HTTP, databases or storage."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyvips

from retouch import metrics
from retouch.contracts.operations import ImageOperations
from retouch.contracts.output import OutputOptions
from retouch.errors import ImageError
from retouch.pipeline.edit import Edit
from retouch.pipeline.encode import encode
from retouch.pipeline.fill import fill_color
from retouch.pipeline.load import SourceInfo, corrupt, is_decode_error, loses_pixels, probe
from retouch.pipeline.plan import Plan, make_plan
from retouch.pipeline.resize import scale_and_fit
from retouch.pipeline.source import needs_source_stage, prepare_source
from retouch.pipeline.steps import STEPS
from retouch.pipeline.style_transfer import reference_error, reference_square
from retouch.settings import Limits

__all__ = ["Encoded", "configure_vips", "run"]

log = logging.getLogger("retouch.pipeline")


@dataclass(frozen=True)
class Encoded:
    data: bytes
    source: SourceInfo
    format: str  # output ext: jpeg | png | webp | avif | tiff
    width: int
    height: int
    frames_dropped: int


def configure_vips(threads: int | None = None) -> None:
    """One worker process per core with one vips thread each is the fastest layout for batch work
    (docs/performance.md); the operation cache only costs memory when every input differs."""
    pyvips.cache_set_max(0)
    if threads is not None:
        pyvips.concurrency_set(threads)
    os.environ.setdefault("VIPS_BLOCK_UNTRUSTED", "1")  # refuse libvips' fuzz-unsafe loaders (matlab, fits, ...)


def run(
    data: bytes,
    operations: ImageOperations,
    output: OutputOptions,
    limits: Limits,
    profile_dir: Path | None = None,
    style_reference: bytes | None = None,
) -> Encoded:
    """Run one edit. Raises :class:`retouch.errors.InputError` subclasses for bad input and limits.

    ``style_reference``: the bytes of ``generative.style_transfer.style_reference_image``, read by the caller
    (the pipeline knows no URLs or storages) through the same guarded reader and limits as the input."""
    info = probe(data, limits)
    style = _style_square(operations, style_reference, limits)
    try:
        return _edit(data, info, operations, output, limits, profile_dir, style)
    except pyvips.Error as exc:
        if not is_decode_error(exc):
            raise  # a fault of ours, not of the input: logged as an internal error, never blamed on the user
        if not info.strict or loses_pixels(exc):
            raise corrupt(info.ext, exc) from None
        log.info("benign decoder warning, decoding leniently: %s", str(exc).strip().splitlines()[-1:])
    # A benign JPEG warning stopped the strict decode: every pixel is there, so run again without it. Rare
    # (a few camera and editor files), so the second run costs nothing in the common case.
    lenient = dataclasses.replace(info, strict=False)
    try:
        return _edit(data, lenient, operations, output, limits, profile_dir, style)
    except pyvips.Error as exc:
        if not is_decode_error(exc):
            raise
        raise corrupt(info.ext, exc) from None


def _style_square(operations: ImageOperations, reference: bytes | None, limits: Limits) -> npt.NDArray[np.uint8] | None:
    """The style reference, decoded once (before the input, so a bad reference costs no decode of the photo)."""
    st = operations.generative.style_transfer if operations.generative is not None else None
    if st is None or st.style_strength * st.denoising_strength <= 0:
        return None
    if reference is None:
        raise reference_error(ImageError("the style reference image was not read"))
    return reference_square(reference, limits)


def _edit(
    data: bytes,
    info: SourceInfo,
    operations: ImageOperations,
    output: OutputOptions,
    limits: Limits,
    profile_dir: Path | None,
    style: npt.NDArray[np.uint8] | None,
) -> Encoded:
    # Stage timings (metrics.py): pyvips is lazy, so "decode" and most steps time building the graph plus
    # whatever they compute eagerly (models, the source stage); the pixels are pulled through it under "encode".
    with metrics.stage("decode"):
        source = prepare_source(data, info, operations) if needs_source_stage(data, operations) else None
        size = (source.width, source.height) if source is not None else info.size
        plan: Plan = make_plan(size, operations, limits)
        spec = output.format.spec()
        removing = operations.background is not None and operations.background.remove is not None
        fill = fill_color(operations, info.alpha or removing, spec.format)
        edit = Edit(operations, spec, output.metadata, plan, fill, profile_dir, style)
        image = scale_and_fit(data, info, plan, operations, source)
    for step in STEPS:
        began = time.perf_counter()
        stepped = step(image, edit)
        if stepped is not image:  # a step that was not requested hands the image back: no sample, no skew
            metrics.stage_took(step.__name__, time.perf_counter() - began)
        image = stepped
    # Decoding is lazy: a corrupt body surfaces when a step or the encoder pulls the pixels (pyvips.Error).
    with metrics.stage("encode"):
        encoded = encode(image, spec, output.metadata, profile_dir)
    return Encoded(encoded, info, spec.format, image.width, image.height, info.pages - 1)
