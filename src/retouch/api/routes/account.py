"""Extension: the account's recent tasks and usage - what the console's dashboard shows, open to any script."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query

from retouch.api.deps import ImageEditing, Svc
from retouch.api.openapi import errors
from retouch.contracts.account import TaskListResponse, UsageResponse

router = APIRouter(tags=["account"])


@router.get(
    "/tasks",
    summary="Extension: the account's most recent async and batch tasks, newest first",
    response_model=TaskListResponse,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 422, 429, 500),
)
async def list_tasks(
    principal: ImageEditing,
    service: Svc,
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many tasks.")] = 20,
) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.recent_tasks, principal.account_id, limit)}


@router.get(
    "/usage",
    summary="Extension: tasks and images of the last 24 hours and 30 days",
    response_model=UsageResponse,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 429, 500),
)
async def usage(principal: ImageEditing, service: Svc) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.usage, principal.account_id)}
