"""Turn pydantic validation failures into the contract's 422 (code 9000, per-field details)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from retouch.errors import ValidationFailed

__all__ = ["validate", "validation_failed"]

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
        if deeper and len(details[path]) == 1 and details[path][0].startswith(("Input should be a valid", "expected")):
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
