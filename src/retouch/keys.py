"""What a storage key (a path inside a storage) may hold. Shared by the contract's checks at the edge and the
storage layer; kept free of pydantic so the download process, which only reads storages, does not load it."""

from __future__ import annotations

import re

__all__ = ["MAX_KEY_BYTES", "MAX_SEGMENT_BYTES", "key_problem"]

#: Characters no key may hold: control characters (a NUL ends a C string; file systems and S3 refuse or
#: mangle the rest) and the backslash (a second separator on some systems and in S3 tooling).
BAD_KEY_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
#: S3 and GCS keys are at most 1,024 bytes of UTF-8; file names at most 255 bytes (NAME_MAX).
MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255


def key_problem(key: str) -> str | None:
    """Why ``key`` (a path inside a storage, already URL-decoded) cannot be used, or None."""
    if BAD_KEY_CHARS.search(key):
        return "control characters and backslashes cannot be used in a storage path"
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return f"a storage path may be at most {MAX_KEY_BYTES} bytes long"
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES for part in key.split("/")):
        return f"a file or folder name may be at most {MAX_SEGMENT_BYTES} bytes long"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return "a storage path must be valid UTF-8"
    if any(part == ".." for part in key.split("/")):
        return "'..' segments cannot be used"
    return None
