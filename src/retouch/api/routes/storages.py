"""Storage connectors: /storage/storage-types and CRUD on /storage/storages (scope `storage`)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from retouch.api.deps import get_service, require
from retouch.contracts.envelopes import validate
from retouch.contracts.storages import STORAGE_TYPES, StorageIn, StorageUpdate
from retouch.service import Service
from retouch.stores.accounts import Principal

router = APIRouter(prefix="/storage", tags=["storage connectors"])

StorageScope = Annotated[Principal, Depends(require("storage"))]
Svc = Annotated[Service, Depends(get_service)]


@router.get("/storage-types", summary="The storage types this server supports")
def storage_types(principal: StorageScope) -> dict[str, Any]:
    return {"data": list(STORAGE_TYPES)}


@router.get("/storages", summary="The account's storages (secrets are never returned)")
async def list_storages(principal: StorageScope, service: Svc) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.storages.list, principal.account_id)}


@router.post("/storages", summary="Connect a storage")
async def create_storage(body: StorageIn, principal: StorageScope, service: Svc) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.storages.create, principal.account_id, body)}


@router.get("/storages/{storage_id}", summary="One storage")
async def get_storage(storage_id: int, principal: StorageScope, service: Svc) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.storages.get, principal.account_id, storage_id)}


@router.patch("/storages/{storage_id}", summary="Change a storage (any subset of name, type, parameters)")
async def update_storage(
    storage_id: int, principal: StorageScope, service: Svc, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    patch: StorageUpdate = validate(StorageUpdate, body)
    fields = patch.model_dump(exclude_unset=True)
    return {"data": await asyncio.to_thread(service.storages.update, principal.account_id, storage_id, fields)}


@router.delete("/storages/{storage_id}", summary="Disconnect a storage (the bucket or folder is not touched)")
async def delete_storage(storage_id: int, principal: StorageScope, service: Svc) -> dict[str, Any]:
    await asyncio.to_thread(service.storages.delete, principal.account_id, storage_id)
    return {"data": None}
