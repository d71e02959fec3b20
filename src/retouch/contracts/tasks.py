"""Async and batch requests, and the webhook settings (an extension: Claid configures them in a dashboard)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from retouch.contracts.common import Strict, check_source
from retouch.contracts.edit import UploadData

__all__ = ["BatchEditRequest", "BatchInput", "WebhookSettings"]


class BatchInput(Strict):
    source: str = Field(..., min_length=1, max_length=4096, description="A storage folder (or a file / URL).")
    recursive: bool = Field(False, description="Folders: take images in sub-folders too, keeping their sub-paths.")

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return check_source(value, "source")


class BatchEditRequest(UploadData):
    """``POST /v1/image/edit/batch``: a folder, a list of files/URLs/folders, or {source, recursive}."""

    input: BatchInput | list[BatchInput] = Field(
        ...,
        description='"storage://name/folder/", a list of URIs and URLs (folders allowed), or '
        '{"source": "storage://name/folder/", "recursive": true}.',
    )

    @field_validator("input", mode="before")
    @classmethod
    def _forms(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"source": value}
        if isinstance(value, list):
            if not value:
                raise ValueError("`input` needs at least one item")
            return [{"source": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _folder_destination(self) -> BatchEditRequest:
        dest = self.output.destination
        if dest is not None and not dest.endswith("/"):
            # A batch writes many files: its destination is always a folder.
            object.__setattr__(self.output, "destination", dest + "/")
        return self

    def sources(self) -> list[BatchInput]:
        return self.input if isinstance(self.input, list) else [self.input]


class WebhookSettings(Strict):
    url: str = Field(..., min_length=1, max_length=4096, description="https:// endpoint that receives task results.")
    secret: str | None = Field(
        None, min_length=8, max_length=512, description="Signs each body: X-Claid-Hmac-SHA256 = hex HMAC-SHA256."
    )
    events: list[Literal["success", "failed"]] = Field(
        ["success", "failed"], description="success (DONE) and/or failed (ERROR)."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL for `url` but received {value!r}")
        return value
