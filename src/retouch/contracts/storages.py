"""Storage connector requests and responses (``/v1/storage/...``). Secrets are write-only."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from retouch.contracts.common import Strict
from retouch.contracts.responses import Data, ResponseModel, omitted
from retouch.errors import ValidationFailed

__all__ = [
    "STORAGE_TYPES",
    "Credentials",
    "CredentialsOut",
    "StorageFolder",
    "StorageFolderResponse",
    "StorageIn",
    "StorageListResponse",
    "StorageObject",
    "StorageOut",
    "StorageParameters",
    "StorageParametersOut",
    "StorageResponse",
    "StorageTypesResponse",
    "StorageUpdate",
]

STORAGE_TYPES = ("web_folder", "s3", "gcs", "local")
StorageType = Literal["web_folder", "s3", "gcs", "local"]


class Credentials(Strict):
    access_key: str | None = Field(None, min_length=1, max_length=512, description="S3 access key / GCS HMAC key id.")
    secret_access_key: str | None = Field(None, min_length=1, max_length=1024, description="Write-only secret.")
    service_account: dict[str, Any] | None = Field(
        None, description="gcs only (extension): a service-account JSON key, instead of HMAC keys. Write-only."
    )


class StorageParameters(Strict):
    """Every parameter any type takes; which are required depends on the type (checked below)."""

    bucket: str | None = Field(None, min_length=1, max_length=255, description="s3/gcs: the bucket.")
    path: str | None = Field(None, max_length=1024, description="s3/gcs: folder inside the bucket; local: the folder.")
    credentials: Credentials | None = Field(None, description="s3/gcs: access keys (never returned but access_key).")
    base_url: str | None = Field(None, min_length=1, max_length=4096, description="web_folder: http(s) base URL.")
    endpoint_url: str | None = Field(
        None, max_length=4096, description="s3/gcs (extension): S3-compatible or emulator endpoint (MinIO, R2, Ceph)."
    )
    region: str | None = Field(None, max_length=64, description="s3 (extension): region, default us-east-1.")

    @model_validator(mode="before")
    @classmethod
    def _prefix_alias(cls, data: Any) -> Any:
        # Older Claid docs call the folder `prefix`.
        if isinstance(data, dict) and "prefix" in data and "path" not in data:
            data = {**data, "path": data["prefix"]}
            del data["prefix"]
        return data


class ParameterProblem(ValueError):
    """Parameters that do not fit the storage type; ``field`` is the dotted path the answer names."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def failure(self) -> ValidationFailed:
        return ValidationFailed(f"{self.field}: {self}.", details={self.field: [str(self)]})


def check_parameters(kind: str, params: StorageParameters) -> None:
    """Raise :class:`ParameterProblem` (a ValueError naming the field) when the parameters do not fit the type."""
    creds = params.credentials
    if kind in ("s3", "gcs"):
        if not params.bucket:
            raise ParameterProblem("parameters.bucket", f"parameters.bucket is required for {kind}")
        hmac = creds is not None and creds.access_key and creds.secret_access_key
        account = kind == "gcs" and creds is not None and creds.service_account
        if not (hmac or account or (kind == "gcs" and params.endpoint_url)):
            need = "access_key and secret_access_key" + (" (or service_account)" if kind == "gcs" else "")
            raise ParameterProblem("parameters.credentials", f"parameters.credentials needs {need} for {kind}")
        if params.base_url:
            raise ParameterProblem("parameters.base_url", f"parameters.base_url does not apply to {kind}")
    elif kind == "web_folder":
        if not params.base_url or not params.base_url.startswith(("http://", "https://")):
            raise ParameterProblem(
                "parameters.base_url", "parameters.base_url (an http(s) URL) is required for web_folder"
            )
        if params.bucket or creds:
            raise ParameterProblem(
                "parameters.bucket" if params.bucket else "parameters.credentials", "web_folder takes only base_url"
            )
    elif kind == "local":
        if not params.path:
            raise ParameterProblem("parameters.path", "parameters.path (an absolute folder) is required for local")
        if params.bucket or creds or params.base_url:
            field = (
                "parameters.bucket" if params.bucket else "parameters.credentials" if creds else "parameters.base_url"
            )
            raise ParameterProblem(field, "local takes only path")


class StorageIn(Strict):
    name: str = Field(
        ...,
        min_length=1,
        max_length=50,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Unique per account; used in storage://name/path.",
    )
    type: StorageType = Field(..., description="s3 | gcs | web_folder | local.")
    parameters: StorageParameters

    def check(self) -> None:
        """The parameters fit the type, or :class:`~retouch.errors.ValidationFailed` naming the field. Not a model
        validator: pydantic would report a model's error at the body, not at `parameters.credentials`."""
        try:
            check_parameters(self.type, self.parameters)
        except ParameterProblem as problem:
            raise problem.failure() from None


class StorageUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=50, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    type: StorageType | None = None
    parameters: dict[str, Any] | None = Field(None, description="Any subset; nested fields optional.")


class CredentialsOut(ResponseModel):
    access_key: str = Field(..., description="The access key (S3) or HMAC key id (GCS); the secret is never returned.")


class StorageParametersOut(ResponseModel):
    """A storage's parameters as answers show them: only those of its type, and never a secret."""

    path: str | SkipJsonSchema[None] = omitted(
        "s3/gcs: the folder inside the bucket ('' for the root); local: the folder."
    )
    bucket: str | SkipJsonSchema[None] = omitted("s3/gcs: the bucket.")
    credentials: CredentialsOut | SkipJsonSchema[None] = omitted("s3/gcs: the access key, when HMAC keys were given.")
    endpoint_url: str | SkipJsonSchema[None] = omitted(
        "s3/gcs (extension): the S3-compatible or emulator endpoint, when one was given."
    )
    region: str | SkipJsonSchema[None] = omitted("s3 (extension): the region, when one was given.")
    base_url: str | SkipJsonSchema[None] = omitted("web_folder: the base URL.")


class StorageOut(ResponseModel):
    """A connected storage."""

    id: int = Field(..., description="The storage's id, for GET, PATCH and DELETE /v1/storage/storages/{id}.")
    name: str = Field(..., description="Unique per account; used in storage://name/path.")
    type: StorageType = Field(..., description="s3 | gcs | web_folder | local.")
    parameters: StorageParametersOut = Field(..., description="The parameters, without secrets.")
    created_at: str = Field(
        ...,
        description="When the storage was connected: RFC 3339 in UTC with milliseconds, e.g. 2026-12-04T09:41:07.123Z.",
        json_schema_extra={"format": "date-time"},
    )


class StorageResponse(Data[StorageOut]):
    """One storage: ``{"data": {...}}``."""

    data: StorageOut = Field(..., description="The storage.")


class StorageListResponse(Data[list[StorageOut]]):
    """The account's storages, oldest first: ``{"data": [...]}``."""

    data: list[StorageOut] = Field(..., description="The storages, oldest first.")


class StorageTypesResponse(Data[list[StorageType]]):
    """``{"data": ["web_folder", "s3", "gcs", "local"]}``."""

    data: list[StorageType] = Field(..., description="The storage types this server supports.")


class StorageObject(ResponseModel):
    key: str = Field(..., description="The object's path relative to the storage (use it as storage://name/key).")
    size: int | SkipJsonSchema[None] = omitted("Size in bytes, when the storage says it.")


class StorageFolder(ResponseModel):
    """Extension: one level of a storage folder (``GET /v1/storage/storages/{id}/objects``)."""

    path: str = Field(..., description='The folder listed, relative to the storage ("" = its root).')
    uri: str = Field(..., description="storage://name/path/ of the folder: usable as a batch input.")
    folders: list[str] = Field(..., description="Sub-folders seen (paths relative to the storage, ending in /).")
    objects: list[StorageObject] = Field(..., description="Image files directly in the folder, in listing order.")
    truncated: bool = Field(
        ..., description="The listing stopped at `limit` files or the scan cap: there may be more files and folders."
    )


class StorageFolderResponse(Data[StorageFolder]):
    data: StorageFolder = Field(..., description="The folder.")
