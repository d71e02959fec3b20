"""Edit requests (sync, async, upload) and the image objects of their responses."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from retouch.contracts.common import Strict, check_source, or_short_form
from retouch.contracts.operations import ImageOperations
from retouch.contracts.output import OutputOptions
from retouch.contracts.responses import Data, ResponseModel, omitted

__all__ = ["EditRequest", "EditResponse", "EditResult", "ImageObject", "OutputObject", "UploadData"]


class UploadData(Strict):
    """The ``data`` part of an upload: an edit request without ``input``."""

    operations: ImageOperations = Field(default_factory=ImageOperations, description="What to do to the image.")
    output: OutputOptions = Field(
        default_factory=OutputOptions,
        description="Format, metadata and destination.",
        json_schema_extra=or_short_form({"type": "string", "description": "A storage:// destination alone."}),
    )

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


class ImageObject(ResponseModel):
    """What an answer says about an image, the input or the output."""

    ext: str = Field(..., description="The format's short name: jpeg, png, webp, avif, heif, tiff, gif or bmp.")
    mps: float = Field(..., description="Megapixels: width * height / 1,000,000, not rounded.")
    mime: str = Field(..., description="The format's MIME type, e.g. image/jpeg.")
    format: str = Field(..., description="The format's name in capitals, e.g. JPEG, PNG, WEBP.")
    width: int = Field(..., description="Width in pixels.")
    height: int = Field(..., description="Height in pixels.")


class OutputObject(ImageObject):
    """The written image. Where it went: ``tmp_url`` when the request named no ``output.destination``, else
    the ``object_*`` fields and ``claid_storage_uri``. A field that does not apply is left out (never null)."""

    tmp_url: str | SkipJsonSchema[None] = omitted(
        "Download URL of the result, without auth (the URL is the secret), for 24 hours "
        "(RETOUCH_TMP_RETENTION_HOURS). Only when the request named no `output.destination`."
    )
    object_key: str | SkipJsonSchema[None] = omitted(
        "The written object's key in its bucket, or its path in a local folder."
    )
    object_bucket: str | SkipJsonSchema[None] = omitted("The bucket written to (s3, gcs); left out for local folders.")
    object_uri: str | SkipJsonSchema[None] = omitted(
        "The written object's URI: s3://bucket/key, gs://bucket/key or file:///path."
    )
    claid_storage_uri: str | SkipJsonSchema[None] = omitted(
        "storage://name/path of the written object: usable as the input of a later request."
    )
    frames_dropped: int | SkipJsonSchema[None] = omitted(
        "Extension: frames of an animated input that were not processed (only the first is)."
    )


class EditResult(ResponseModel):
    """A sync edit's result."""

    input: ImageObject = Field(..., description="The input image as read.")
    output: OutputObject = Field(..., description="The output image as written, and where it is.")


class EditResponse(Data[EditResult]):
    """``POST /v1/image/edit`` and ``/upload``: ``{"data": {"input", "output"}}``."""

    data: EditResult = Field(..., description="The edit's input and output.")
