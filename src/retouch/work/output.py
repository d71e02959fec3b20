"""Where a result goes: a storage (a single atomic write), the tmp store (served at a tmp_url), or a local file
(``retouch edit``/``retouch batch``: temp name, fsync, rename)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from retouch.errors import InputError, StorageError
from retouch.formats import mime_type
from retouch.storage.base import retry
from retouch.storage.registry import parse_storage_uri
from retouch.tmpstore import write_atomic
from retouch.work.context import WorkContext

__all__ = ["Location", "write_output"]

#: The output-location fields of a response (tmp_url, or object_key/object_bucket/object_uri/claid_storage_uri).
Location = dict[str, str | None]


def write_output(
    ctx: WorkContext,
    account_id: int,
    destination: str | None,
    name: str,
    data: bytes,
    out_format: str,
    source: str | None,
    file: Path | None = None,
) -> Location:
    """Write one result and say where it is. ``source`` is the request's input: an output that would land on it
    is refused unless RETOUCH_ALLOW_OVERWRITE_INPUT is set. ``file``: write to this local path instead."""
    if file is not None:
        write_atomic(file, data)
        return {}
    if destination is None:
        return {"tmp_url": ctx.tmp.put(PurePosixPath(name).name, data)}
    if ctx.storages is None:
        raise StorageError("This process has no storages: write to a local file.")
    uri = parse_storage_uri(destination)
    connector = ctx.storages.connector(account_id, uri.name)
    if connector.read_only:
        raise StorageError(f"Cannot write to {destination}: {connector.kind} storages are read-only.")
    key = uri.path + name if uri.is_folder else uri.path
    if source is not None and source.startswith("storage://") and not ctx.settings.allow_overwrite_input:
        source_uri = parse_storage_uri(source)
        source_connector = ctx.storages.connector(account_id, source_uri.name)
        if source_connector.locate(source_uri.path)[2] == connector.locate(key)[2]:
            raise InputError(
                f"The output storage://{uri.name}/{key} would overwrite the input {source}. Write to another "
                "path; the operator can allow it with RETOUCH_ALLOW_OVERWRITE_INPUT=true.",
                details={"output.destination": ["the same file as the input"]},
            )
    retry(lambda: connector.write(key, data, mime_type(out_format)))
    bucket, object_key, object_uri = connector.locate(key)
    return {
        "object_key": object_key,
        "object_bucket": bucket,
        "object_uri": object_uri,
        "claid_storage_uri": f"storage://{uri.name}/{key}",
    }
