"""The FastAPI application: routes under /v1 and /v1-beta1, one error envelope, request ids, rate limits."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retouch import __version__, logs, metrics, tracing
from retouch.api.console import install_console
from retouch.api.docs import install_docs
from retouch.api.gate import Gate, bearer_key
from retouch.api.openapi import install_openapi
from retouch.api.ratelimit import RateLimiter, RedisRateLimiter, Verdict
from retouch.api.route_templates import RouteTemplates
from retouch.api.routes import account, edit, health, storages, tasks, tmp, webhook
from retouch.api.routes import metrics as metrics_route
from retouch.bootstrap import open_service, start
from retouch.contracts.envelopes import validation_failed
from retouch.errors import RateLimited, RetouchError, ValidationFailed
from retouch.service import Service
from retouch.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger("retouch.api")
access_log = logging.getLogger("retouch.access")

PREFIXES = ("/v1", "/v1-beta1")
# Anonymous, cheap routes that do not spend the caller's budget (they still carry the headers).
_UNCOUNTED = ("/healthz", "/readyz", "/docs", "/openapi.json", "/redoc", "/v1/tmp/", "/v1-beta1/tmp/", "/console")
#: Never limited at all: a scraper shares its address with other callers and must not be refused for them.
_UNLIMITED = "/metrics"


def _error_response(exc: RetouchError) -> JSONResponse:
    # x-request-id and the RateLimit-* headers are added on the way out by RequestIdAndRateLimit.
    return JSONResponse(exc.envelope(), status_code=exc.status)


def _client_key(scope: Scope) -> str:
    key = bearer_key(scope)
    if key is not None:
        return "key:" + key
    client = scope.get("client")
    return "ip:" + (str(client[0]) if client else "unknown")


def _incoming_request_id(scope: Scope) -> str | None:
    """A caller's X-Request-ID, kept when it is sane (printable ASCII, at most 128 characters) so the caller's
    own id follows the request through our answer and logs; anything else is replaced by a new UUID."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            raw: bytes = value
            if 0 < len(raw) <= 128 and all(0x21 <= c <= 0x7E for c in raw):
                return raw.decode("ascii")
            return None
    return None


class RequestIdAndRateLimit:
    """Every response gets ``x-request-id`` and the RateLimit-* headers; over the limit, a 429 in the
    envelope; an unhandled error, a 500 in the envelope (never a bare one).

    A plain ASGI middleware, not ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware re-wraps
    every body chunk of the request in a task group, which for a multi-MB upload cost more API CPU
    than the route itself (about a fifth of the upload path's samples)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, routes: RouteTemplates) -> None:
        self.app = app
        self.limiter = limiter
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The request's span (when tracing is on) is the parent of everything the request causes, the image
        # worker's spans included (the job carries its context there).
        with tracing.span(scope["method"], {"http.request.method": scope["method"]}) as request_span:
            await self._handle(scope, receive, send, request_span)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_span: Any) -> None:
        request_id = _incoming_request_id(scope) or str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id  # request.state.request_id downstream
        logs.set_ids(request_id=request_id, account=None)  # this request's task: every line it logs carries it
        began = time.perf_counter()
        status = 0
        counted = not (scope["path"].startswith(_UNCOUNTED) or scope["path"] == "/")  # "/" is the console
        if scope["path"] == _UNLIMITED:
            verdict = Verdict(True, {})
        else:
            verdict = self.limiter.hit(_client_key(scope), count=counted)
        extra = [(b"x-request-id", request_id.encode())]
        extra += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in verdict.headers.items()]
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            if not verdict.allowed:
                # Retry-After (seconds) is what generic HTTP clients and proxies honour; RateLimit-Reset says the same.
                extra.append((b"retry-after", verdict.headers.get("RateLimit-Reset", "1").encode("latin-1")))
                metrics.rate_limited()
                await _error_response(RateLimited())(scope, receive, send_with_headers)
                return
            try:
                await self.app(scope, receive, send_with_headers)
            except Exception:  # the last line of defence: never a bare 500 without the envelope
                log.exception("unhandled error (request %s)", request_id)
                if started:
                    raise  # headers are out: nothing better to send than what the server does
                error = RetouchError(f"Internal error; quote request id {request_id} to the operator.")
                await _error_response(error)(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - began
            _access(scope, status, seconds)
            route = self.routes.lookup(scope["path"])
            metrics.http_request(route, scope["method"], status, seconds)
            if request_span is not None:
                request_span.update_name(f"{scope['method']} {route}")
                request_span.set_attributes({"http.route": route, "http.response.status_code": status})


def _access(scope: Scope, status: int, seconds: float) -> None:
    """One line per request: method, path, status, time, and the account by name - never the key."""
    principal = scope.get("state", {}).get("principal")
    account = principal.account_name if principal is not None else None
    access_log.info(
        "%s %s %d %.1f ms",
        scope["method"],
        scope["path"],
        status,
        seconds * 1000,
        extra={
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "ms": round(seconds * 1000, 1),
            "account": account,
        },
    )


def create_app(settings: Settings | None = None, service: Service | None = None) -> FastAPI:
    """Build the app. Tests build several side by side, each with its own settings and home."""
    settings = settings or Settings()
    limiter: RateLimiter
    if settings.shared_redis_url and (settings.rate_limit_per_minute or settings.rate_limit_per_second):
        limiter = RedisRateLimiter(
            settings.rate_limit_per_minute,
            settings.rate_limit_per_second,
            settings.shared_redis_url,
            burst=settings.rate_limit_burst,
        )
    else:
        limiter = RateLimiter(
            settings.rate_limit_per_minute, settings.rate_limit_per_second, burst=settings.rate_limit_burst
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = service or open_service(settings)
        await asyncio.to_thread(start, svc)
        app.state.service = svc
        try:
            yield
        finally:
            svc.close()

    app = FastAPI(
        title="retouch",
        version=__version__,
        description="Self-hosted image editing with the Claid.ai API contract. Every success body is "
        '`{"data": ...}`; every error is `{error_code, error_type, error_message, error_details}` (the 429 nests it '
        "under `detail`), and every answer carries `x-request-id`. Routes under `/v1-beta1` are the same as under "
        "`/v1`. Authenticate with `Authorization: Bearer <key>` (`retouch keys create`).",
        lifespan=lifespan,
        docs_url=None,  # served offline by install_docs, not from a CDN
        redoc_url=None,
        # operationId = the route function's name (edit, get_batch, ...): what a generated client calls it.
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    if service is not None:
        app.state.service = service

    # Added first, so it runs inside RequestIdAndRateLimit: its 401 and 413 answers carry the usual headers.
    app.add_middleware(Gate, max_json_bytes=settings.max_json_bytes)
    routes = RouteTemplates()  # filled below, as the routes are included
    app.add_middleware(RequestIdAndRateLimit, limiter=limiter, routes=routes)
    if settings.cors_origins:
        # Outermost: a preflight from a listed origin is answered here, before the key check (browsers send
        # none with it), and every answer to a listed origin - errors included - carries its CORS headers.
        # Any other origin gets no CORS header at all, and its preflight a 400.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"],
            max_age=600,
        )

    @app.exception_handler(RetouchError)
    async def retouch_error(request: Request, exc: RetouchError) -> JSONResponse:
        if exc.status >= 500:
            log.error("request %s failed: %s", getattr(request.state, "request_id", "-"), exc.public_message)
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = []
        for error in exc.errors():
            loc = tuple(error.get("loc", ()))
            if loc[:1] == ("body",):
                loc = loc[1:]
            if error.get("type") == "json_invalid":
                return _error_response(_bad_json())
            errors.append({**error, "loc": loc})
        return _error_response(validation_failed(errors))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = RetouchError(str(exc.detail))
        error.status = exc.status_code
        error.code = str(exc.status_code * 10)
        return _error_response(error)

    for prefix in PREFIXES:
        for module in (edit, tasks, storages, webhook, tmp, account):
            app.include_router(module.router, prefix=prefix, include_in_schema=prefix == "/v1")
            routes.add(module.router.routes, prefix)
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    install_docs(app)
    install_console(app)
    install_openapi(app)
    routes.add([*health.router.routes, *metrics_route.router.routes])
    routes.add(route for route in app.routes if getattr(route, "path", None))  # the docs, openapi.json
    return app


def _operation_id(route: APIRoute) -> str:
    return route.name


def _bad_json() -> RetouchError:
    error = ValidationFailed("The request body is not valid JSON.")
    error.status = 400
    return error
