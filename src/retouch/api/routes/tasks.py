"""Async and batch edits: accept now, poll later (or receive a webhook)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from retouch.api.deps import get_service, require
from retouch.contracts.edit import EditRequest
from retouch.contracts.tasks import BatchEditRequest
from retouch.service import Service
from retouch.stores.accounts import Principal

router = APIRouter(tags=["async and batch"])

ImageEditing = Annotated[Principal, Depends(require("image_editing"))]
Svc = Annotated[Service, Depends(get_service)]
Offset = Annotated[int, Query(ge=0, description="Extension: skip this many results (and errors).")]
Limit = Annotated[int | None, Query(ge=1, le=10_000, description="Extension: at most this many results (and errors).")]


async def _raw(request: Request) -> dict[str, Any]:
    body: dict[str, Any] = await request.json()
    return body


@router.post("/image/edit/async", summary="Queue one edit; poll result_url for the outcome")
async def submit_async(request: Request, body: EditRequest, principal: ImageEditing, service: Svc) -> dict[str, Any]:
    raw = await _raw(request)
    return {"data": await asyncio.to_thread(service.submit_async, principal.account_id, body, raw)}


@router.get("/image/edit/async/{task_id}", summary="State and result of an async edit")
async def get_async(task_id: int, principal: ImageEditing, service: Svc) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.task_view, principal.account_id, "async", task_id, 0, None)}


@router.post("/image/edit/async/{task_id}/cancel", summary="Extension: cancel an async edit not yet run")
async def cancel_async(task_id: int, principal: ImageEditing, service: Svc) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.cancel, principal.account_id, "async", task_id)}


@router.post("/image/edit/batch", summary="Edit a folder or a list of images; poll result_url")
async def submit_batch(
    request: Request, body: BatchEditRequest, principal: ImageEditing, service: Svc
) -> dict[str, Any]:
    raw = await _raw(request)
    return {"data": await asyncio.to_thread(service.submit_batch, principal.account_id, body, raw)}


@router.get("/image/edit/batch/{task_id}", summary="State, results and errors of a batch")
async def get_batch(
    task_id: int, principal: ImageEditing, service: Svc, offset: Offset = 0, limit: Limit = None
) -> dict[str, Any]:
    view = await asyncio.to_thread(service.task_view, principal.account_id, "batch", task_id, offset, limit)
    return {"data": view}


@router.post("/image/edit/batch/{task_id}/cancel", summary="Extension: cancel a batch (items not started are skipped)")
async def cancel_batch(task_id: int, principal: ImageEditing, service: Svc) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.cancel, principal.account_id, "batch", task_id)}
