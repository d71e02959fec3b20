"""The one error tree of retouch.

Every error a user can see is a :class:`RetouchError`. Each carries the HTTP status, the contract's
``error_code`` and ``error_type``, and a public message that is safe to show (it never contains
credentials or internal paths). The API turns them into the contract's envelope in one place
(``retouch.api.app``); the CLI prints ``public_message``.

Catch by category: ``InputError`` (the request or the image is wrong: 4xx), ``StorageError``
(a storage or URL could not be read or written), ``AuthError``; anything else is a bug (500).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "ConflictError",
    "FetchError",
    "ImageError",
    "InputError",
    "LimitExceeded",
    "NotFound",
    "OperationUnavailable",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RetouchError",
    "ShuttingDown",
    "StorageError",
    "ValidationFailed",
]


class RetouchError(Exception):
    """Base of every error retouch reports to a user."""

    status: int = 500
    code: str = "5000"
    error_type: str = "general"

    def __init__(self, message: str, *, details: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.public_message = message
        self.details: dict[str, list[str]] = details or {}

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (worker -> API): rebuild with message, details and any
        # per-instance status/code overrides, whatever the subclass constructor takes.
        return (_rebuild, (type(self), self.public_message, self.details, dict(self.__dict__)))

    def envelope(self) -> dict[str, Any]:
        """The contract's error body for this error."""
        return {
            "error_code": self.code,
            "error_type": self.error_type,
            "error_message": self.public_message,
            "error_details": self.details,
        }


def _rebuild(cls: type[RetouchError], message: str, details: dict[str, list[str]], state: dict[str, Any]) -> Any:
    error = RetouchError.__new__(cls)
    RetouchError.__init__(error, message, details=details)
    error.__dict__.update(state)
    return error


class AuthError(RetouchError):
    """Missing or unknown API key (401, code 111)."""

    status = 401
    code = "111"
    error_type = "auth"

    def __init__(self, message: str = "Authorization is required.") -> None:
        super().__init__(message)


class PermissionDenied(RetouchError):
    """The key lacks the scope the route needs (403)."""

    status = 403
    code = "112"
    error_type = "auth"

    def __init__(self, message: str = "Not enough permissions.") -> None:
        super().__init__(message)


class RateLimited(RetouchError):
    """Per-key rate limit exceeded (429, code 2001; the body is nested under ``detail``)."""

    status = 429
    code = "2001"
    error_type = "general"

    def __init__(self, message: str = "Too Many Requests. Rate limit exceeded.") -> None:
        super().__init__(message)

    def envelope(self) -> dict[str, Any]:
        body = super().envelope()
        body.pop("error_details")
        return {"detail": body}


class PayloadTooLarge(RetouchError):
    """A request body over its limit (413), refused before the body is read whole."""

    status = 413
    code = "4130"
    error_type = "validation"


class NotFound(RetouchError):
    status = 404
    code = "4040"
    error_type = "general"


class ConflictError(RetouchError):
    status = 409
    code = "4090"
    error_type = "general"


class InputError(RetouchError):
    """The request cannot be served as given (a 4xx). Base for request and image problems."""

    status = 422
    code = "9000"
    error_type = "validation"


class ValidationFailed(InputError):
    """The JSON body does not match the contract (422, code 9000, per-field details)."""


class ImageError(InputError):
    """The input is not an image we can read: empty, truncated, corrupt, unsupported (422)."""

    code = "3001"
    error_type = "image"


class LimitExceeded(ImageError):
    """A configured limit (bytes, megapixels, output size) would be exceeded (422)."""

    code = "3002"


class OperationUnavailable(ImageError):
    """An operation of the contract that this installation cannot perform (422)."""

    code = "3003"


class StorageError(InputError):
    """A storage or URL input/output could not be read or written (400)."""

    status = 400
    code = "4001"
    error_type = "storage"


class FetchError(StorageError):
    """An http(s) input could not be fetched: refused by the SSRF guard, too large, timed out, 4xx/5xx."""

    code = "4002"
    error_type = "web"


class ShuttingDown(FetchError):
    """A download cut off because this process stops: not the input's fault. A sync request answers with it (the
    same envelope as any fetch error: try again); an async or batch item goes back to the store for the next
    worker instead of failing."""
