"""Every table of retouch, in one place: accounts and their API keys, storages, tasks (async and batch) and
their items, per-account webhooks. Schema changes go through a migration (``retouch/migrations``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Account",
    "ApiKey",
    "Base",
    "Item",
    "ItemStatus",
    "StorageRow",
    "Task",
    "TaskStatus",
    "WebhookRow",
    "rfc3339",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime) -> str:
    """The one format of every time in an answer: RFC 3339 in UTC with milliseconds and ``Z``
    (``2026-12-04T09:41:07.123Z``). SQLite gives times back without their zone; every stored time is UTC."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    #: SHA-256 of the key: keys are 256-bit random, so a fast hash is as safe as a slow one here.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: First characters, to tell keys apart in listings without storing them.
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Updated at most once a minute (a write per request would cost more than the request's auth).
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class StorageRow(Base):
    """A storage connector of an account. ``parameters`` holds no secret; ``sealed`` is encrypted."""

    __tablename__ = "storages"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    type: Mapped[str] = mapped_column(String(20))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class TaskStatus:
    ACCEPTED = "ACCEPTED"
    PROCESSING = "PROCESSING"
    DONE = "DONE"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    TERMINAL = frozenset({DONE, ERROR, CANCELLED})


class ItemStatus:
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # async | batch
    status: Mapped[str] = mapped_column(String(12), default=TaskStatus.ACCEPTED, index=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The X-Request-ID of the request that created the task: the workers' log lines for its items carry it.
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: Task-level failure (the batch could not start: missing or empty folder, unreadable storage).
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    #: Folder listing finished: `total` is final. Until then the task shows growing totals.
    listed: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Who is listing and until when (a lease: a crashed lister's work is picked up again).
    listing_lease: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: Webhook delivery of the terminal state: None (none due), pending, delivered, failed.
    webhook_state: Mapped[str | None] = mapped_column(String(12), nullable=True, index=True)
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)
    webhook_last_status: Mapped[str | None] = mapped_column(String(100), nullable=True)
    webhook_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        # Listing a folder again after a crash inserts nothing twice.
        UniqueConstraint("task_id", "source"),
        # Two inputs never write the same output of one batch (a.jpg and a.png -> a.jpg, a-2.jpg).
        UniqueConstraint("task_id", "output_rel"),
        Index("ix_items_task_status", "task_id", "status", "seq"),  # claim: next pending of a task, in order
        Index("ix_items_status_lease", "status", "lease_until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # listing order: results come back in it
    source: Mapped[str] = mapped_column(String(4096))  # URL or storage:// URI of the input
    output_rel: Mapped[str] = mapped_column(String(4096))  # output path relative to the destination folder
    status: Mapped[str] = mapped_column(String(12), default=ItemStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: When a worker began it; with an unexpired lease it tells a redelivered copy to stand down.
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: Celery queue: "fast" for classical work, "ai" for model work (a batch of upscales never starves resizes).
    queue: Mapped[str] = mapped_column(String(10), default="fast")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_input: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookRow(Base):
    __tablename__ = "webhooks"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(String(4096))
    sealed_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    events: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
