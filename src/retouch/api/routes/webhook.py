"""Extension: webhook settings through the API (Claid has a dashboard page for them)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body

from retouch.api.deps import ImageEditing, Svc
from retouch.api.openapi import WEBHOOK_EXAMPLES, errors
from retouch.contracts.responses import Deleted
from retouch.contracts.tasks import WebhookResponse, WebhookSettings, WebhookTestResponse
from retouch.errors import NotFound, RetouchError
from retouch.net import check_url

router = APIRouter(tags=["webhooks"])


@router.get(
    "/webhook",
    summary="The account's webhook (the secret is never returned)",
    response_model=WebhookResponse,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 404, 429, 500, notes={404: '"No webhook is configured."'}),
)
async def get_webhook(principal: ImageEditing, service: Svc) -> dict[str, Any]:
    hook = await asyncio.to_thread(service.webhooks.get, principal.account_id)
    if hook is None:
        raise NotFound("No webhook is configured.")
    return {"data": hook}


@router.put(
    "/webhook",
    summary="Set the webhook: url, secret, events (success, failed)",
    response_model=WebhookResponse,
    response_model_exclude_unset=True,
    responses=errors(
        400, 401, 403, 413, 422, 429, 500, notes={400: "Here: a URL the SSRF guard refuses, e.g. a private address."}
    ),
)
async def put_webhook(
    body: Annotated[WebhookSettings, Body(openapi_examples=WEBHOOK_EXAMPLES)], principal: ImageEditing, service: Svc
) -> dict[str, Any]:
    try:
        check_url(body.url, service.fetch_policy)  # a literal private address is refused now, not at delivery
    except RetouchError as exc:
        exc.details = {"url": [exc.public_message]}  # the field at fault, like every error about the body
        raise
    return {"data": await asyncio.to_thread(service.webhooks.put, principal.account_id, body)}


@router.delete(
    "/webhook",
    summary="Remove the webhook",
    response_model=Deleted,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 429, 500),
)
async def delete_webhook(principal: ImageEditing, service: Svc) -> dict[str, Any]:
    await asyncio.to_thread(service.webhooks.delete, principal.account_id)
    return {"data": None}


@router.post(
    "/webhook/test",
    summary="Extension: send one signed test event to the webhook now and report the receiver's answer",
    response_model=WebhookTestResponse,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 404, 429, 500, notes={404: '"No webhook is configured."'}),
)
async def test_webhook(principal: ImageEditing, service: Svc) -> dict[str, Any]:
    return {"data": await asyncio.to_thread(service.test_webhook, principal.account_id)}
