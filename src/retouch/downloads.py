"""Network inputs are downloaded before their image job takes a CPU worker.

A worker process is a core. Before, a job fetched its own input, so a URL whose origin never answers held
a core for the whole fetch timeout (30 s): two such requests of one account stalled a 2-worker server for
everyone, and another account's 15 ms edit waited 29 s. Here downloads run ahead of the pool (in the download
process, downloader.py; a thread here waits for each, costing no core) and only a job whose bytes are in hand
reaches the pool.

Downloads in flight are limited in total, per account and per origin host (a storage counts as a host).
A download over its account's or host's limit waits in line without holding a thread, and the line is
served in arrival order among those that may start, so one account's stuck origin delays only that
account's own inputs. The executor also stops claiming batch items of an account whose downloads are at
its limit (:meth:`Downloads.saturated`), so a batch of 100,000 dead URLs holds a few slots, not the queue.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from retouch.errors import RetouchError

__all__ = ["DownloadFailed", "Downloads", "Fetched"]

#: A download: the input (a handoff file, or its bytes) and its file name.
Read = Callable[[], tuple[Path | bytes, str]]


@dataclass(frozen=True)
class DownloadFailed:
    """Handed to the job in place of the input: the worker records it as the item's error."""

    message: str
    #: The error itself (it pickles whole), so the item fails with its own type: a byte limit stays a limit.
    error: RetouchError | None = None


#: What a job gets for its input: a handoff file, the bytes (no tmpfs), a failure, or None (read it yourself).
Fetched = Path | bytes | DownloadFailed | None


@dataclass
class _Download:
    account_id: int
    host: str
    read: Read
    future: Future[tuple[Path | bytes, str]] = field(default_factory=Future)


class Downloads:
    def __init__(self, total: int, per_account: int, per_host: int) -> None:
        self.total, self.per_account, self.per_host = max(1, total), max(1, per_account), max(1, per_host)
        self._threads = ThreadPoolExecutor(self.total, thread_name_prefix="retouch-download")
        self._lock = threading.Lock()
        self._waiting: deque[_Download] = deque()
        self._running = 0
        self._running_account: Counter[int] = Counter()
        self._running_host: Counter[str] = Counter()
        self._held: Counter[int] = Counter()  # waiting + running, per account

    def submit(self, account_id: int, host: str, read: Read) -> Future[tuple[Path | bytes, str]]:
        """Run ``read()`` (a download returning bytes and a file name) when the limits allow."""
        download = _Download(account_id, host, read)
        with self._lock:
            self._waiting.append(download)
            self._held[account_id] += 1
            self._start_what_may()
        return download.future

    def saturated(self) -> set[int]:
        """Accounts holding as many downloads (running or waiting) as they may run at once."""
        with self._lock:
            return {account for account, held in self._held.items() if held >= self.per_account}

    def held(self) -> int:
        """Downloads running or waiting, of every account."""
        with self._lock:
            return sum(self._held.values())

    def load(self) -> tuple[int, int]:
        """(downloads waiting for a slot, downloads running): what /metrics shows."""
        with self._lock:
            return len(self._waiting), self._running

    def shutdown(self) -> None:
        with self._lock:
            waiting, self._waiting = list(self._waiting), deque()
        for download in waiting:
            download.future.cancel()
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _start_what_may(self) -> None:
        """Under the lock: start, in arrival order, each waiting download whose account and host have room."""
        index = 0
        while self._running < self.total and index < len(self._waiting):
            download = self._waiting[index]
            if download.future.cancelled():  # its request went away while it waited
                del self._waiting[index]
                self._release(download.account_id)
                continue
            if (
                self._running_account[download.account_id] < self.per_account
                and self._running_host[download.host] < self.per_host
            ):
                del self._waiting[index]
                if not download.future.set_running_or_notify_cancel():
                    self._release(download.account_id)
                    continue
                self._running += 1
                self._running_account[download.account_id] += 1
                self._running_host[download.host] += 1
                self._threads.submit(self._run, download)
            else:
                index += 1

    def _run(self, download: _Download) -> None:
        error: BaseException | None = None
        try:
            result = download.read()
        except BaseException as exc:  # the waiting request turns it into its answer
            error = exc
        # The slot is given back before the answer is: whoever sees the answer sees the counts without it.
        with self._lock:
            self._running -= 1
            self._running_account[download.account_id] -= 1
            self._running_host[download.host] -= 1
            self._release(download.account_id)
            self._start_what_may()
        if error is not None:
            download.future.set_exception(error)
        else:
            download.future.set_result(result)

    def _release(self, account_id: int) -> None:
        self._held[account_id] -= 1
        if self._held[account_id] <= 0:
            del self._held[account_id]
