"""Logs an operator can use: one line per event, as text or as JSON (``RETOUCH_LOG_FORMAT``), each carrying the
request id, the account name and the task and item ids where they are known - in the API process and in the image
workers alike, so one request id finds every line a request caused. API keys never appear (the account's name
does); storage and webhook errors name their target, never a credential.

The ids travel in context variables: the API's middleware sets the request id and the gate the account; a worker
sets the ones of the job it runs (``Job.request_id``, ``run_item``'s task and item).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

__all__ = ["bind", "configure_logging", "context"]

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("retouch_request_id", default=None)
_account: contextvars.ContextVar[str | None] = contextvars.ContextVar("retouch_account", default=None)
_task_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("retouch_task_id", default=None)
_item_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("retouch_item_id", default=None)
_VARS: dict[str, contextvars.ContextVar[Any]] = {
    "request_id": _request_id,
    "account": _account,
    "task_id": _task_id,
    "item_id": _item_id,
}


def context() -> dict[str, Any]:
    """The ids known here and now (None left out)."""
    return {name: value for name, var in _VARS.items() if (value := var.get()) is not None}


@contextmanager
def bind(**ids: Any) -> Iterator[None]:
    """Set some of request_id, account, task_id, item_id for the lines logged inside the block."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in ids.items() if value is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def set_ids(**ids: Any) -> None:
    """Set ids for the rest of the current context (an ASGI request's task)."""
    for name, value in ids.items():
        _VARS[name].set(value)


class _WithIds(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in context().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def _time(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids, and any ``extra=`` fields given."""

    _SKIP = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._SKIP and not key.startswith("_"):
                line[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger [request_id account task/item] message``."""

    def format(self, record: logging.LogRecord) -> str:
        ids = [str(getattr(record, name)) for name in ("request_id", "account") if getattr(record, name, None)]
        task, item = getattr(record, "task_id", None), getattr(record, "item_id", None)
        if task is not None:
            ids.append(f"task {task}" + (f"/item {item}" if item is not None else ""))
        where = f" [{' '.join(ids)}]" if ids else ""
        line = f"{_time(record)} {record.levelname} {record.name}{where} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(log_format: str = "text", level: str = "INFO") -> None:
    """Route retouch's, uvicorn's and Celery's loggers through one stderr handler in the chosen format. Called
    once per process (``serve``, ``worker``, each image worker); calling it again replaces the handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_WithIds())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_retouch", False)]:
        root.removeHandler(old)
    handler._retouch = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("retouch").setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "celery"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(level.upper())
    # retouch writes its own access line (with the account); uvicorn's would repeat it without.
    logging.getLogger("uvicorn.access").disabled = True
