"""Edit requests (sync, async, upload) and the image objects of their responses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from retouch.contracts.common import Strict, check_source
from retouch.contracts.operations import ImageOperations
from retouch.contracts.output import OutputOptions

__all__ = ["EditRequest", "EditResult", "ImageObject", "OutputObject", "UploadData"]


class UploadData(Strict):
    """The ``data`` part of an upload: an edit request without ``input``."""

    operations: ImageOperations = Field(default_factory=ImageOperations, description="What to do to the image.")
    output: OutputOptions = Field(default_factory=OutputOptions, description="Format, metadata and destination.")

    @field_validator("operations", "output", mode="before")
    @classmethod
    def _null(cls, value: Any) -> Any:
        return {} if value is None else value


class EditRequest(UploadData):
    """``POST /v1/image/edit`` and ``/async``: one input, the operations, the output."""

    input: str = Field(
        ...,
        min_length=1,
        max_length=4096,
        description="https://… URL of the image, or storage://name/path/file.jpg.",
    )

    @field_validator("input")
    @classmethod
    def _input(cls, value: str) -> str:
        return check_source(value, "input")


class ImageObject(BaseModel):
    """What the response says about an image (``mps`` = width*height/1e6, unrounded)."""

    ext: str
    mps: float
    mime: str
    format: str
    width: int
    height: int


class OutputObject(ImageObject):
    tmp_url: str | None = None
    object_key: str | None = None
    object_bucket: str | None = None
    object_uri: str | None = None
    claid_storage_uri: str | None = None
    frames_dropped: int | None = Field(None, description="Extension: frames of an animated input not processed.")


class EditResult(BaseModel):
    input: ImageObject
    output: OutputObject
