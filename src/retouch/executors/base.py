"""The executor interface: how items reach workers. Local process pool today, Celery for scale-out."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Executor"]


class Executor(Protocol):
    def notify(self) -> None:
        """New items are in the store: pick them up soon."""

    def cancel(self, task_id: int) -> None:
        """The task was cancelled in the store; stop what has not started (running items finish)."""

    def shutdown(self) -> None: ...
