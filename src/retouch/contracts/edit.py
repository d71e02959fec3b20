"""Edit requests (sync, async, upload) and the image objects of their responses."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import Field, field_validator
from typing_extensions import TypedDict

from retouch.contracts.common import Strict, check_source, or_short_form
from retouch.contracts.operations import ImageOperations
from retouch.contracts.output import OutputOptions

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


class ImageObject(TypedDict):
    """What an answer says about an image, the input or the output."""

    ext: Annotated[str, Field(description="The format's short name: jpeg, png, webp, avif, heif, tiff, gif or bmp.")]
    mps: Annotated[float, Field(description="Megapixels: width * height / 1,000,000, not rounded.")]
    mime: Annotated[str, Field(description="The format's MIME type, e.g. image/jpeg.")]
    format: Annotated[str, Field(description="The format's name in capitals, e.g. JPEG, PNG, WEBP.")]
    width: Annotated[int, Field(description="Width in pixels.")]
    height: Annotated[int, Field(description="Height in pixels.")]


class OutputObject(ImageObject):
    """The written image. Where it went: ``tmp_url`` when the request named no ``output.destination``, else
    the ``object_*`` fields and ``claid_storage_uri``. A field that does not apply is left out (never null)."""

    tmp_url: NotRequired[
        Annotated[
            str,
            Field(
                description="Download URL of the result, without auth (the URL is the secret), for 24 hours "
                "(RETOUCH_TMP_RETENTION_HOURS). Only when the request named no `output.destination`."
            ),
        ]
    ]
    object_key: NotRequired[
        Annotated[str, Field(description="The written object's key in its bucket, or its path in a local folder.")]
    ]
    object_bucket: NotRequired[
        Annotated[str, Field(description="The bucket written to (s3, gcs); left out for local folders.")]
    ]
    object_uri: NotRequired[
        Annotated[str, Field(description="The written object's URI: s3://bucket/key, gs://bucket/key or file:///path.")]
    ]
    claid_storage_uri: NotRequired[
        Annotated[
            str, Field(description="storage://name/path of the written object: usable as the input of a later request.")
        ]
    ]
    frames_dropped: NotRequired[
        Annotated[
            int,
            Field(description="Extension: frames of an animated input that were not processed (only the first is)."),
        ]
    ]


class EditResult(TypedDict):
    """A sync edit's result."""

    input: Annotated[ImageObject, Field(description="The input image as read.")]
    output: Annotated[OutputObject, Field(description="The output image as written, and where it is.")]


class EditResponse(TypedDict):
    """``POST /v1/image/edit`` and ``/upload``: ``{"data": {"input", "output"}}``."""

    data: Annotated[EditResult, Field(description="The edit's input and output.")]
