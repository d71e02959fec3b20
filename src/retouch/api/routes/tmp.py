"""Anonymous download of results kept without a destination (the `tmp_url`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from retouch.api.deps import get_service
from retouch.errors import NotFound
from retouch.pipeline.load import FORMATS, sniff
from retouch.service import Service

router = APIRouter(tags=["results"])


@router.get("/tmp/{token}/{name}", summary="Download a result kept for 24 h (no auth: the URL is the secret)")
def tmp_file(token: str, name: str, service: Annotated[Service, Depends(get_service)]) -> FileResponse:
    path = service.tmp.path(token, name)
    if path is None:
        raise NotFound("Result not found or expired.")
    with path.open("rb") as handle:
        ext = sniff(handle.read(32))
    media_type = FORMATS[ext][1] if ext else "application/octet-stream"
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"})
