"""Request dependencies: the service, and the caller's identity with a required scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from retouch.accounts import Principal
from retouch.errors import AuthError, PermissionDenied
from retouch.service import Service

__all__ = ["get_service", "require"]

_bearer = HTTPBearer(auto_error=False, description="An API key made by `retouch keys create`.")


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def require(scope: str) -> Callable[..., Principal]:
    def dependency(
        service: Annotated[Service, Depends(get_service)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or not credentials.credentials:
            raise AuthError()
        principal = service.keys.authenticate(credentials.credentials)
        if principal is None:
            raise AuthError()
        if scope not in principal.scopes:
            raise PermissionDenied()
        return principal

    return dependency
