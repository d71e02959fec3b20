"""Anonymous download of results kept without a destination (the `tmp_url`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response

from retouch.api.deps import get_service
from retouch.api.openapi import errors
from retouch.errors import NotFound
from retouch.formats import FORMATS, mime_type, sniff
from retouch.service import Service

router = APIRouter(tags=["results"])

_IMAGE = {
    "description": "The image, with its format's media type (application/octet-stream when not recognised).",
    "content": {
        mime: {"schema": {"type": "string", "format": "binary"}}
        for mime in [*(f.mime for f in FORMATS.values()), "application/octet-stream"]
    },
}


@router.get(
    "/tmp/{token}/{name}",
    summary="Download a result kept for 24 h (no auth: the URL is the secret)",
    response_class=Response,
    responses={
        200: _IMAGE,
        **errors(404, 429, 500, notes={404: '"Result not found or expired."'}),
    },
)
def tmp_file(token: str, name: str, service: Annotated[Service, Depends(get_service)]) -> Response:
    found = service.tmp.fetch(token, name)
    if found is None:
        raise NotFound("Result not found or expired.")
    headers = {"Cache-Control": "private, max-age=86400"}
    if isinstance(found, bytes):
        ext = sniff(found[:32])
        return Response(found, media_type=mime_type(ext) if ext else "application/octet-stream", headers=headers)
    with found.open("rb") as handle:
        ext = sniff(handle.read(32))
    return FileResponse(found, media_type=mime_type(ext) if ext else "application/octet-stream", headers=headers)
