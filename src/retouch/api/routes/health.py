"""Liveness and readiness, without auth."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from retouch.api.deps import get_service
from retouch.api.openapi import errors
from retouch.contracts.responses import HealthResponse, ReadinessResponse
from retouch.service import Service

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="The process is up",
    response_model=HealthResponse,
    response_model_exclude_unset=True,
    responses=errors(429, 500),
)
def healthz() -> dict[str, Any]:
    return {"data": {"status": "ok"}}


@router.get(
    "/readyz",
    summary="Database reachable, every image worker started, image library loaded",
    response_model=ReadinessResponse,
    responses={
        503: {"model": ReadinessResponse, "description": "Not ready: the same body, with `status: error`."},
        **errors(429, 500),
    },
)
def readyz(service: Annotated[Service, Depends(get_service)]) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with service.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, do not raise: this endpoint exists to say what is wrong
        checks["database"] = f"error: {type(exc).__name__}"
    # Ready only once every image worker has loaded the image stack: a batch or edit sent before would wait for
    # it (the first batch after start began its first item 0.7 s late; on a ready server, 10-20 ms).
    runtime = service.runtime
    if runtime is None:
        checks["workers"] = checks["libvips"] = "error: not started"
    else:
        up, size = runtime.pool.ready_workers(), runtime.pool.size
        # The workers' libvips (this process does not load the image stack): reported by the first ready one.
        version = runtime.pool.started_with()
        checks["libvips"] = f"ok {version}" if version else "starting"
        checks["workers"] = f"ok {size}" if up >= size else f"starting: {up} of {size} ready"
    ok = all(v.startswith("ok") for v in checks.values())
    # A JSONResponse, for its status; ReadinessResponse above is what the document shows of it.
    return JSONResponse({"data": {"status": "ok" if ok else "error", "checks": checks}}, status_code=200 if ok else 503)
