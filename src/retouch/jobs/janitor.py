"""Scheduled clean-up: expired tmp results and old finished tasks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from retouch.errors import RetouchError
from retouch.settings import Settings
from retouch.stores.tables import utcnow
from retouch.stores.tasks import TaskStore
from retouch.tmpstore import SharedTmpStore, TmpStore

__all__ = ["Janitor"]

log = logging.getLogger("retouch.janitor")


class Janitor:
    """``tmp`` is a callable: a shared tmp store is opened on first use (its storage may not exist at start)."""

    def __init__(self, settings: Settings, tmp: Callable[[], TmpStore | SharedTmpStore], tasks: TaskStore) -> None:
        self.settings, self.tmp, self.tasks = settings, tmp, tasks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retouch-janitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def run_once(self) -> tuple[int, int]:
        settings = self.settings
        try:
            removed_files = self.tmp().cleanup()
        except RetouchError as exc:  # e.g. RETOUCH_TMP_STORAGE names a storage not created yet
            log.debug("tmp clean-up skipped: %s", exc.public_message)
            removed_files = 0
        cutoff = utcnow() - timedelta(days=settings.task_retention_days)
        removed_tasks = self.tasks.delete_finished_before(cutoff)
        if removed_files or removed_tasks:
            log.info("clean-up: %d expired results, %d old tasks removed", removed_files, removed_tasks)
        return removed_files, removed_tasks

    def _loop(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception:
                log.exception("clean-up failed; will try again")
            if self._stop.wait(self.settings.janitor_interval_seconds):
                return
