"""Async and batch requests and answers, and the webhook settings (an extension: Claid configures them in a
dashboard)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from retouch.contracts.common import Strict, check_source
from retouch.contracts.edit import ImageObject, OutputObject, UploadData
from retouch.contracts.responses import Data, ResponseModel, omitted

__all__ = [
    "AsyncTask",
    "AsyncTaskResponse",
    "BatchEditRequest",
    "BatchInput",
    "BatchTask",
    "BatchTaskResponse",
    "ItemResult",
    "NoResult",
    "Progress",
    "TaskError",
    "TaskStatus",
    "TaskView",
    "Webhook",
    "WebhookDelivery",
    "WebhookResponse",
    "WebhookSettings",
    "WebhookTest",
    "WebhookTestResponse",
]


class BatchInput(Strict):
    source: str = Field(..., min_length=1, max_length=4096, description="A storage folder (or a file / URL).")
    recursive: bool = Field(False, description="Folders: take images in sub-folders too, keeping their sub-paths.")

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return check_source(value, "source")


def _with_text_forms(schema: dict[str, Any]) -> None:
    """The document shows what ``_forms`` accepts: a URI or URL as text, alone or in the list, too."""
    ref = next(member for member in schema["anyOf"] if "$ref" in member)
    text = {"type": "string", "description": "A storage URI (file or folder) or an http(s) URL."}
    schema["anyOf"] = [text, ref, {"type": "array", "items": {"anyOf": [text, ref]}, "minItems": 1}]


class BatchEditRequest(UploadData):
    """``POST /v1/image/edit/batch``: a folder, a list of files/URLs/folders, or {source, recursive}."""

    input: BatchInput | list[BatchInput] = Field(
        ...,
        description='"storage://name/folder/", a list of URIs and URLs (folders allowed), or '
        '{"source": "storage://name/folder/", "recursive": true}.',
        json_schema_extra=_with_text_forms,
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


# ---------------------------------------------------------------------------------------------- responses

TaskStatus = Literal["ACCEPTED", "PROCESSING", "DONE", "ERROR", "CANCELLED"]


class ItemResult(ResponseModel):
    """One image of an async or batch task that was edited and written."""

    input_object: ImageObject = Field(..., description="The input image as read.")
    output_object: OutputObject = Field(..., description="The output image as written, and where it is.")
    input_source: str | SkipJsonSchema[None] = omitted(
        "Extension: the input this result was made from (its storage:// URI or URL), as the item's error would name it."
    )


class NoResult(BaseModel):
    """``{}``: the ``result`` of an async task that has no result (yet, or because it failed)."""

    model_config = ConfigDict(extra="forbid")


class TaskError(ResponseModel):
    """One failure of a task: an input that could not be edited or written, or the task's own (e.g. a batch
    folder that could not be listed)."""

    error: str = Field(..., description="What went wrong; an item's message starts with its input (URI or URL).")
    created_at: str | None = Field(
        ..., description="When it was recorded: ISO 8601 in UTC with milliseconds, e.g. 2025-05-01T12:00:00.123Z."
    )
    input_object: ImageObject | SkipJsonSchema[None] = omitted(
        "The input image, when its header could be read; left out otherwise."
    )


class Progress(ResponseModel):
    """Extension: how far a task is."""

    total: int = Field(..., description="Items found so far (grows while a batch's folders are listed).")
    done: int = Field(..., description="Items edited and written.")
    failed: int = Field(..., description="Items that failed (each is in `errors`).")


class WebhookDelivery(ResponseModel):
    """Extension: the delivery of the task's final state to the account's webhook."""

    delivered: bool = Field(..., description="The receiver answered 2xx.")
    attempts: int = Field(..., description="Deliveries tried so far.")
    last_status: int | str | None = Field(
        ...,
        description="The receiver's last HTTP status as a number (200, 503), or a message when no answer came "
        '(e.g. "no response: the connection failed (ConnectError)"); null before the first attempt.',
        examples=[200],
    )


class TaskView(ResponseModel):
    """What async and batch tasks have in common."""

    id: int = Field(..., description="The task's id: GET result_url to follow it.")
    status: TaskStatus = Field(
        ...,
        description="ACCEPTED -> PROCESSING -> DONE | ERROR | CANCELLED. The answer to a POST always says "
        "ACCEPTED. A batch is DONE only when every item succeeded.",
    )
    result_url: str = Field(..., description="Where to GET this task (with the same key).")
    created_at: str = Field(
        ..., description="When the task was accepted: ISO 8601 in UTC with milliseconds, e.g. 2025-05-01T12:00:00.123Z."
    )
    request: dict[str, Any] = Field(..., description="The request body as it was sent.")
    errors: list[TaskError] = Field(..., description="Every failure so far (for a batch, paged by offset/limit).")


class AsyncTask(TaskView):
    """An async edit: ``POST /v1/image/edit/async`` and ``GET .../async/{id}``."""

    result: ItemResult | NoResult = Field(..., description="The edited image once DONE; `{}` until then, and on ERROR.")
    progress: Progress = Field(..., description="Extension: items found, done and failed.")
    webhook: WebhookDelivery | SkipJsonSchema[None] = omitted(
        "Extension: present once a webhook delivery is due for this task."
    )


class BatchTask(TaskView):
    """A batch: ``POST /v1/image/edit/batch`` and ``GET .../batch/{id}`` (one page of it)."""

    results: list[ItemResult] = Field(
        ..., description="Every image edited and written so far, in listing order (paged by offset/limit)."
    )
    progress: Progress = Field(..., description="Extension: items found, done and failed.")
    webhook: WebhookDelivery | SkipJsonSchema[None] = omitted(
        "Extension: present once a webhook delivery is due for this task."
    )


class AsyncTaskResponse(Data[AsyncTask]):
    """An async task: ``{"data": {...}}``."""

    data: AsyncTask = Field(..., description="The task.")


class BatchTaskResponse(Data[BatchTask]):
    """A batch task, or one page of its results and errors: ``{"data": {...}}``."""

    data: BatchTask = Field(..., description="The task.")


class Webhook(ResponseModel):
    """The account's webhook (the secret is write-only)."""

    url: str = Field(..., description="The endpoint that receives the task's GET body when a task ends.")
    events: list[Literal["success", "failed"]] = Field(..., description="success (DONE) and/or failed (ERROR).")
    secret_set: bool = Field(..., description="Deliveries are signed (X-Claid-Hmac-SHA256).")


class WebhookResponse(Data[Webhook]):
    """``{"data": {url, events, secret_set}}``."""

    data: Webhook = Field(..., description="The webhook.")


class WebhookTest(ResponseModel):
    """Extension: the outcome of ``POST /v1/webhook/test`` (one signed test event, sent now, not retried)."""

    url: str = Field(..., description="The receiver the event was sent to.")
    delivered: bool = Field(..., description="The receiver answered 2xx.")
    status: int | str = Field(..., description="The receiver's HTTP status, or why no answer came.")
    signed: bool = Field(..., description="The body carried X-Claid-Hmac-SHA256 (a secret is set).")
    ms: float = Field(..., description="How long the delivery took, in milliseconds.")


class WebhookTestResponse(Data[WebhookTest]):
    data: WebhookTest = Field(..., description="The delivery's outcome.")
