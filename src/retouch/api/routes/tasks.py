"""Async and batch edits: accept now, poll later (or receive a webhook)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response
from pydantic import TypeAdapter

from retouch.api.deps import ImageEditing, Svc
from retouch.api.openapi import BATCH_EXAMPLES, EDIT_EXAMPLES, errors
from retouch.contracts.edit import EditRequest
from retouch.contracts.tasks import AsyncTaskResponse, BatchEditRequest, BatchTaskResponse

router = APIRouter(tags=["async and batch"])

Offset = Annotated[int, Query(ge=0, description="Extension: skip this many results (and errors).")]
Limit = Annotated[int | None, Query(ge=1, le=10_000, description="Extension: at most this many results (and errors).")]

_ACCEPT = errors(
    400,
    401,
    403,
    413,
    422,
    429,
    500,
    notes={422: "Or an operation this installation cannot perform (3003), found before the task is queued."},
)
_ONE_TASK = errors(
    401,
    403,
    404,
    422,
    429,
    500,
    notes={404: '"Batch image edit pipeline not found.": no such task of this kind in this account.'},
)


_ANY = TypeAdapter(dict[str, Any])


async def _unchecked(view: dict[str, Any]) -> Response:
    """A whole batch view, written as before (the bytes FastAPI wrote for a ``dict[str, Any]`` answer) but not
    checked against BatchTaskResponse: a page can hold 10,000 results, and building a model instance for each
    of their objects cost 15x the writing (contracts/responses.py). Written in a thread, off the event loop."""
    body = await asyncio.to_thread(_ANY.dump_json, {"data": view})
    return Response(body, media_type="application/json")


async def _raw(request: Request) -> dict[str, Any]:
    body: dict[str, Any] = await request.json()
    return body


@router.post(
    "/image/edit/async",
    summary="Queue one edit; poll result_url for the outcome",
    responses=_ACCEPT,
    response_model=AsyncTaskResponse,
    response_model_exclude_unset=True,
)
async def submit_async(
    request: Request,
    body: Annotated[EditRequest, Body(openapi_examples=EDIT_EXAMPLES)],
    principal: ImageEditing,
    service: Svc,
) -> dict[str, Any]:
    raw = await _raw(request)
    return {"data": await asyncio.to_thread(service.submit_async, principal.account_id, body, raw)}


@router.get(
    "/image/edit/async/{task_id}",
    summary="State and result of an async edit",
    responses=_ONE_TASK,
    response_model=AsyncTaskResponse,
    response_model_exclude_unset=True,
)
async def get_async(task_id: int, principal: ImageEditing, service: Svc) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.task_view, principal.account_id, "async", task_id, 0, None)}


@router.post(
    "/image/edit/async/{task_id}/cancel",
    summary="Extension: cancel an async edit not yet run",
    responses=_ONE_TASK,
    response_model=AsyncTaskResponse,
    response_model_exclude_unset=True,
)
async def cancel_async(task_id: int, principal: ImageEditing, service: Svc) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.cancel, principal.account_id, "async", task_id)}


@router.post(
    "/image/edit/batch",
    summary="Edit a folder or a list of images; poll result_url",
    responses=_ACCEPT,
    response_model=BatchTaskResponse,
    response_model_exclude_unset=True,
)
async def submit_batch(
    request: Request,
    body: Annotated[BatchEditRequest, Body(openapi_examples=BATCH_EXAMPLES)],
    principal: ImageEditing,
    service: Svc,
) -> dict[str, Any]:
    raw = await _raw(request)
    return {"data": await asyncio.to_thread(service.submit_batch, principal.account_id, body, raw)}


@router.get(
    "/image/edit/batch/{task_id}",
    summary="State, results and errors of a batch",
    responses=_ONE_TASK,
    response_model=BatchTaskResponse,
    response_model_exclude_unset=True,
)
async def get_batch(
    task_id: int, principal: ImageEditing, service: Svc, offset: Offset = 0, limit: Limit = None
) -> Response:
    view = await asyncio.to_thread(service.task_view, principal.account_id, "batch", task_id, offset, limit)
    return await _unchecked(view)


@router.post(
    "/image/edit/batch/{task_id}/cancel",
    summary="Extension: cancel a batch (items not started are skipped)",
    responses=_ONE_TASK,
    response_model=BatchTaskResponse,
    response_model_exclude_unset=True,
)
async def cancel_batch(task_id: int, principal: ImageEditing, service: Svc) -> Response:
    return await _unchecked(await asyncio.to_thread(service.cancel, principal.account_id, "batch", task_id))
