"""What the OpenAPI document says beyond the routes' own models: the error answers each route can give,
request examples, and the clean-up of FastAPI's defaults (its 422 ``HTTPValidationError`` is not our body)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from retouch.contracts.envelopes import ErrorEnvelope, RateLimitEnvelope
from retouch.contracts.storages import StorageUpdate

__all__ = [
    "BATCH_EXAMPLES",
    "EDIT_EXAMPLES",
    "STORAGE_EXAMPLES",
    "STORAGE_UPDATE_EXAMPLES",
    "UPLOAD_DATA_EXAMPLE",
    "WEBHOOK_EXAMPLES",
    "errors",
    "install_openapi",
]

#: What each error status means on any route; a route may say more (``errors(..., notes={404: ...})``).
_MEANING: dict[int, str] = {
    400: "The body is not valid JSON (9000), or a storage or URL cannot be used: unknown storage, missing "
    "object, wrong credentials, read-only (4001), a URL that cannot be fetched (4002).",
    401: "Missing or unknown API key (111).",
    403: "The key lacks the scope this route needs (112).",
    404: "Not found (4040).",
    409: "Conflict (4090).",
    413: "The JSON body is over RETOUCH_MAX_JSON_BYTES (4130); refused before it is read.",
    422: "The request does not match the contract (9000; `error_details` maps each dotted field to its messages).",
    429: "Rate limit exceeded (2001). The body nests the error under `detail`; wait Retry-After seconds.",
    500: "A bug or a crashed image worker (5000); quote the response's x-request-id to the operator.",
}

_RATE_LIMIT_HEADERS = {
    "Retry-After": {"description": "Seconds until the window resets.", "schema": {"type": "integer"}},
    "RateLimit-Limit": {
        "description": "The limit and the policy, e.g. `120, 120;w=60, 3;w=1`.",
        "schema": {"type": "string"},
    },
    "RateLimit-Remaining": {"description": "Requests left in the window (-1: over).", "schema": {"type": "integer"}},
    "RateLimit-Reset": {"description": "Seconds until the window resets.", "schema": {"type": "integer"}},
}


def errors(*statuses: int, notes: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with the error envelope as its body (the 429's own shape for
    429). ``notes`` adds what a status means on this route to the general meaning."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        text = _MEANING[status]
        extra = (notes or {}).get(status)
        if extra:
            text = f"{text} {extra}"
        if status == 429:
            out[status] = {"model": RateLimitEnvelope, "description": text, "headers": _RATE_LIMIT_HEADERS}
        else:
            out[status] = {"model": ErrorEnvelope, "description": text}
        if status == 401:
            out[status]["headers"] = {
                "WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}},
            }
    return out


# ------------------------------------------------------------------------------------------ request examples
# Each one is sent to a running server by tests/api/test_openapi.py (hosts and storages swapped for local ones).

_PHOTO = "https://images.example.com/photo.jpg"

EDIT_EXAMPLES: dict[str, dict[str, Any]] = {
    "url-to-webp": {
        "summary": "A photo from a URL on a white 1000x1000 canvas, as WebP",
        "value": {
            "input": _PHOTO,
            "operations": {
                "resizing": {"width": 1000, "height": 1000, "fit": "canvas"},
                "adjustments": {"exposure": 10, "sharpness": 20},
                "background": {"color": "#ffffff"},
                "padding": "5%",
            },
            "output": {"format": {"type": "webp", "compression": {"type": "lossy", "quality": 80}}},
        },
    },
    "storage-to-storage": {
        "summary": "From a connected storage to a folder of it, half the size",
        "value": {
            "input": "storage://shop/catalog/shoe.jpg",
            "operations": {"resizing": {"width": "50%"}},
            "output": {"destination": "storage://shop/web/", "format": "jpeg"},
        },
    },
}

BATCH_EXAMPLES: dict[str, dict[str, Any]] = {
    "folder": {
        "summary": "A folder and its sub-folders, written to another folder as WebP",
        "value": {
            "input": {"source": "storage://shop/catalog/", "recursive": True},
            "operations": {
                "resizing": {"width": 1000, "height": 1000, "fit": "canvas"},
                "background": {"color": "#ffffff"},
            },
            "output": {"destination": "storage://shop/web/", "format": "webp"},
        },
    },
    "list": {
        "summary": "A list of files and URLs; each result gets a tmp_url",
        "value": {
            "input": ["storage://shop/catalog/shoe.jpg", _PHOTO],
            "operations": {"resizing": {"width": 800}},
        },
    },
}

STORAGE_EXAMPLES: dict[str, dict[str, Any]] = {
    "s3": {
        "summary": "An S3 bucket (or MinIO, R2, Ceph with endpoint_url)",
        "value": {
            "name": "shop",
            "type": "s3",
            "parameters": {
                "bucket": "my-bucket",
                "path": "catalog",
                "credentials": {"access_key": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "wJalrXUtnFEMI/EXAMPLE"},
            },
        },
    },
    "local": {
        "summary": "A folder of this server, under RETOUCH_LOCAL_STORAGE_ROOTS",
        "value": {"name": "photos", "type": "local", "parameters": {"path": "/srv/retouch/storage/photos"}},
    },
    "web_folder": {
        "summary": "A read-only folder on a web server",
        "value": {"name": "origin", "type": "web_folder", "parameters": {"base_url": "https://images.example.com/"}},
    },
}

STORAGE_UPDATE_EXAMPLES: dict[str, dict[str, Any]] = {
    "rename": {"summary": "A new name", "value": {"name": "shop-eu"}},
    "rotate-keys": {
        "summary": "New access keys (the other parameters stay)",
        "value": {
            "parameters": {
                "credentials": {"access_key": "AKIAI44QH8DHBEXAMPLE", "secret_access_key": "je7MtGbClwBF/EXAMPLE"}
            }
        },
    },
}

WEBHOOK_EXAMPLES: dict[str, dict[str, Any]] = {
    "signed": {
        "summary": "Signed deliveries of both outcomes",
        "value": {
            "url": "https://hooks.example.com/retouch",
            "secret": "a-long-random-secret",
            "events": ["success", "failed"],
        },
    },
}

#: The `data` part of an upload.
UPLOAD_DATA_EXAMPLE = '{"operations": {"resizing": {"width": 800}}, "output": {"format": "png"}}'


# ---------------------------------------------------------------------------------------------- the document

_FASTAPI_422 = ("HTTPValidationError", "ValidationError")
#: Models that a route's ``openapi_extra`` names by ``$ref`` (FastAPI only adds the models it sees itself).
REFERENCED: tuple[type[BaseModel], ...] = (StorageUpdate,)


def _replace_refs(node: Any, old: str, new: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and value == old:
                node[key] = new
            else:
                _replace_refs(value, old, new)
    elif isinstance(node, list):
        for value in node:
            _replace_refs(value, old, new)


def install_openapi(app: FastAPI) -> None:
    """Let FastAPI build the document (once, as it does), then finish it: add the models only ``openapi_extra``
    names, and make FastAPI's own error bodies ours (a 422 it added by itself, for a route without
    ``errors(422)``, names the envelope, and ``HTTPValidationError`` goes)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _finish(build())
        return build()  # the cached document

    setattr(app, "openapi", openapi)  # noqa: B010 (mypy: a method cannot be assigned to)


def _finish(document: dict[str, Any]) -> None:
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    _, referenced = models_json_schema(
        [(model, "validation") for model in REFERENCED], ref_template="#/components/schemas/{model}"
    )
    for name, schema in referenced.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    if "HTTPValidationError" in schemas:
        if "ErrorEnvelope" not in schemas:
            schemas["ErrorEnvelope"] = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
        _replace_refs(document, "#/components/schemas/HTTPValidationError", "#/components/schemas/ErrorEnvelope")
        for operation in _operations(document):
            answers = operation.get("responses", {})
            if answers.get("422", {}).get("description") != "Validation Error":
                continue  # ours, not FastAPI's
            if _cannot_fail(operation):
                del answers["422"]
            else:
                answers["422"]["description"] = _MEANING[422]
    for name in _FASTAPI_422:
        schemas.pop(name, None)


def _cannot_fail(operation: dict[str, Any]) -> bool:
    """No body, and only plain string parameters (``/tmp/{token}/{name}``): nothing for a 422 to be about."""
    params = operation.get("parameters", [])
    plain = all(set(p.get("schema", {})) <= {"type", "title"} and p["schema"].get("type") == "string" for p in params)
    return "requestBody" not in operation and plain


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    methods = ("get", "put", "post", "delete", "patch", "head", "options")
    return [op for item in document.get("paths", {}).values() for method, op in item.items() if method in methods]
