"""Webhook settings per account (an extension: configured through the API); the secret is stored sealed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from retouch.contracts.tasks import WebhookSettings
from retouch.storage.secrets import SecretBox
from retouch.stores.tables import WebhookRow

__all__ = ["WebhookStore"]


class WebhookStore:
    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self._engine = engine
        self._box = box

    def get(self, account_id: int) -> dict[str, Any] | None:
        with Session(self._engine) as session:
            row = session.get(WebhookRow, account_id)
            if row is None:
                return None
            # The secret is write-only: say whether one is set, never what it is.
            return {"url": row.url, "events": list(row.events), "secret_set": row.sealed_secret is not None}

    def put(self, account_id: int, settings: WebhookSettings) -> dict[str, Any]:
        with Session(self._engine) as session, session.begin():
            row = session.get(WebhookRow, account_id)
            sealed = self._box.seal({"secret": settings.secret}) if settings.secret else None
            if row is None:
                session.add(
                    WebhookRow(
                        account_id=account_id, url=settings.url, sealed_secret=sealed, events=list(settings.events)
                    )
                )
            else:
                row.url, row.events, row.sealed_secret = settings.url, list(settings.events), sealed
        result = self.get(account_id)
        assert result is not None
        return result

    def delete(self, account_id: int) -> None:
        with Session(self._engine) as session, session.begin():
            row = session.get(WebhookRow, account_id)
            if row is not None:
                session.delete(row)

    def target(self, account_id: int) -> tuple[str, str | None] | None:
        with Session(self._engine) as session:
            row = session.get(WebhookRow, account_id)
            if row is None:
                return None
            return row.url, self._box.open(row.sealed_secret).get("secret") if row.sealed_secret else None
