"""The gate: what is decided before a request's body is read.

1. A route that needs a key is answered 401 at once when the key is missing or unknown: a stranger's
   body is never read (a 500 MB body without a key used to take the API process to 1.2 GB first).
2. A JSON body over ``RETOUCH_MAX_JSON_BYTES`` is answered 413 from its Content-Length, or, when it is
   streamed without one, as soon as the count passes the limit. Uploads are exempt here: their route
   streams the file part to disk and stops at ``RETOUCH_MAX_INPUT_BYTES`` itself.

The principal found here is left in ``scope["state"]`` so the route's scope check needs no second look-up.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retouch import logs
from retouch.errors import AuthError, PayloadTooLarge, RetouchError
from retouch.stores.accounts import Principal

__all__ = ["Gate", "bearer_key"]

#: Paths that take no key (the tmp results are anonymous by design: their URL is the secret).
_OPEN = ("/healthz", "/readyz", "/docs", "/redoc", "/openapi.json", "/metrics", "/v1/tmp/", "/v1-beta1/tmp/")
_KEYED = ("/v1/", "/v1-beta1/")
_UPLOAD_SUFFIX = "/image/edit/upload"
_BODY_METHODS = {"POST", "PUT", "PATCH"}


def bearer_key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            auth: str = value.decode("latin-1")
            if auth[:7].lower() == "bearer " and auth[7:].strip():
                return auth[7:].strip()
            return None
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Gate:
    def __init__(self, app: ASGIApp, max_json_bytes: int) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(_KEYED) and not path.startswith(_OPEN):
            try:
                principal = await self._authenticate(scope)
                scope.setdefault("state", {})["principal"] = principal
                logs.set_ids(account=principal.account_name)  # the request's lines name the account, not the key
            except RetouchError as exc:
                await _refuse(exc, scope, receive, send)
                return
        if scope["method"] not in _BODY_METHODS or path.endswith(_UPLOAD_SUFFIX):
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_json_bytes:
            await _refuse(self._too_large(length), scope, receive, send)
            return
        await self._counted(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> Principal:
        key = bearer_key(scope)
        if key is None:
            raise AuthError()
        keys = scope["app"].state.service.keys
        # A known key is answered from the key cache on the event loop; a miss goes to the database in a thread.
        known, principal = keys.cached(key)
        if not known:
            principal = await asyncio.to_thread(keys.authenticate, key)
        if principal is None:
            raise AuthError()
        result: Principal = principal
        return result

    def _too_large(self, length: int | None) -> PayloadTooLarge:
        seen = f"{length} bytes" if length is not None else "more"
        return PayloadTooLarge(
            f"The JSON body is {seen}, over the limit of {self.max_json_bytes} bytes (RETOUCH_MAX_JSON_BYTES). "
            "Images go in the `input` URL or through /v1/image/edit/upload, not in the JSON."
        )

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body without a trustworthy length: count it as it streams. Past the limit, answer 413
        ourselves and tell the app the client left, so nothing more is read and its answer is dropped."""
        seen = 0
        refused = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_json_bytes:
                    refused = True
                    if not response_started:
                        await _refuse(self._too_large(None), scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                return  # our 413 is the answer
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)


async def _refuse(error: RetouchError, scope: Scope, receive: Receive, send: Send) -> None:
    from fastapi.responses import JSONResponse

    response = JSONResponse(error.envelope(), status_code=error.status)
    if error.status == 401:
        response.headers["www-authenticate"] = "Bearer"
    await response(scope, receive, send)
