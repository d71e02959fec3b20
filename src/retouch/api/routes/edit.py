"""Synchronous edits: POST /image/edit (JSON) and /image/edit/upload (multipart)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from starlette.formparsers import MultiPartParser

from retouch.accounts import Principal
from retouch.api.deps import get_service, require
from retouch.contracts.edit import EditRequest, UploadData
from retouch.contracts.envelopes import validate
from retouch.errors import LimitExceeded, ValidationFailed
from retouch.service import Service

router = APIRouter(tags=["image editing"])

# Starlette spools uploads over 1 MB to a temporary file on disk, then we read it back: for photos
# of a few MB that is a write and a read per request for nothing. Keep up to 16 MB in memory.
MultiPartParser.spool_max_size = 16 * 1024 * 1024

ImageEditing = Annotated[Principal, Depends(require("image_editing"))]
Svc = Annotated[Service, Depends(get_service)]


@router.post("/image/edit", summary="Edit one image and wait for the result")
async def edit(body: EditRequest, principal: ImageEditing, service: Svc) -> dict[str, Any]:
    """Fetch `input`, apply `operations`, write `output`; answers `{"data": {"input", "output"}}`."""
    return {"data": await service.edit(principal.account_id, body)}


@router.post("/image/edit/upload", summary="Edit an uploaded image and wait for the result")
async def upload(
    principal: ImageEditing,
    service: Svc,
    file: Annotated[UploadFile, File(description="The image. Its file name becomes the output's name.")],
    data: Annotated[
        str, Form(description='JSON: {"operations": {...}, "output": ...} (an edit request without input).')
    ] = "{}",
) -> dict[str, Any]:
    try:
        parsed = json.loads(data) if data.strip() else {}
    except json.JSONDecodeError:
        raise ValidationFailed("The `data` part is not valid JSON.", details={"data": ["invalid JSON"]}) from None
    options: UploadData = validate(UploadData, parsed)
    limit = service.limits.max_input_bytes
    size = file.size if file.size is not None else len(await file.read(limit + 1))  # Starlette counts as it parses
    if size > limit:
        raise LimitExceeded(f"The upload is over the input size limit of {limit} bytes.")
    return {"data": await service.edit_upload(principal.account_id, file.file, file.filename or "image", options)}
