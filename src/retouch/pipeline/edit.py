"""The immutable description of one edit that every step reads (and none writes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
