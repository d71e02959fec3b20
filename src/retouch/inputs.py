"""Reading an input: an http(s) URL through the guarded fetcher, or a file of one of the account's storages.

Kept free of the pipeline (no pyvips) so the download process (downloader.py) can read inputs without loading
the image stack: it costs that process ~70 MB instead of ~100."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

from retouch.errors import LimitExceeded, RetouchError, StorageError
from retouch.net import FetchPolicy, fetch
from retouch.storage.base import ObjectMissing, retry
from retouch.storage.registry import parse_storage_uri

if TYPE_CHECKING:
    import httpx

    from retouch.settings import Settings
    from retouch.stores.storages import StorageCatalog

__all__ = ["InputReader", "fetch_policy"]


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        allow_hosts=tuple(settings.fetch_allow_hosts),
        max_bytes=settings.max_input_bytes,
        timeout_seconds=settings.fetch_timeout_seconds,
        max_redirects=settings.fetch_max_redirects,
    )


@dataclass(frozen=True)
class InputReader:
    #: The account's storages, built on first use: the download process then opens the database (SQLAlchemy,
    #: the secret box) only when a storage:// input first comes, not for URL inputs.
    catalog: Callable[[], StorageCatalog]
    policy: FetchPolicy
    #: One guarded client per process: creating one per request costs ~20 ms of CPU (TLS context, CA bundle)
    #: and loses keep-alive. httpx clients are safe to share between threads.
    client: httpx.Client

    @property
    def storages(self) -> StorageCatalog:
        return self.catalog()

    def remote_host(self, account_id: int, source: str) -> str | None:
        """The key an input's downloads are limited by when its bytes cross a network (an http(s) origin's host,
        or a cloud storage); None for local files, which the worker reads itself."""
        if source.startswith(("http://", "https://")):
            return "url:" + urlsplit(source).netloc.rsplit("@", 1)[-1].lower()
        try:
            uri = parse_storage_uri(source)
            if uri.is_folder or self.storages.connector(account_id, uri.name).kind == "local":
                return None
        except RetouchError:
            return None  # the job itself will say what is wrong with it
        return f"storage:{account_id}:{uri.name}"

    def read(self, account_id: int, source: str, sink: BinaryIO | None = None) -> tuple[bytes, str]:
        """Bytes and file name of an input. With ``sink``, the body is written into it instead (the bytes
        returned are then empty)."""
        if source.startswith(("http://", "https://")):
            fetched = fetch(source, self.policy, client=self.client, sink=sink)
            return fetched.data, fetched.name
        uri = parse_storage_uri(source)
        if uri.is_folder:
            raise StorageError(
                f"{source} is a folder; a single edit needs a file (use the batch endpoint for folders)."
            )
        connector = self.storages.connector(account_id, uri.name)
        try:
            data = retry(lambda: connector.read(uri.path))
        except ObjectMissing:
            raise StorageError(f"Cannot read {source}: the object does not exist.") from None
        if len(data) > self.policy.max_bytes:
            raise LimitExceeded(
                f"The input is {len(data)} bytes, over the input size limit of {self.policy.max_bytes} bytes."
            )
        name = uri.path.rsplit("/", 1)[-1]
        if sink is not None:
            sink.write(data)
            return b"", name
        return data, name
