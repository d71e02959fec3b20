"""Extension: webhook settings through the API (Claid has a dashboard page for them)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from retouch.api.deps import get_service, require
from retouch.contracts.tasks import WebhookSettings
from retouch.errors import NotFound
from retouch.net import check_url
from retouch.service import Service
from retouch.stores.accounts import Principal

router = APIRouter(tags=["webhooks"])

ImageEditing = Annotated[Principal, Depends(require("image_editing"))]
Svc = Annotated[Service, Depends(get_service)]


@router.get("/webhook", summary="The account's webhook (the secret is never returned)")
async def get_webhook(principal: ImageEditing, service: Svc) -> dict[str, Any]:
    hook = await asyncio.to_thread(service.webhooks.get, principal.account_id)
    if hook is None:
        raise NotFound("No webhook is configured.")
    return {"data": hook}


@router.put("/webhook", summary="Set the webhook: url, secret, events (success, failed)")
async def put_webhook(body: WebhookSettings, principal: ImageEditing, service: Svc) -> dict[str, Any]:
    check_url(body.url, service.fetch_policy)  # a literal private address is refused now, not at delivery
    return {"data": await asyncio.to_thread(service.webhooks.put, principal.account_id, body)}


@router.delete("/webhook", summary="Remove the webhook")
async def delete_webhook(principal: ImageEditing, service: Svc) -> dict[str, Any]:
    await asyncio.to_thread(service.webhooks.delete, principal.account_id)
    return {"data": None}
