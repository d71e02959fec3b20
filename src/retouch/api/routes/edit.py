"""Synchronous edits: POST /image/edit (JSON) and /image/edit/upload (multipart)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Body, Request

from retouch.api.deps import ImageEditing, Svc
from retouch.api.openapi import EDIT_EXAMPLES, errors
from retouch.api.upload import OPENAPI as UPLOAD_OPENAPI
from retouch.api.upload import read_upload
from retouch.contracts.edit import EditRequest, EditResponse, UploadData
from retouch.contracts.envelopes import validate
from retouch.errors import ValidationFailed

router = APIRouter(tags=["image editing"])


#: What can go wrong with an edit, besides the request's shape.
EDIT_422 = (
    "Or the image cannot be edited: not an image we read, truncated or corrupt (3001), over a limit of bytes or "
    "megapixels (3002), an operation this installation cannot perform (3003); or the output would overwrite "
    "its own input (9000)."
)


@router.post(
    "/image/edit",
    summary="Edit one image and wait for the result",
    response_model=EditResponse,
    response_model_exclude_unset=True,
    responses=errors(400, 401, 403, 413, 422, 429, 500, notes={422: EDIT_422}),
)
async def edit(
    body: Annotated[EditRequest, Body(openapi_examples=EDIT_EXAMPLES)], principal: ImageEditing, service: Svc
) -> EditResponse:
    """Fetch `input`, apply `operations`, write `output`; answers `{"data": {"input", "output"}}`."""
    return EditResponse(data=await service.edit(principal.account_id, body))


@router.post(
    "/image/edit/upload",
    summary="Edit an uploaded image and wait for the result",
    openapi_extra=UPLOAD_OPENAPI,
    response_model=EditResponse,
    response_model_exclude_unset=True,
    responses=errors(400, 401, 403, 422, 429, 500, notes={422: EDIT_422 + " An upload over the byte limit is 3002."}),
)
async def upload(request: Request, principal: ImageEditing, service: Svc) -> EditResponse:
    """Multipart: `file` (the image; its file name becomes the output's name) and `data` (JSON:
    `{"operations": {...}, "output": ...}`, an edit request without input; optional)."""
    parsed = await read_upload(request, service.handoff, service.limits.max_input_bytes)
    try:
        try:
            raw = json.loads(parsed.data) if parsed.data.strip() else {}
        except json.JSONDecodeError:
            raise ValidationFailed("The `data` part is not valid JSON.", details={"data": ["invalid JSON"]}) from None
        options: UploadData = validate(UploadData, raw)
        result = await service.edit_upload(principal.account_id, parsed.image, parsed.filename or "image", options)
    except asyncio.CancelledError:
        # The client went away mid-edit: the worker may still be reading the file, so it is not reused.
        parsed.discard(reuse=False)
        raise
    finally:
        parsed.discard()
    return EditResponse(data=result)
