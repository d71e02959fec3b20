"""Extension: what an account has done (``GET /v1/tasks``, ``GET /v1/usage``), for scripts and the console."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from retouch.contracts.responses import Data, ResponseModel, omitted
from retouch.contracts.tasks import Progress, TaskStatus

__all__ = ["TaskListResponse", "TaskSummary", "Usage", "UsageResponse", "UsageWindow"]


class TaskSummary(ResponseModel):
    """One task in a listing: its state and counts, without its results (GET ``result_url`` for those)."""

    id: int = Field(..., description="The task's id.")
    kind: Literal["async", "batch"] = Field(..., description="async (one image) or batch.")
    status: TaskStatus = Field(..., description="ACCEPTED -> PROCESSING -> DONE | ERROR | CANCELLED.")
    result_url: str = Field(..., description="Where to GET the task with its results and errors.")
    created_at: str = Field(..., description="When the task was accepted: ISO 8601 in UTC with milliseconds.")
    finished_at: str | SkipJsonSchema[None] = omitted("When the task ended (left out while it runs).")
    progress: Progress = Field(..., description="Items found, done and failed.")


class TaskListResponse(Data[list[TaskSummary]]):
    """``GET /v1/tasks``: the account's most recent tasks, newest first."""

    data: list[TaskSummary] = Field(..., description="The tasks, newest first.")


class UsageWindow(ResponseModel):
    tasks: int = Field(..., description="Async and batch tasks accepted in the window.")
    images_done: int = Field(..., description="Task items (images) edited and written in the window.")
    images_failed: int = Field(..., description="Task items that failed in the window.")


class Usage(ResponseModel):
    """Counted from the task store: async and batch work only (a synchronous edit leaves no record), and only
    tasks still kept (finished tasks are removed after RETOUCH_TASK_RETENTION_DAYS)."""

    last_24_hours: UsageWindow = Field(..., description="The last 24 hours.")
    last_30_days: UsageWindow = Field(..., description="The last 30 days.")
    running_tasks: int = Field(..., description="Tasks accepted or processing now.")


class UsageResponse(Data[Usage]):
    """``GET /v1/usage``."""

    data: Usage = Field(..., description="The account's usage.")
