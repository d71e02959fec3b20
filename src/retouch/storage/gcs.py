"""Google Cloud Storage, through the JSON API of the official ``google-cloud-storage`` client.

Credentials: a service-account key (the JSON file Google hands out, as a dict) — an extension of
the Claid contract — or anonymous access (public buckets, and the emulator when ``endpoint`` is
set). The contract's HMAC-key form for GCS (``access_key``/``secret_access_key``) is *not* served
here: HMAC keys only work with GCS's S3-compatible XML API, so they go through the S3 connector
pointed at ``https://storage.googleapis.com``.

Application Default Credentials are never used: the connector serves storages configured by API
users, and falling back to the server's own identity (its metadata server or its environment)
would hand a user whatever buckets the *server* may read.

Errors: a missing object is :class:`ObjectMissing`; 401/403 and rejected credentials are a plain
:class:`StorageError` (permanent, never retried); 429/5xx, connection failures and timeouts are
:class:`TransientStorageError` once the client's own retries are spent. Messages name the
storage (``storage://name/key``) or ``gs://`` URI and never quote credentials or the server's text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NoReturn

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials, Credentials

# google-cloud-storage ships no py.typed marker: mypy sees it as untyped.
from google.cloud import storage  # type: ignore[import-untyped]
from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]
from google.oauth2 import service_account

from retouch.errors import StorageError
from retouch.storage.base import ObjectInfo, ObjectMissing, TransientStorageError, check_relative, is_hidden, join_key

__all__ = ["GCSConnector"]

# GCS bucket naming rules (3-63 characters, or up to 222 with dots). Checked here so that a
# name with '/' or '?' cannot reshape the request URL the client builds from it.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")

# Where a Google service-account key may send its signed token request. ``token_uri`` comes
# from the user's JSON: left unchecked, google-auth would POST to any URL it names (an SSRF
# into our network). A custom ``endpoint`` (emulator, tests) is operator configuration, so the
# check only applies against real GCS.
_GOOGLE_TOKEN_URIS = frozenset(
    {
        "https://oauth2.googleapis.com/token",
        "https://accounts.google.com/o/oauth2/token",
        "https://www.googleapis.com/oauth2/v4/token",
    }
)

_PAGE_SIZE = 1000  # the largest page GCS serves


class GCSConnector:
    kind = "gcs"
    read_only = False

    #: Seconds one HTTP request may take (connect and each read), passed to every client call.
    request_timeout: float = 60.0
    #: Seconds the client keeps retrying transient failures (429, 5xx, connection errors) before
    #: we give up with :class:`TransientStorageError`. Kept well under the client's 120 s default
    #: so that a job does not hang on an outage; callers may retry again with ``base.retry``.
    #: Permanent errors (401, 403, 404, rejected credentials) are never retried by the client.
    retry_timeout: float = 30.0

    def __init__(
        self,
        name: str,
        bucket: str,
        path: str = "",
        *,
        service_account_info: dict[str, Any] | None = None,
        endpoint: str | None = None,
        project: str | None = None,
    ) -> None:
        self.name = name
        if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
            why = f"{bucket[:100]!r} is not a valid GCS bucket name"
            raise StorageError(f"storage://{name}: {why}.", details={"parameters.bucket": [why]})
        self.bucket = bucket
        # The storage path is trusted configuration, but normalized like a key so that joins
        # never produce '//' and a '..' in it is refused as well.
        self.path = check_relative(path).strip("/")
        credentials = _credentials(name, service_account_info, endpoint)
        self._anonymous = service_account_info is None
        if project is None and service_account_info is not None:
            project = service_account_info.get("project_id")
        options: dict[str, Any] = {"api_endpoint": endpoint.rstrip("/")} if endpoint else {}
        try:
            # project is always passed (None included): left out, the client would look for a
            # default project in the environment and on the metadata server.
            self._client = storage.Client(project=project, credentials=credentials, client_options=options)
        except (ValueError, auth_exceptions.GoogleAuthError):
            # e.g. a universe_domain in the key that does not match the endpoint.
            raise StorageError(
                f"storage://{name}: the GCS client could not be set up with these credentials."
            ) from None
        # Recent clients (3.x) start a background thread on the first call to fetch the bucket's
        # metadata, only to label OpenTelemetry spans. We do not trace, and the extra request
        # (storage.buckets.get, which a least-privilege key often lacks) and stray thread are
        # pure cost; every use in the client is guarded by a truthiness check, so None turns it off.
        if getattr(self._client, "_bucket_metadata_cache", None) is not None:
            self._client._bucket_metadata_cache = None
        self._bucket = self._client.bucket(bucket)

    # ----------------------------------------------------------------------------------------

    def _full(self, key: str) -> str:
        return join_key(self.path, check_relative(key))

    def _retry(self) -> Retry:
        retry: Retry = DEFAULT_RETRY.with_timeout(self.retry_timeout)
        return retry

    def list(self, prefix: str, recursive: bool) -> Iterator[ObjectInfo]:
        base = join_key(self.path, check_relative(prefix))
        base = base + "/" if base and not base.endswith("/") else base
        root = self.path + "/" if self.path else ""
        # list_blobs returns an HTTPIterator: each page is one request, made only when the
        # previous page has been consumed, so a folder of a million objects streams.
        iterator = self._client.list_blobs(
            self._bucket,
            prefix=base or None,
            # With a delimiter GCS folds everything below a '/' into "prefixes", which a
            # non-recursive listing does not want anyway.
            delimiter=None if recursive else "/",
            page_size=_PAGE_SIZE,
            fields="items(name,size),nextPageToken,prefixes",
            timeout=self.request_timeout,
            retry=self._retry(),
        )
        pages = iter(iterator.pages)
        while True:
            try:
                page = next(pages, None)
                blobs = list(page) if page is not None else None
            except Exception as exc:
                self._raise(exc, f"list storage://{self.name}/{prefix}", bucket_level=True)
            if blobs is None:
                return
            for blob in blobs:
                name: str = blob.name
                # "folder/" placeholders (created by the console and some tools) are not objects.
                if name.endswith("/") or is_hidden(name[len(base) :]):
                    continue
                yield ObjectInfo(name[len(root) :], blob.size)

    def read(self, key: str) -> bytes:
        blob = self._bucket.blob(self._full(key))
        try:
            data: bytes = blob.download_as_bytes(timeout=self.request_timeout, retry=self._retry())
        except Exception as exc:
            self._raise(exc, f"read storage://{self.name}/{key}", missing=f"storage://{self.name}/{key}")
        return data

    def write(self, key: str, data: bytes, content_type: str) -> None:
        blob = self._bucket.blob(self._full(key))
        try:
            # A GCS object only becomes visible once its upload is finalized: the single-request
            # upload (< 8 MiB) and the resumable one the client switches to for larger data are
            # both atomic. Retrying the whole upload after a transient failure is safe: it
            # rewrites the same bytes.
            blob.upload_from_string(data, content_type=content_type, timeout=self.request_timeout, retry=self._retry())
        except Exception as exc:
            self._raise(exc, f"write storage://{self.name}/{key}", bucket_level=True)

    def exists(self, key: str) -> bool:
        blob = self._bucket.blob(self._full(key))
        try:
            found: bool = blob.exists(timeout=self.request_timeout, retry=self._retry())
        except Exception as exc:
            self._raise(exc, f"check storage://{self.name}/{key}")
        return found

    def locate(self, key: str) -> tuple[str | None, str, str]:
        full = self._full(key)
        return self.bucket, full, f"gs://{self.bucket}/{full}"

    def close(self) -> None:
        """Release the client's HTTP connections."""
        self._client.close()

    # ----------------------------------------------------------------------------------------

    def _raise(
        self, exc: Exception, action: str, *, missing: str | None = None, bucket_level: bool = False
    ) -> NoReturn:
        """Re-raise a client exception as a StorageError; ``action`` is e.g. "read storage://s/k".

        ``missing`` names the object for a 404 on an object request (:class:`ObjectMissing`);
        otherwise a 404 means the bucket itself does not exist.
        """
        if isinstance(exc, StorageError):
            raise exc
        if isinstance(exc, api_exceptions.NotFound):
            if missing is not None:
                raise ObjectMissing(f"{missing} does not exist.") from None
            if bucket_level:
                raise StorageError(f"Cannot {action}: the bucket {self.bucket} does not exist.") from None
        if isinstance(exc, (api_exceptions.Unauthorized, api_exceptions.Forbidden)):
            raise StorageError(
                f"Cannot {action}: access to gs://{self.bucket} was denied ({exc.code}). "
                "Check that the credentials are valid and grant access to this bucket."
            ) from None
        if isinstance(exc, auth_exceptions.TransportError):
            # The token endpoint could not be reached: a network problem, not bad credentials.
            raise TransientStorageError(f"Cannot {action}: Google's token service could not be reached.") from None
        if isinstance(exc, auth_exceptions.GoogleAuthError) and self._anonymous:
            # A 401 makes the client try to refresh the credentials, which anonymous ones cannot.
            raise StorageError(
                f"Cannot {action}: access to gs://{self.bucket} was denied (401). The bucket is not "
                "public: configure a service-account key for this storage."
            ) from None
        if isinstance(exc, auth_exceptions.GoogleAuthError):
            # RefreshError and kin: the key was refused (deleted key, disabled account, wrong key).
            raise StorageError(f"Cannot {action}: the GCS credentials were rejected.") from None
        if isinstance(exc, api_exceptions.RetryError) or _transient(exc):
            raise TransientStorageError(
                f"Cannot {action}: GCS is unavailable or overloaded, try again later."
            ) from None
        if isinstance(exc, api_exceptions.GoogleAPICallError):
            raise StorageError(f"Cannot {action}: GCS answered {exc.code}.") from None
        # Anything else (a bug, a client invariant) is not a storage condition: let it surface.
        raise exc


def _transient(exc: BaseException) -> bool:
    """What the client's DEFAULT_RETRY also retries, once its own retries are exhausted."""
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        return exc.code in (408, 429) or (exc.code is not None and exc.code >= 500)
    # Checksum mismatches and cut-off bodies: another download usually succeeds.
    return type(exc).__name__ in ("DataCorruption", "ChunkedEncodingError", "IncompleteRead", "ProtocolError")


#: Where a service-account key's problems are reported (the field the user filled in).
_SERVICE_ACCOUNT = "parameters.credentials.service_account"


def _credentials(name: str, info: dict[str, Any] | None, endpoint: str | None) -> Credentials:
    if info is None:
        # Public buckets, or the emulator. Never google.auth.default(): see the module docstring.
        return AnonymousCredentials()  # type: ignore[no-untyped-call]  # google-auth leaves it unannotated
    if info.get("type", "service_account") != "service_account":
        # Other JSON credential types (external_account, ...) can name URLs or even programs
        # to run to obtain a token; only plain service-account keys are accepted.
        why = "only service-account keys (type service_account) are accepted"
        raise StorageError(f"storage://{name}: {why}.", details={_SERVICE_ACCOUNT: [why]})
    if endpoint is None and info.get("token_uri", "https://oauth2.googleapis.com/token") not in _GOOGLE_TOKEN_URIS:
        why = "the key's token_uri is not a Google token endpoint"
        raise StorageError(f"storage://{name}: {why}.", details={_SERVICE_ACCOUNT: [why]})
    try:
        credentials: Credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=["https://www.googleapis.com/auth/devstorage.read_write"]
        )
    except (ValueError, KeyError, TypeError):
        # The exception text can quote parts of the key: it is not passed on.
        why = (
            "the service-account key is not valid (expected the JSON key file Google provides, with "
            "client_email, private_key and token_uri)"
        )
        raise StorageError(f"storage://{name}: {why}.", details={_SERVICE_ACCOUNT: [why]}) from None
    return credentials
