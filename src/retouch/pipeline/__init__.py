"""The edit pipeline: bytes in, encoded bytes out. Knows nothing of HTTP, databases or storage."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyvips

from retouch.contracts.operations import ImageOperations
from retouch.contracts.output import OutputOptions
from retouch.errors import ImageError
from retouch.pipeline.background import fill_color
from retouch.pipeline.edit import Edit
from retouch.pipeline.encode import encode
from retouch.pipeline.load import FORMATS, SourceInfo, probe
from retouch.pipeline.plan import Plan, make_plan
from retouch.pipeline.resize import scale_and_fit
from retouch.pipeline.source import needs_source_stage, prepare_source
from retouch.pipeline.steps import STEPS
from retouch.settings import Limits

__all__ = ["Encoded", "configure_vips", "run"]


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
    (research/perf-anchors.md); the operation cache only costs memory when every input differs."""
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
) -> Encoded:
    """Run one edit. Raises :class:`retouch.errors.InputError` subclasses for bad input and limits."""
    info = probe(data, limits)
    source = prepare_source(data, info, operations) if needs_source_stage(data, operations) else None
    size = (source.width, source.height) if source is not None else info.size
    plan: Plan = make_plan(size, operations, limits)
    spec = output.format.spec()
    removing = operations.background is not None and operations.background.remove is not None
    fill = fill_color(operations, info.alpha or removing, spec.format)
    edit = Edit(operations, spec, output.metadata, plan, fill, profile_dir)
    image = scale_and_fit(data, info, plan, operations, source)
    for step in STEPS:
        image = step(image, edit)
    try:
        encoded = encode(image, spec, output.metadata, profile_dir)
    except pyvips.Error as exc:
        # Decoding is lazy: a corrupt body surfaces only when the encoder pulls the pixels.
        reason = next((ln for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc)).strip()
        raise ImageError(
            f"The input {FORMATS[info.ext][0]} image could not be decoded (truncated or corrupt): {reason}"
        ) from None
    return Encoded(encoded, info, spec.format, image.width, image.height, info.pages - 1)
