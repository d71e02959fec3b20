"""``GET /metrics``: Prometheus text format, every process of this replica added up (``retouch.metrics``).

No API key and no rate limit: a scraper is not an account. Open unless ``RETOUCH_METRICS_TOKEN`` is set; the
numbers say how busy the service is and which routes are called, never who calls them (docs/operations.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from retouch import metrics
from retouch.errors import AuthError

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format)",
    response_class=Response,
    # An operator's endpoint, not the image API: left out of the document (whose answers are all JSON
    # under `data`), described in docs/operations.md.
    include_in_schema=False,
)
def metrics_text(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> Response:
    if not metrics.authorized(authorization, request.app.state.settings.metrics_token):
        error = AuthError("GET /metrics needs `Authorization: Bearer <RETOUCH_METRICS_TOKEN>`.")
        return JSONResponse(error.envelope(), status_code=401, headers={"www-authenticate": "Bearer"})
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
