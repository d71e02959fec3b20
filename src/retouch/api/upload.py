"""Streaming multipart for ``POST /image/edit/upload``: the ``file`` part is written straight into a
RAM-backed handoff file (:mod:`retouch.handoff`) as it arrives, and the ``data`` part is kept as text.

FastAPI's ``File``/``Form`` parameters had Starlette spool the file part into a growing in-memory
buffer, which was then read back and copied again into the handoff file: three copies of every
upload in the API process, plus the parse happened before authentication. Here the auth dependency
runs first, the file is copied once, and the size limit stops the upload as soon as it is passed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from retouch.api.openapi import UPLOAD_DATA_EXAMPLE
from retouch.errors import LimitExceeded, ValidationFailed
from retouch.handoff import Handoff

__all__ = ["OPENAPI", "Upload", "read_upload"]

MAX_DATA_BYTES = 1 << 20  # the `data` part is a small JSON document

#: The request body as the OpenAPI document shows it (FastAPI cannot infer it from a raw Request).
OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The image. Its file name becomes the output's name.",
                        },
                        "data": {
                            "type": "string",
                            "description": 'JSON: {"operations": {...}, "output": ...}: an edit request without input.',
                            "examples": [UPLOAD_DATA_EXAMPLE],
                        },
                    },
                }
            }
        },
    }
}


@dataclass
class Upload:
    """The parsed upload: the image as a handoff file (or bytes when RAM is short), its name, and `data`."""

    handoff: Handoff
    filename: str = ""
    path: Path | None = None
    content: bytearray = field(default_factory=bytearray)
    size: int = 0
    data: str = "{}"
    found: bool = False

    @property
    def image(self) -> Path | bytes:
        return self.path if self.path is not None else bytes(self.content)

    def discard(self, reuse: bool = True) -> None:
        """Give the handoff file back (once: a file released twice would be handed to two uploads)."""
        path, self.path = self.path, None
        if path is not None:
            self.handoff.release(path, reuse)


class _Parts:
    """python-multipart callbacks: route each part's bytes to the image file, the data text, or nowhere."""

    def __init__(self, upload: Upload, handoff: Handoff, limit: int) -> None:
        self.upload, self.handoff, self.limit = upload, handoff, limit
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.disposition = b""
        self.target: str | None = None  # "file", "data" or None (ignored part)
        self.sink: BinaryIO | None = None
        self.data = bytearray()

    def on_part_begin(self) -> None:
        self.disposition, self.target = b"", None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self.header_name).lower() == b"content-disposition":
            self.disposition = bytes(self.header_value)
        self.header_name.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == "file" and not self.upload.found:
            self.upload.found = True
            self.upload.filename = options.get(b"filename", b"").decode("utf-8", "replace")
            made = self.handoff.create()
            if made is not None:
                self.upload.path, self.sink = made
            self.target = "file"
        elif name == "data":
            self.data.clear()
            self.target = "data"

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.target == "file":
            self.upload.size += end - start
            if self.upload.size > self.limit:
                raise LimitExceeded(f"The upload is over the input size limit of {self.limit} bytes.")
            chunk = memoryview(data)[start:end]
            if self.sink is not None:
                try:
                    self.sink.write(chunk)
                    return
                except OSError:  # the RAM folder filled up mid-upload: carry on in memory
                    self._to_memory()
            self.upload.content += chunk
        elif self.target == "data":
            self.data += data[start:end]
            if len(self.data) > MAX_DATA_BYTES:
                raise ValidationFailed("The `data` part is over 1 MB.", details={"data": ["too large"]})

    def _to_memory(self) -> None:
        assert self.sink is not None and self.upload.path is not None
        with contextlib.suppress(OSError):
            self.handoff.seal(self.sink)
        self.sink = None
        self.upload.content += self.upload.path.read_bytes()
        self.upload.discard(reuse=False)  # the folder is full: free its RAM

    def on_part_end(self) -> None:
        if self.target == "file" and self.sink is not None:
            self.handoff.seal(self.sink)
            self.sink = None
        elif self.target == "data":
            self.upload.data = self.data.decode("utf-8", "replace")
        self.target = None

    def close(self) -> None:
        if self.sink is not None:
            with contextlib.suppress(OSError):
                self.handoff.seal(self.sink)
            self.sink = None


async def read_upload(request: Request, handoff: Handoff, limit: int) -> Upload:
    """Parse the multipart body; the caller must ``discard()`` the result when done with it."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise _bad_body("the body must be multipart/form-data with a boundary")
    upload = Upload(handoff)
    parts = _Parts(upload, handoff, limit)
    callbacks = {
        "on_part_begin": parts.on_part_begin,
        "on_part_data": parts.on_part_data,
        "on_part_end": parts.on_part_end,
        "on_header_field": parts.on_header_field,
        "on_header_value": parts.on_header_value,
        "on_header_end": parts.on_header_end,
        "on_headers_finished": parts.on_headers_finished,
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]  # a TypedDict of callbacks
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if parser.state != MultipartState.END:  # cut short: no closing boundary, the last part may be partial
            raise FormParserError("the body ended before the closing boundary")
    except FormParserError:
        parts.close()
        upload.discard()
        raise _bad_body("the multipart body is malformed") from None
    except BaseException:
        parts.close()
        upload.discard()
        raise
    parts.close()
    if not upload.found:
        upload.discard()
        raise ValidationFailed("The `file` part is missing.", details={"file": ["field required"]})
    return upload


def _bad_body(why: str) -> ValidationFailed:
    error = ValidationFailed(f"The upload is not valid: {why}.", details={"body": [why]})
    error.status = 400
    return error
