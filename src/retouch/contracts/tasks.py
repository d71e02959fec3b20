"""Async and batch requests and answers, and the webhook settings (an extension: Claid configures them in a
dashboard)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, field_validator, model_validator, with_config
from typing_extensions import TypedDict

from retouch.contracts.common import Strict, check_source
from retouch.contracts.edit import ImageObject, OutputObject, UploadData

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


class ItemResult(TypedDict):
    """One image of an async or batch task that was edited and written."""

    input_object: Annotated[ImageObject, Field(description="The input image as read.")]
    output_object: Annotated[OutputObject, Field(description="The output image as written, and where it is.")]


@with_config(ConfigDict(extra="forbid"))
class NoResult(TypedDict):
    """``{}``: the ``result`` of an async task that has none (yet, or because it failed)."""


class TaskError(TypedDict):
    """One failure of a task: an input that could not be edited or written, or the task's own (e.g. a batch
    folder that could not be listed)."""

    error: Annotated[str, Field(description="What went wrong; an item's message starts with its input (URI or URL).")]
    created_at: Annotated[
        str | None,
        Field(description="When it was recorded: ISO 8601 in UTC with milliseconds, e.g. 2025-05-01T12:00:00.123Z."),
    ]
    input_object: NotRequired[
        Annotated[ImageObject, Field(description="The input image, when its header could be read; left out otherwise.")]
    ]


class Progress(TypedDict):
    """Extension: how far a task is."""

    total: Annotated[int, Field(description="Items found so far (grows while a batch's folders are listed).")]
    done: Annotated[int, Field(description="Items edited and written.")]
    failed: Annotated[int, Field(description="Items that failed (each is in `errors`).")]


class WebhookDelivery(TypedDict):
    """Extension: the delivery of the task's final state to the account's webhook."""

    delivered: Annotated[bool, Field(description="The receiver answered 2xx.")]
    attempts: Annotated[int, Field(description="Deliveries tried so far.")]
    last_status: Annotated[
        int | str | None,
        Field(
            description="The receiver's last HTTP status, or the error's name when no answer came (e.g. "
            "ConnectError); null before the first attempt."
        ),
    ]


class TaskView(TypedDict):
    """What async and batch tasks have in common."""

    id: Annotated[int, Field(description="The task's id: GET result_url to follow it.")]
    status: Annotated[
        TaskStatus,
        Field(
            description="ACCEPTED -> PROCESSING -> DONE | ERROR | CANCELLED. The answer to a POST always says "
            "ACCEPTED. A batch is DONE only when every item succeeded."
        ),
    ]
    result_url: Annotated[str, Field(description="Where to GET this task (with the same key).")]
    created_at: Annotated[
        str,
        Field(
            description="When the task was accepted: ISO 8601 in UTC with milliseconds, e.g. 2025-05-01T12:00:00.123Z."
        ),
    ]
    request: Annotated[dict[str, Any], Field(description="The request body as it was sent.")]
    errors: Annotated[list[TaskError], Field(description="Every failure so far (for a batch, paged by offset/limit).")]


_PROGRESS = "Extension: items found, done and failed."
_WEBHOOK = "Extension: present once a webhook delivery is due for this task."


class AsyncTask(TaskView):
    """An async edit: ``POST /v1/image/edit/async`` and ``GET .../async/{id}``."""

    result: Annotated[
        ItemResult | NoResult, Field(description="The edited image once DONE; `{}` until then, and on ERROR.")
    ]
    progress: Annotated[Progress, Field(description=_PROGRESS)]
    webhook: NotRequired[Annotated[WebhookDelivery, Field(description=_WEBHOOK)]]


class BatchTask(TaskView):
    """A batch: ``POST /v1/image/edit/batch`` and ``GET .../batch/{id}`` (one page of it)."""

    results: Annotated[
        list[ItemResult],
        Field(description="Every image edited and written so far, in listing order (paged by offset/limit)."),
    ]
    progress: Annotated[Progress, Field(description=_PROGRESS)]
    webhook: NotRequired[Annotated[WebhookDelivery, Field(description=_WEBHOOK)]]


class AsyncTaskResponse(TypedDict):
    """An async task: ``{"data": {...}}``."""

    data: Annotated[AsyncTask, Field(description="The task.")]


class BatchTaskResponse(TypedDict):
    """A batch task, or one page of its results and errors: ``{"data": {...}}``."""

    data: Annotated[BatchTask, Field(description="The task.")]


class Webhook(TypedDict):
    """The account's webhook (the secret is write-only)."""

    url: Annotated[str, Field(description="The endpoint that receives the task's GET body when a task ends.")]
    events: Annotated[list[Literal["success", "failed"]], Field(description="success (DONE) and/or failed (ERROR).")]
    secret_set: Annotated[bool, Field(description="Deliveries are signed (X-Claid-Hmac-SHA256).")]


class WebhookResponse(TypedDict):
    """``{"data": {url, events, secret_set}}``."""

    data: Annotated[Webhook, Field(description="The webhook.")]
