"""Build a connector from a storage's type and parameters; parse ``storage://name/path`` URIs.

Cloud connectors import their client libraries lazily, so the embedded default does not pay for
boto3 or google-cloud-storage, and a missing library fails with the extra to install.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from retouch.errors import StorageError, ValidationFailed
from retouch.storage.base import Connector, check_relative

if TYPE_CHECKING:
    from retouch.net import FetchPolicy

__all__ = ["StorageURI", "build_connector", "parse_storage_uri"]


@dataclass(frozen=True)
class StorageURI:
    name: str
    path: str  # relative to the storage; may be "" (the root) or end with "/" (a folder)

    @property
    def is_folder(self) -> bool:
        return self.path == "" or self.path.endswith("/")

    def child(self, relative: str) -> str:
        return f"storage://{self.name}/{self.path}{relative}"

    def __str__(self) -> str:
        return f"storage://{self.name}/{self.path}"


def parse_storage_uri(uri: str) -> StorageURI:
    """``storage://name/folder/file.jpg`` -> (name, "folder/file.jpg"); a trailing slash means a folder."""
    if not uri.startswith("storage://"):
        raise ValidationFailed(f"expected a storage://name/path URI but received {uri!r}")
    rest = uri[len("storage://") :]
    name, _, path = rest.partition("/")
    if not name:
        raise ValidationFailed(f"the storage URI {uri!r} names no storage")
    try:
        path = check_relative(unquote(path))
    except StorageError as exc:
        raise ValidationFailed(exc.public_message) from None
    return StorageURI(name, path)


def _missing(extra: str, exc: ImportError) -> StorageError:
    return StorageError(f"This storage type needs an optional part: pip install 'retouch[{extra}]' ({exc.name}).")


def build_connector(
    name: str,
    kind: str,
    parameters: dict[str, Any],
    secrets: dict[str, Any],
    *,
    fetch_policy: FetchPolicy,
    local_roots: list[Path],
) -> Connector:
    path = parameters.get("path") or ""
    if parameters.get("endpoint_url"):
        # boto3 and the google client connect outside our guarded transport: check the endpoint here.
        from retouch.net import check_endpoint  # here: parsing a storage:// URI (an image worker) needs no httpx

        check_endpoint(parameters["endpoint_url"], fetch_policy)
    if kind == "local":
        from retouch.storage.local import LocalConnector, check_local_root

        return LocalConnector(name, check_local_root(path, local_roots))
    if kind == "web_folder":
        from retouch.storage.web_folder import WebFolderConnector

        return WebFolderConnector(name, parameters["base_url"], fetch_policy)
    if kind == "s3" or (kind == "gcs" and secrets.get("secret_access_key")):
        # GCS HMAC keys go through GCS's S3-compatible XML API.
        try:
            from retouch.storage.s3 import S3Connector
        except ImportError as exc:
            raise _missing("s3", exc) from None
        endpoint = parameters.get("endpoint_url") or ("https://storage.googleapis.com" if kind == "gcs" else None)
        return S3Connector(
            name,
            parameters["bucket"],
            path,
            access_key=secrets.get("access_key") or parameters.get("access_key") or "",
            secret_key=secrets.get("secret_access_key") or "",
            endpoint_url=endpoint,
            region=parameters.get("region") or ("auto" if kind == "gcs" else None),
        )
    if kind == "gcs":
        try:
            from retouch.storage.gcs import GCSConnector
        except ImportError as exc:
            raise _missing("gcs", exc) from None
        return GCSConnector(
            name,
            parameters["bucket"],
            path,
            service_account_info=secrets.get("service_account"),
            endpoint=parameters.get("endpoint_url"),
        )
    if kind == "memory":
        from retouch.storage.memory import MemoryConnector

        return MemoryConnector(name, path)
    raise StorageError(f"Unknown storage type {kind!r}.")
