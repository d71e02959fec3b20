"""Storage connectors: /storage/storage-types and CRUD on /storage/storages (scope `storage`)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from retouch.api.deps import StorageScope, Svc
from retouch.api.openapi import STORAGE_EXAMPLES, STORAGE_UPDATE_EXAMPLES, errors
from retouch.contracts.envelopes import validate
from retouch.contracts.responses import Deleted
from retouch.contracts.storages import (
    STORAGE_TYPES,
    StorageFolderResponse,
    StorageIn,
    StorageListResponse,
    StorageResponse,
    StorageTypesResponse,
    StorageUpdate,
)

router = APIRouter(prefix="/storage", tags=["storage connectors"])


_NOT_FOUND = {404: '"Storage not found.": no storage with this id in this account.'}
_CONFLICT = {
    409: "A storage with this name exists already, or a `local` folder overlaps another account's.",
    400: "Or the storage cannot be used as given (4001), e.g. a local folder outside RETOUCH_LOCAL_STORAGE_ROOTS.",
}

#: PATCH reads its body as a dict and checks it itself (StorageUpdate): the document shows that model.
_UPDATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/StorageUpdate"},
                "examples": STORAGE_UPDATE_EXAMPLES,
            }
        },
    }
}


@router.get(
    "/storage-types",
    summary="The storage types this server supports",
    response_model=StorageTypesResponse,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 429, 500),
)
def storage_types(principal: StorageScope) -> dict[str, Any]:
    return {"data": list(STORAGE_TYPES)}


@router.get(
    "/storages",
    summary="The account's storages (secrets are never returned)",
    response_model=StorageListResponse,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 429, 500),
)
async def list_storages(principal: StorageScope, service: Svc) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.storages.list, principal.account_id)}


@router.post(
    "/storages",
    summary="Connect a storage",
    response_model=StorageResponse,
    response_model_exclude_unset=True,
    responses=errors(400, 401, 403, 409, 413, 422, 429, 500, notes=_CONFLICT),
)
async def create_storage(
    body: Annotated[StorageIn, Body(openapi_examples=STORAGE_EXAMPLES)], principal: StorageScope, service: Svc
) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.storages.create, principal.account_id, body)}


@router.get(
    "/storages/{storage_id}",
    summary="One storage",
    response_model=StorageResponse,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 404, 422, 429, 500, notes=_NOT_FOUND),
)
async def get_storage(storage_id: int, principal: StorageScope, service: Svc) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.storages.get, principal.account_id, storage_id)}


@router.patch(
    "/storages/{storage_id}",
    summary="Change a storage (any subset of name, type, parameters)",
    response_model=StorageResponse,
    response_model_exclude_unset=True,
    responses=errors(400, 401, 403, 404, 409, 413, 422, 429, 500, notes=_NOT_FOUND | _CONFLICT),
    openapi_extra=_UPDATE_BODY,
)
async def update_storage(
    storage_id: int, principal: StorageScope, service: Svc, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    patch: StorageUpdate = validate(StorageUpdate, body)
    fields = patch.model_dump(exclude_unset=True)
    return {"data": await asyncio.to_thread(service.storages.update, principal.account_id, storage_id, fields)}


@router.delete(
    "/storages/{storage_id}",
    summary="Disconnect a storage (the bucket or folder is not touched)",
    response_model=Deleted,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 404, 422, 429, 500, notes=_NOT_FOUND),
)
async def delete_storage(storage_id: int, principal: StorageScope, service: Svc) -> dict[str, Any]:
    await asyncio.to_thread(service.storages.delete, principal.account_id, storage_id)
    return {"data": None}


@router.get(
    "/storages/{storage_id}/objects",
    summary="Extension: browse one level of a storage folder (image files and sub-folders)",
    response_model=StorageFolderResponse,
    response_model_exclude_unset=True,
    responses=errors(
        400,
        401,
        403,
        404,
        422,
        429,
        500,
        notes=_NOT_FOUND | {400: "Or the storage cannot be read (4001): its message says why."},
    ),
)
async def list_objects(
    storage_id: int,
    principal: StorageScope,
    service: Svc,
    path: Annotated[str, Query(max_length=1024, description='A folder relative to the storage; "" = its root.')] = "",
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many files.")] = 100,
) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.storages.browse, principal.account_id, storage_id, path, limit)}
