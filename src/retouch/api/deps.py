"""Request dependencies: the service, and the caller's identity with a required scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from retouch.errors import AuthError, PermissionDenied
from retouch.service import Service
from retouch.stores.accounts import Principal

__all__ = ["ImageEditing", "StorageScope", "Svc", "get_service", "require"]

_bearer = HTTPBearer(auto_error=False, description="An API key made by `retouch keys create`.")


async def get_service(request: Request) -> Service:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request for a lookup.
    service: Service = request.app.state.service
    return service


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        # The gate (api/gate.py) authenticated the key before the body was read; here only its scope is checked.
        # ``credentials`` stays a parameter so the OpenAPI document shows the bearer scheme on every route.
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None or credentials is None:
            raise AuthError()
        if scope not in principal.scopes:
            raise PermissionDenied()
        return principal

    return dependency


# The parameters every route declares: the caller with the route's scope, and the service.
ImageEditing = Annotated[Principal, Depends(require("image_editing"))]
StorageScope = Annotated[Principal, Depends(require("storage"))]
Svc = Annotated[Service, Depends(get_service)]
