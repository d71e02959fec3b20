"""The immutable description of one edit that every step reads (and none writes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from retouch.contracts.operations import ImageOperations
from retouch.contracts.output import EncodeSpec, Metadata
from retouch.pipeline.plan import Plan

__all__ = ["Edit"]


@dataclass(frozen=True)
class Edit:
    ops: ImageOperations
    encode: EncodeSpec
    metadata: Metadata | None
    plan: Plan
    #: RGBA fill for canvas, padding and flattening, resolved once from background.color.
    fill: tuple[int, int, int, int]
    profile_dir: Path | None = None
    #: The style reference's 256-px centre square (``style_transfer.reference_square``), when style transfer runs.
    style_reference: npt.NDArray[np.uint8] | None = None
