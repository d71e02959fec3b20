"""An S3 bucket (or a path inside one), through boto3. Also any S3-compatible endpoint: MinIO,
Ceph, R2, and Google Cloud Storage with HMAC keys (its XML API), by passing ``endpoint_url``.

Failures are sorted into three kinds, because the caller reacts differently to each:

* the object is not there: :class:`ObjectMissing` (404, never retried);
* the storage is misconfigured: wrong or unknown keys, no permission, no such bucket, wrong
  region: :class:`StorageError`, raised on the first answer; retrying cannot fix a bad key, and
  the user should learn it in milliseconds, not after a backoff;
* the storage is having a bad moment: 5xx, throttling, timeouts, refused or dropped connections:
  :class:`TransientStorageError`, once botocore's own retries (standard mode, ``max_attempts``
  in total) are spent.

Messages name the storage as ``storage://{name}/{key}`` and the bucket; they never contain the
secret key or the server's raw error text.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

# boto3 and botocore ship no type information: the client is typed as Any. Without boto3 this
# import fails with ImportError(name="boto3"), which the registry turns into "install retouch[s3]".
import boto3  # type: ignore[import-untyped]
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
from botocore import exceptions as boto_errors  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]

from retouch.errors import StorageError
from retouch.storage.base import ObjectInfo, ObjectMissing, TransientStorageError, check_relative, is_hidden, join_key

__all__ = ["S3Connector"]

T = TypeVar("T")

#: Error codes that mean "the credentials or their permissions are wrong" (always 403).
_DENIED = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "403",
    }
)
#: The bucket or the endpoint is in another region than the storage's.
_WRONG_REGION = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"})
#: Throttling and server-side hiccups, whatever their status code.
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "RequestLimitExceeded",
        "TooManyRequests",
    }
)


class S3Connector:
    """One S3 storage: ``bucket`` and a ``path`` inside it; every key is relative to that path."""

    kind = "s3"
    read_only = False

    #: Objects larger than this go up as a multipart upload (S3 caps a single PUT at 5 GB, and
    #: parts can be resent alone). Still atomic: the object appears only when the upload completes.
    multipart_threshold = 64 * 1024 * 1024
    multipart_chunksize = 16 * 1024 * 1024

    def __init__(
        self,
        name: str,
        bucket: str,
        path: str = "",
        *,
        access_key: str,
        secret_key: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_attempts: int = 4,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        max_pool_connections: int = 16,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts counts the first attempt too: it must be at least 1.")
        self.name = name
        self.bucket = bucket
        # Normalised like a key ("a//b/" -> "a/b"), and '..' refused: the path is the storage's root.
        self.path = check_relative(path).strip("/")
        self.endpoint_url = endpoint_url
        self.region = region or "us-east-1"
        self.max_attempts = max_attempts
        self._access_key = access_key
        self._secret_key = secret_key
        self._config = Config(
            signature_version="s3v4",
            region_name=self.region,
            # "total_max_attempts" counts the first request; botocore's "max_attempts" would not,
            # and would make one more request than the storage's setting says.
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            # Other S3 implementations (GCS, MinIO, Ceph...) are usually served at one host name,
            # without a DNS name per bucket.
            s3={"addressing_style": "path"} if endpoint_url else None,
            # botocore >= 1.36 adds CRC checksum headers (x-amz-checksum-*, aws-chunked bodies) to
            # every upload by default; GCS and several S3-compatible servers reject them. Integrity
            # of uploads is kept with Content-MD5 instead, which every implementation checks.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # The storage's own endpoint_url decides where its credentials go: an AWS_ENDPOINT_URL
            # in the environment or ~/.aws/config must not redirect an AWS storage elsewhere.
            ignore_configured_endpoint_urls=True,
        )
        self._client: Any = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:  # no secrets in logs or tracebacks
        return f"S3Connector(name={self.name!r}, bucket={self.bucket!r}, path={self.path!r})"

    # -- client ------------------------------------------------------------------------------

    def client(self) -> Any:
        """The connector's boto3 client, created on first use (a client is thread-safe and keeps
        the connection pool, so one per connector is shared by all threads)."""
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    # A session of our own, with explicit keys: the default session is not
                    # thread-safe, and environment/profile credentials must never be picked up.
                    session = boto3.session.Session(
                        aws_access_key_id=self._access_key,
                        aws_secret_access_key=self._secret_key,
                        region_name=self.region,
                    )
                    self._client = session.client("s3", endpoint_url=self.endpoint_url, config=self._config)
                client = self._client
        return client

    # -- keys --------------------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        return join_key(self.path, check_relative(key))

    def _file_key(self, key: str) -> str:
        """The object key of a file (not a folder): reading or writing "" or "a/" makes no sense."""
        rel = check_relative(key)
        if not rel or rel.endswith("/"):
            raise StorageError(f"storage://{self.name}/{key} is a folder, not a file.")
        return join_key(self.path, rel)

    def _relative(self, object_key: str) -> str:
        return object_key[len(self.path) + 1 :] if self.path else object_key

    def locate(self, key: str) -> tuple[str | None, str, str]:
        full = self._object_key(key)
        return self.bucket, full, f"s3://{self.bucket}/{full}"

    # -- operations --------------------------------------------------------------------------

    def list(self, prefix: str, recursive: bool) -> Iterator[ObjectInfo]:
        base = self._object_key(prefix)
        base = base + "/" if base and not base.endswith("/") else base
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base}
        if not recursive:
            # The delimiter folds subfolders into CommonPrefixes, which are ignored: only the
            # folder's own objects are listed, without walking the keys below it.
            params["Delimiter"] = "/"
        # One page (up to 1,000 keys) at a time: a folder of millions of objects is never held.
        pages = iter(self.client().get_paginator("list_objects_v2").paginate(**params))
        uri = f"storage://{self.name}/{prefix}"
        while True:
            page = self._call(lambda: next(pages, None), "list", uri)
            if page is None:
                return
            for item in page.get("Contents", ()):
                full: str = item["Key"]
                rel = self._relative(full)
                # Folder markers ("photos/", made by consoles) and dot-files (".DS_Store", ".git/...").
                if full.endswith("/") or is_hidden(rel):
                    continue
                yield ObjectInfo(rel, item.get("Size"))

    def read(self, key: str) -> bytes:
        full = self._file_key(key)
        uri = f"storage://{self.name}/{key}"
        client = self.client()
        for attempt in range(1, self.max_attempts + 1):
            response = self._call(lambda: client.get_object(Bucket=self.bucket, Key=full), "read", uri)
            body = response["Body"]
            try:
                data: bytes = body.read()
                return data
            except (boto_errors.HTTPClientError, boto_errors.IncompleteReadError) as exc:
                # botocore retries a request until the response headers arrive, not while the body
                # streams: a connection dropped halfway through a 50 MB object surfaces here, and
                # only a new GET recovers it. Hence this loop, the one retry layered on botocore's.
                if attempt == self.max_attempts:
                    raise TransientStorageError(
                        f"Reading {uri} (bucket {self.bucket}) was interrupted {attempt} times; try again later."
                    ) from exc
                time.sleep(0.2 * 2 ** (attempt - 1) * (0.5 + random.random()))
            finally:
                body.close()
        raise AssertionError("unreachable")

    def write(self, key: str, data: bytes, content_type: str) -> None:
        full = self._file_key(key)
        uri = f"storage://{self.name}/{key}"
        client = self.client()
        if len(data) > self.multipart_threshold:
            config = TransferConfig(
                multipart_threshold=self.multipart_threshold,
                multipart_chunksize=self.multipart_chunksize,
                max_concurrency=4,
                # The CRT transfer client would make its own connections and credential lookup.
                preferred_transfer_client="classic",
            )
            # s3transfer aborts the multipart upload when a part fails for good, so no partial
            # object and no orphaned parts are left behind.
            self._call(
                lambda: client.upload_fileobj(
                    io.BytesIO(data), self.bucket, full, ExtraArgs={"ContentType": content_type}, Config=config
                ),
                "write",
                uri,
            )
            return
        # A single PUT is atomic in S3: readers see the old object or the new one, never a part.
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")
        self._call(
            lambda: client.put_object(
                Bucket=self.bucket, Key=full, Body=data, ContentType=content_type, ContentMD5=md5
            ),
            "write",
            uri,
        )

    def exists(self, key: str) -> bool:
        full = self._file_key(key)
        uri = f"storage://{self.name}/{key}"
        client = self.client()
        try:
            self._call(lambda: client.head_object(Bucket=self.bucket, Key=full), "read", uri)
        except ObjectMissing:
            # A HEAD answer has no body, so a missing bucket is a bare 404 too: it reads as
            # "no such object" here, and the next read or write names the bucket.
            return False
        return True

    # -- errors ------------------------------------------------------------------------------

    def _call(self, action: Callable[[], T], verb: str, uri: str) -> T:
        try:
            return action()
        except boto_errors.ClientError as exc:
            raise self._client_error(exc, verb, uri) from exc
        except boto_errors.SSLError as exc:
            raise StorageError(
                f"Cannot {verb} {uri}: the TLS connection to {self._host()} failed; check the storage's endpoint "
                "and its certificate."
            ) from exc
        except (boto_errors.ConnectionError, boto_errors.HTTPClientError) as exc:
            # Refused, reset, timed out: botocore already retried these max_attempts times.
            raise TransientStorageError(
                f"Cannot {verb} {uri}: {self._host()} did not answer after {self.max_attempts} attempts "
                f"({type(exc).__name__}); try again later."
            ) from exc
        except boto_errors.BotoCoreError as exc:
            raise StorageError(f"Cannot {verb} {uri} (bucket {self.bucket}): {type(exc).__name__}.") from exc

    def _client_error(self, exc: Any, verb: str, uri: str) -> StorageError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        where = f"{uri} (bucket {self.bucket})"
        if code == "NoSuchBucket":
            bucket = f"the bucket {self.bucket} of storage://{self.name}"
            return StorageError(f"Cannot {verb} {uri}: {bucket} does not exist; check the storage's bucket.")
        if code in ("NoSuchKey", "NotFound", "404") or status == 404:
            return ObjectMissing(f"{uri} does not exist.")
        if code == "InvalidAccessKeyId":
            return StorageError(f"Access denied to {where}: unknown access key; check the storage's credentials.")
        if code == "SignatureDoesNotMatch":
            return StorageError(
                f"Access denied to {where}: the secret key does not match the access key; "
                "check the storage's credentials."
            )
        if code in _DENIED or status == 403:
            return StorageError(f"Access denied to {where}: check the storage's credentials and their permissions.")
        if code in _WRONG_REGION or status == 301:
            return StorageError(
                f"Cannot {verb} {where}: the bucket is not in the storage's region ({self.region}) "
                "or not at its endpoint; check the storage's region."
            )
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientStorageError(
                f"Cannot {verb} {where}: the storage is unavailable ({code or status}) after "
                f"{self.max_attempts} attempts; try again later."
            )
        return StorageError(f"Cannot {verb} {where}: the storage answered {code or 'an error'} ({status}).")

    def _host(self) -> str:
        """The endpoint's host and port, for messages (never its user info or query)."""
        endpoint = str(self.client().meta.endpoint_url)
        return urllib.parse.urlsplit(endpoint).netloc.rpartition("@")[2] or endpoint
