"""The error envelope: its models (for the OpenAPI document), and pydantic failures turned into the contract's
422 (code 9000, per-field details). The bodies themselves are built by :meth:`RetouchError.envelope`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retouch.errors import ValidationFailed

__all__ = ["ErrorEnvelope", "ErrorSummary", "RateLimitEnvelope", "validate", "validation_failed"]


class ErrorSummary(BaseModel):
    """Code, type and message of an error: the 429 body nests these under ``detail`` (as Claid does)."""

    model_config = ConfigDict(extra="forbid")

    error_code: str = Field(
        ...,
        description="The contract's code, a string of digits: 9000 validation, 3001-3003 image, 4001 storage, "
        "4002 web, 111/112 auth, 4040 not found, 4090 conflict, 4130 too large, 2001 rate limit, 5000 internal.",
        examples=["9000"],
    )
    error_type: str = Field(
        ...,
        description="The family of the error: validation, image, storage, web, auth or general.",
        examples=["validation"],
    )
    error_message: str = Field(
        ...,
        description="What went wrong, for a person; safe to show (never credentials or internal paths).",
        examples=[
            'operations.resizing.width: expected a whole number of pixels, "auto" or a percentage like '
            "\"50%\" for `width` but received 'x'."
        ],
    )


class ErrorEnvelope(ErrorSummary):
    """The body of every error answer but the 429: ``{error_code, error_type, error_message, error_details}``."""

    error_details: dict[str, list[str]] = Field(
        ...,
        description="Validation errors: each dotted field path (`operations.resizing.width`) mapped to its "
        "messages; `{}` for the other errors.",
        examples=[
            {
                "operations.resizing.width": [
                    'expected a whole number of pixels, "auto" or a percentage '
                    "like \"50%\" for `width` but received 'x'"
                ]
            }
        ],
    )


class RateLimitEnvelope(BaseModel):
    """The 429 body: ``{"detail": {error_code: "2001", error_type, error_message}}``."""

    model_config = ConfigDict(extra="forbid")

    detail: ErrorSummary = Field(..., description="The error, without `error_details`.")


#: An error answer never grows with the request: each message is cut to this many characters (an 800 KB
#: `padding` used to come back twice in a 1.6 MB body) and at most this many fields are listed.
MAX_MESSAGE_CHARS = 300
MAX_FIELDS = 50


def _message(error: Any) -> str:
    msg = str(error.get("msg", "invalid value"))
    # Our own validators raise ValueError; pydantic prefixes "Value error, ", which adds nothing.
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if error.get("type") == "extra_forbidden":
        msg = "unknown field (not part of the contract)"
    elif error.get("type") == "missing":
        msg = "field required"
    return clip(msg)


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 30] + f"... ({len(text)} characters in all)"


def _path(loc: Sequence[Any], prefix: str) -> str:
    parts = [str(p) for p in loc if not str(p).startswith(("function-", "union["))]
    # Skip pydantic's tags for the members of a union (e.g. 'str', 'Compression', 'literal[...]').
    tags = ("literal[", "list[", "dict[", "tuple[", "nullable[")
    parts = [p for p in parts if not (p[:1].isupper() or p.startswith(tags) or p in ("str", "int", "bool", "float"))]
    path = ".".join(parts)
    return ".".join(x for x in (prefix, path) if x) or "body"


def validation_failed(exc: ValidationError | Sequence[Any], prefix: str = "") -> ValidationFailed:
    errors = exc.errors() if isinstance(exc, ValidationError) else exc
    details: dict[str, list[str]] = {}
    more = 0
    for error in errors:
        path = clip(_path(error.get("loc", ()), prefix), 200)
        if path not in details and len(details) >= MAX_FIELDS:
            more += 1
            continue
        msgs = details.setdefault(path, [])
        msg = _message(error)
        if msg not in msgs and len(msgs) < 5:
            msgs.append(msg)
    # A union field reports one error per member; keep the specific ones (a deeper path under the same field).
    for path in list(details):
        deeper = any(other.startswith(path + ".") for other in details)
        # e.g. upscale {"type": "photo", "version": 9}: the string member's "Input should be 'smart_enhance', ..."
        # is noise once the object member names `upscale.version`.
        if deeper and all(m.startswith(("Input should be", "expected")) for m in details[path]):
            del details[path]
    message = " ".join(f"{path}: {'; '.join(msgs)}." for path, msgs in details.items())
    if more:
        message += f" ... and {more} more errors."
    return ValidationFailed(message, details=details)


def validate(model: Any, data: Any, prefix: str = "") -> Any:
    """``model.model_validate(data)``, raising :class:`ValidationFailed` in the contract's shape."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_failed(exc, prefix) from None
