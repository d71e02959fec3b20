"""Shared pieces of the wire models: the strict base class and small value parsers."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["HEX_COLOR_RE", "PERCENT_RE", "Lenient", "Strict", "none_is_absent", "parse_percent"]

PERCENT_RE = re.compile(r"^(\d+(?:\.\d+)?)%$")
HEX_COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


class Strict(BaseModel):
    """Request objects: unknown keys are a 422 (the contract sets additionalProperties: false)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Lenient(BaseModel):
    """Objects real clients send with extra keys (output.format): unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def parse_percent(value: str) -> float | None:
    """``"25%"`` -> 25.0; anything else -> None."""
    match = PERCENT_RE.match(value.strip())
    return float(match.group(1)) if match else None


def none_is_absent(data: Any) -> Any:
    """Drop keys whose value is ``null``: the contract treats ``null`` like an absent field."""
    if isinstance(data, dict):
        return {key: value for key, value in data.items() if value is not None}
    return data


class Group(Strict):
    """An operation group: ``null`` for any of its fields means the field is absent."""

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return none_is_absent(data)
