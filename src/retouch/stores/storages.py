"""An account's storages: stored in the database (secrets sealed), turned into connectors on use."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retouch.contracts.envelopes import validation_failed
from retouch.contracts.storages import ParameterProblem, StorageIn, StorageParameters, check_parameters
from retouch.errors import ConflictError, NotFound, StorageError, ValidationFailed
from retouch.net import FetchPolicy
from retouch.storage.base import Connector, check_relative, is_image_key
from retouch.storage.registry import build_connector
from retouch.storage.secrets import SecretBox
from retouch.stores.tables import StorageRow, rfc3339

__all__ = ["StorageCatalog"]

_SECRET_FIELDS = ("secret_access_key", "service_account")


def _split(params: StorageParameters) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public parameters, secrets). The access key is public (Claid returns it); the rest is sealed."""
    public = params.model_dump(exclude_none=True, exclude={"credentials"})
    secrets: dict[str, Any] = {}
    if params.credentials is not None:
        creds = params.credentials.model_dump(exclude_none=True)
        if "access_key" in creds:
            public["access_key"] = creds["access_key"]
        secrets = {k: v for k, v in creds.items() if k in _SECRET_FIELDS or k == "access_key"}
    return public, secrets


def _out(row: StorageRow) -> dict[str, Any]:
    params = dict(row.parameters)
    if row.type in ("s3", "gcs"):
        shown: dict[str, Any] = {"path": params.get("path", ""), "bucket": params.get("bucket")}
        if "access_key" in params:
            shown["credentials"] = {"access_key": params["access_key"]}
        for extra in ("endpoint_url", "region"):
            if extra in params:
                shown[extra] = params[extra]
    elif row.type == "web_folder":
        shown = {"base_url": params.get("base_url")}
    else:
        shown = {"path": params.get("path", "")}
    return {
        "id": row.id,
        "name": row.name,
        "type": row.type,
        "parameters": shown,
        "created_at": rfc3339(row.created_at),
    }


class StorageCatalog:
    def __init__(self, engine: Engine, box: SecretBox, fetch_policy: FetchPolicy, local_roots: list[Path]) -> None:
        self._engine = engine
        self._box = box
        self._fetch_policy = fetch_policy
        self._roots = local_roots
        self._cache: dict[tuple[int, str], tuple[datetime, Connector]] = {}
        self._fresh: dict[tuple[int, str], tuple[float, Connector]] = {}
        self.trust_seconds = 5.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ CRUD

    def list(self, account_id: int) -> list[dict[str, Any]]:
        with Session(self._engine) as session:
            rows = session.scalars(
                select(StorageRow).where(StorageRow.account_id == account_id).order_by(StorageRow.id)
            )
            return [_out(row) for row in rows]

    def _row(self, session: Session, account_id: int, storage_id: int) -> StorageRow:
        row = session.get(StorageRow, storage_id)
        if row is None or row.account_id != account_id:  # another account's storage is simply not found
            raise NotFound("Storage not found.")
        return row

    def get(self, account_id: int, storage_id: int) -> dict[str, Any]:
        with Session(self._engine) as session:
            return _out(self._row(session, account_id, storage_id))

    def create(self, account_id: int, spec: StorageIn) -> dict[str, Any]:
        spec.check()
        public, secrets = _split(spec.parameters)
        self._check_usable(spec.name, spec.type, public, secrets)
        self._check_own_folder(account_id, spec.type, public)
        row = StorageRow(
            account_id=account_id,
            name=spec.name,
            type=spec.type,
            parameters=public,
            sealed=self._box.seal(secrets) if secrets else None,
        )
        try:
            with Session(self._engine) as session, session.begin():
                session.add(row)
                session.flush()
                return _out(row)
        except IntegrityError:
            raise ConflictError(f"A storage named {spec.name!r} already exists.") from None

    def update(self, account_id: int, storage_id: int, patch: dict[str, Any]) -> dict[str, Any]:
        try:
            with Session(self._engine) as session, session.begin():
                row = self._row(session, account_id, storage_id)
                current = dict(row.parameters)
                secrets = self._box.open(row.sealed)
                creds = {"access_key": current.pop("access_key", None), **secrets}
                merged_params = {**current, "credentials": {k: v for k, v in creds.items() if v is not None}}
                new_params = dict(patch.get("parameters") or {})
                if "credentials" in new_params:
                    new_creds = new_params.pop("credentials") or {}
                    if not isinstance(new_creds, dict):  # merged key by key below: it must be an object
                        why = "expected an object of credentials (a patch merges into the stored ones)"
                        raise ValidationFailed(
                            f"parameters.credentials: {why}.", details={"parameters.credentials": [why]}
                        )
                    merged_params["credentials"] = {**merged_params["credentials"], **new_creds}
                merged_params.update(new_params)
                if not merged_params["credentials"]:
                    del merged_params["credentials"]
                kind = patch.get("type") or row.type
                try:
                    params = StorageParameters.model_validate(merged_params)
                    check_parameters(kind, params)
                except ParameterProblem as problem:
                    raise ValidationFailed(
                        f"{problem.field}: {problem}.", details={problem.field: [str(problem)]}
                    ) from None
                except ValidationError as exc:
                    # The merged parameters, checked as a whole: each problem named at its own field.
                    raise validation_failed(exc, "parameters") from None
                except ValueError as exc:
                    why = str(exc).splitlines()[0]
                    raise ValidationFailed(f"parameters: {why}.", details={"parameters": [why]}) from None
                public, sealed = _split(params)
                name = patch.get("name") or row.name
                self._check_usable(name, kind, public, sealed)
                self._check_own_folder(account_id, kind, public)
                row.name, row.type, row.parameters = name, kind, public
                row.sealed = self._box.seal(sealed) if sealed else None
                session.flush()
                out = _out(row)
        except IntegrityError:
            raise ConflictError(f"A storage named {patch.get('name')!r} already exists.") from None
        self._forget(account_id)
        return out

    def delete(self, account_id: int, storage_id: int) -> None:
        """Disconnects the storage; the bucket or folder itself is left untouched."""
        with Session(self._engine) as session, session.begin():
            session.delete(self._row(session, account_id, storage_id))
        self._forget(account_id)

    def browse(self, account_id: int, storage_id: int, path: str, limit: int, scan: int = 5000) -> dict[str, Any]:
        """One level of a storage folder: its image files (at most ``limit``) and the sub-folders seen.

        Connectors list objects, not folders (``Connector.list``), so sub-folders are read off a recursive listing
        that stops after ``scan`` objects: a huge tree says ``truncated`` rather than being walked to the end."""
        try:
            folder = check_relative(path)
        except StorageError as exc:
            raise ValidationFailed(exc.public_message, details={"path": [exc.public_message]}) from None
        if folder and not folder.endswith("/"):
            folder += "/"
        with Session(self._engine) as session:
            name = self._row(session, account_id, storage_id).name
        connector = self.connector(account_id, name)
        objects: list[dict[str, Any]] = []
        folders: dict[str, None] = {}  # insertion-ordered set
        truncated = False
        for seen, info in enumerate(connector.list(folder, True)):
            if seen >= scan:
                truncated = True
                break
            rest = info.key[len(folder) :] if info.key.startswith(folder) else info.key
            head, slash, _ = rest.partition("/")
            if slash:
                folders[folder + head + "/"] = None
            elif is_image_key(info.key):
                if len(objects) >= limit:
                    truncated = True
                    continue  # keep scanning a little for folders; the scan cap still bounds it
                entry: dict[str, Any] = {"key": info.key}
                if info.size is not None:
                    entry["size"] = info.size
                objects.append(entry)
        return {
            "path": folder,
            "uri": f"storage://{name}/{folder}",
            "folders": list(folders),
            "objects": objects,
            "truncated": truncated,
        }

    def _check_usable(self, name: str, kind: str, public: dict[str, Any], secrets: dict[str, Any]) -> None:
        # Building the connector checks what can be checked offline (local roots, libraries present).
        build_connector(name, kind, public, secrets, fetch_policy=self._fetch_policy, local_roots=self._roots)

    def _check_own_folder(self, account_id: int, kind: str, public: dict[str, Any]) -> None:
        """A local storage's folder may not be, hold or lie inside a local storage folder of another account:
        local folders have no credentials, so the folder itself is what separates accounts. Checked when a
        storage is created or changed, and again each time a connector is built (``_lookup``), so rows made
        before this rule, or two accounts racing for one folder, never give one account the other's files."""
        if kind != "local":
            return
        folder = Path(public.get("path") or "/").resolve()
        with Session(self._engine) as session:
            others = session.scalars(
                select(StorageRow.parameters).where(StorageRow.type == "local", StorageRow.account_id != account_id)
            ).all()
        for parameters in others:
            other = Path(parameters.get("path") or "/").resolve()
            if folder == other or other in folder.parents or folder in other.parents:
                raise ConflictError(
                    f"The folder {public.get('path')} overlaps the local storage folder of another account: "
                    "each account needs a folder of its own (e.g. one folder per account under "
                    "RETOUCH_LOCAL_STORAGE_ROOTS)."
                )

    def _forget(self, account_id: int) -> None:
        with self._lock:
            for key in [k for k in self._cache if k[0] == account_id]:
                del self._cache[key]
            for key in [k for k in self._fresh if k[0] == account_id]:
                del self._fresh[key]

    # ------------------------------------------------------------------ use

    def connector(self, account_id: int, name: str) -> Connector:
        """The connector for ``storage://name/...`` of this account. Cached until the row changes, and
        trusted without a database look-up for a few seconds (a batch item reads and writes through
        the same storage: two look-ups per item otherwise); a PATCH reaches other processes within that."""
        now = time.monotonic()
        with self._lock:
            fresh = self._fresh.get((account_id, name))
            if fresh is not None and fresh[0] > now:
                return fresh[1]
        connector = self._lookup(account_id, name)
        with self._lock:
            self._fresh[(account_id, name)] = (now + self.trust_seconds, connector)
        return connector

    def _lookup(self, account_id: int, name: str) -> Connector:
        with Session(self._engine) as session:
            row = session.scalar(select(StorageRow).where(StorageRow.account_id == account_id, StorageRow.name == name))
            if row is None:
                raise StorageError(f"No storage named {name!r}: create it with POST /v1/storage/storages first.")
            stamp, kind, params, sealed = row.updated_at, row.type, dict(row.parameters), row.sealed
        self._check_own_folder(account_id, kind, params)
        with self._lock:
            hit = self._cache.get((account_id, name))
            if hit is not None and hit[0] == stamp:
                return hit[1]
        connector = build_connector(
            name, kind, params, self._box.open(sealed), fetch_policy=self._fetch_policy, local_roots=self._roots
        )
        with self._lock:
            self._cache[(account_id, name)] = (stamp, connector)
        return connector
