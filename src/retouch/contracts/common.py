"""Shared pieces of the wire models: the strict base class and the value types parsed once at the edge."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, model_validator

from retouch.keys import BAD_KEY_CHARS, key_problem

__all__ = [
    "HEX_COLOR_RE",
    "MAX_PERCENT",
    "MAX_PIXELS",
    "Length",
    "Lenient",
    "Strict",
    "check_source",
    "key_problem",
    "none_is_absent",
    "or_short_form",
    "parse_length",
    "storage_uri_problem",
]

HEX_COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_LENGTH_RE = re.compile(r"^(\d+)(?:\.(\d+))?(px|%)$", re.ASCII)

#: The largest length in pixels a request may name. Every output format we write stops at 65,535 px a side
#: (WebP at 16,383) and libvips at 10,000,000; bounding here keeps every later sum and product finite.
MAX_PIXELS = 100_000
#: The largest percentage (100x the input side); the output megapixel limit is checked after planning.
MAX_PERCENT = 10_000


class Strict(BaseModel):
    """Request objects: unknown keys are a 422 (the contract sets additionalProperties: false)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Lenient(BaseModel):
    """Objects real clients send with extra keys (output.format): unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


@dataclass(frozen=True)
class Length:
    """A length in pixels or in percent of a side, parsed once at the edge: the pipeline never re-reads text.

    ``amount`` is a whole number for ``px``; any finite value in ``[0, MAX_PERCENT]`` for ``%``."""

    amount: float
    unit: Literal["px", "%"]

    @property
    def is_percent(self) -> bool:
        return self.unit == "%"

    def pixels(self, along: int) -> int:
        """Pixels of this length on a side of ``along`` px. A positive percentage gives at least 1 px:
        ``"0.00001%"`` is a request for the smallest change, never a silent no-op."""
        if self.unit == "px":
            return int(self.amount)
        if self.amount == 0:
            return 0
        return max(1, round(along * self.amount / 100))

    def __str__(self) -> str:
        # Fixed-point, never an exponent: "1e-05%" is what f"{x:g}" writes, and nobody reads that back.
        text = format(Decimal(repr(self.amount)), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text + self.unit


def parse_length(value: str, field: str, *, max_percent: float = MAX_PERCENT) -> Length:
    """``"25%"``, ``"12.5%"``, ``"40px"`` -> :class:`Length`; anything else raises ``ValueError`` naming ``field``."""
    match = _LENGTH_RE.match(value.strip())
    if match is None:
        raise ValueError(
            f"expected a length in px or % like '40px' or '12.5%' for `{field}` but received {_clip(value)}"
        )
    whole, fraction, unit = match.groups()
    whole = whole.lstrip("0") or "0"
    fraction = (fraction or "0")[:12]  # finer than a millionth of a percent changes no pixel
    limit = MAX_PIXELS if unit == "px" else max_percent
    if len(whole) > 12 or int(whole) > limit:  # checked on the digits: no float ever sees 10**310
        raise ValueError(f"`{field}` must be at most {limit:g}{unit}, received {_clip(value)}")
    if unit == "px":
        if fraction and int(fraction):
            raise ValueError(f"pixels are whole numbers: expected e.g. '40px' for `{field}`, received {_clip(value)}")
        return Length(int(whole), "px")
    amount = float(Decimal(f"{whole}.{fraction}"))
    if amount > max_percent:
        raise ValueError(f"`{field}` must be at most {max_percent:g}%, received {_clip(value)}")
    return Length(amount, "%")


def _clip(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 20] + f"... ({len(text)} characters)"


def storage_uri_problem(uri: str) -> str | None:
    """Why ``storage://name/path`` cannot be used, checked at the edge so the answer names the field."""
    name, _, path = uri[len("storage://") :].partition("/")
    if not name:
        return "the storage URI names no storage"
    if BAD_KEY_CHARS.search(unquote(name)):
        return "control characters cannot be used in a storage name"
    return key_problem(unquote(path))


def check_source(value: str, field: str) -> str:
    """An input: an http(s) URL, or a storage URI whose path a file system and an object store both accept."""
    if not value.startswith(("http://", "https://", "storage://")):
        raise ValueError(f"expected an http(s):// URL or a storage:// URI for `{field}` but received {_clip(value)}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"control characters cannot be used in `{field}`")
    problem = storage_uri_problem(value) if value.startswith("storage://") else None
    if problem is not None:
        raise ValueError(f"{problem} (`{field}`: {_clip(value)})")
    return value


def or_short_form(short: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """``json_schema_extra`` for a field whose model also takes a short form (``"fit": "canvas"`` for
    ``{"type": "canvas"}``, read by the model's ``mode="before"`` validator): the document shows both."""

    def extra(schema: dict[str, Any]) -> None:
        members = schema.pop("anyOf", None)
        if members is None:
            members = [{"$ref": schema.pop("$ref")}]
        schema["anyOf"] = [dict(short), *members]

    return extra


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
