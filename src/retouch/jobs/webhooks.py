"""Webhook delivery (an extension; the settings per account are in ``stores/webhooks.py``).

Delivery runs in the API process from the task store, not from the worker that finished the task:
a terminal task is marked `pending` once (a conditional update in the store), a sender claims it
with a lease, POSTs the task's GET body signed with HMAC-SHA256, and retries with exponential
backoff. Two senders (two API replicas) cannot claim the same delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from retouch import metrics
from retouch.errors import RetouchError
from retouch.net import FetchPolicy, check_url
from retouch.settings import Settings
from retouch.stores.tables import Task, rfc3339, utcnow
from retouch.stores.tasks import TaskStore, rowcount
from retouch.stores.webhooks import WebhookStore

__all__ = ["WebhookSender", "send_test", "sign"]

log = logging.getLogger("retouch.webhooks")
SIGNATURE_HEADER = "X-Claid-Hmac-SHA256"


def sign(secret: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of the raw body (no prefix)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _signed_post(
    client: httpx.Client, policy: FetchPolicy, url: str, secret: str | None, body: bytes, timeout: float
) -> httpx.Response:
    """POST ``body`` to the webhook, signed when it has a secret, after the SSRF guard's check of the address (the
    guard's refusal is a RetouchError; transport failures are httpx errors: each caller words them its own way)."""
    headers = {"Content-Type": "application/json", "User-Agent": "retouch-webhooks"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    check_url(url, policy)
    return client.post(url, content=body, headers=headers, timeout=timeout)


def send_test(
    hooks: WebhookStore, client: httpx.Client, policy: FetchPolicy, account_id: int, timeout: float
) -> dict[str, Any] | None:
    """Send one signed test event to the account's webhook now, once (``POST /v1/webhook/test``): the body is
    ``{"data": {"event": "test", "created_at": ...}}``, signed like a task's. None when no webhook is set."""
    target = hooks.target(account_id)
    if target is None:
        return None
    url, secret = target
    body = json.dumps({"data": {"event": "test", "created_at": rfc3339(utcnow())}}, separators=(",", ":")).encode()
    began = time.perf_counter()
    status: int | str
    try:
        status = _signed_post(client, policy, url, secret, body, timeout).status_code
    except RetouchError as exc:  # the SSRF guard refused the address
        status = exc.public_message[:100]
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return {
        "url": url,
        "delivered": isinstance(status, int) and 200 <= status < 300,
        "status": status,
        "signed": secret is not None,
        "ms": round((time.perf_counter() - began) * 1000, 1),
    }


class WebhookSender:
    def __init__(
        self,
        tasks: TaskStore,
        hooks: WebhookStore,
        client: httpx.Client,
        result_url: Callable[[str, int], str],
        settings: Settings,
        policy: FetchPolicy,
    ) -> None:
        self.policy = policy
        self.tasks = tasks
        self.hooks = hooks
        self.client = client
        self.result_url = result_url
        self.max_attempts = settings.webhook_max_attempts
        self.backoff = settings.webhook_backoff_seconds
        self.timeout = settings.webhook_timeout_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retouch-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            try:
                while (task_id := self._claim()) is not None and not self._stop.is_set():
                    self._deliver(task_id)
            except Exception:
                log.exception("webhook delivery loop failed; retrying")

    def _claim(self) -> int | None:
        now = utcnow()
        lease = now + timedelta(seconds=self.timeout * 3 + 30)
        with Session(self.tasks.engine) as session, session.begin():
            due = session.scalar(
                select(Task.id)
                .where(
                    or_(Task.webhook_state == "pending", Task.webhook_state == "sending"),
                    Task.webhook_next_at <= now,
                )
                .order_by(Task.webhook_next_at)
                .limit(1)
            )
            if due is None:
                return None
            # Conditional update: of two senders racing for this row, one moves it, the other gets 0.
            moved = rowcount(
                session.execute(
                    update(Task)
                    .where(Task.id == due, Task.webhook_next_at <= now, Task.webhook_state.in_(("pending", "sending")))
                    .values(webhook_state="sending", webhook_next_at=lease)
                )
            )
            return due if moved else None

    def _deliver(self, task_id: int) -> None:
        with Session(self.tasks.engine, expire_on_commit=False) as session:
            task = session.get(Task, task_id)
            assert task is not None
        target = self.hooks.target(task.account_id)
        if target is None:  # the webhook was removed meanwhile
            self._record(task_id, "failed", task.webhook_attempts, "webhook removed")
            metrics.webhook_delivery("failed")
            return
        url, secret = target
        view = self.tasks.view(task, self.result_url(task.kind, task.id))
        view.pop("webhook", None)
        body = json.dumps({"data": view}, separators=(",", ":")).encode()
        attempts = task.webhook_attempts + 1
        try:
            response = _signed_post(self.client, self.policy, url, secret, body, self.timeout)
            status = str(response.status_code)
            ok = 200 <= response.status_code < 300
            permanent = False
        except RetouchError as exc:  # refused by the SSRF guard: retrying cannot help
            status, ok, permanent = exc.public_message[:100], False, True
        except httpx.TimeoutException as exc:
            status, ok, permanent = f"no response within {self.timeout:g} s ({type(exc).__name__})", False, False
        except httpx.HTTPError as exc:
            # A message a person can act on, not only the exception's name (which is kept for the curious).
            what = "the connection failed" if isinstance(exc, httpx.ConnectError) else "the answer could not be read"
            status, ok, permanent = f"no response: {what} ({type(exc).__name__})", False, False
        if ok:
            self._record(task_id, "delivered", attempts, status)
            metrics.webhook_delivery("delivered")
        elif permanent or attempts >= self.max_attempts:
            self._record(task_id, "failed", attempts, status)
            metrics.webhook_delivery("failed")
        else:
            delay = self.backoff * 2 ** (attempts - 1)
            self._record(task_id, "pending", attempts, status, utcnow() + timedelta(seconds=delay))
            metrics.webhook_delivery("retry")

    def _record(self, task_id: int, state: str, attempts: int, status: str, next_at: Any = None) -> None:
        with Session(self.tasks.engine) as session, session.begin():
            session.execute(
                update(Task)
                .where(Task.id == task_id)
                .values(
                    webhook_state=state, webhook_attempts=attempts, webhook_last_status=status, webhook_next_at=next_at
                )
            )
