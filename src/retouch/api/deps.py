"""Request dependencies: the service, and the caller's identity with a required scope."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from retouch.accounts import Principal
from retouch.errors import AuthError, PermissionDenied
from retouch.service import Service

__all__ = ["get_service", "require"]

_bearer = HTTPBearer(auto_error=False, description="An API key made by `retouch keys create`.")


async def get_service(request: Request) -> Service:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request for a lookup.
    service: Service = request.app.state.service
    return service


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        service: Annotated[Service, Depends(get_service)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or not credentials.credentials:
            raise AuthError()
        # A known key is answered from the key cache on the event loop; only a miss touches the database,
        # in a thread so the loop never waits on it.
        known, principal = service.keys.cached(credentials.credentials)
        if not known:
            principal = await asyncio.to_thread(service.keys.authenticate, credentials.credentials)
        if principal is None:
            raise AuthError()
        if scope not in principal.scopes:
            raise PermissionDenied()
        return principal

    return dependency
