"""Expand a batch's inputs into items, lazily: folders are listed page by page, never held whole."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from retouch.contracts.tasks import BatchInput
from retouch.errors import StorageError
from retouch.formats import guess_ext, is_image_name, name_from_url
from retouch.storage.base import Connector, is_image_key
from retouch.storage.registry import StorageURI, parse_storage_uri
from retouch.stores.tasks import ItemSpec

__all__ = ["EmptyBatch", "expand", "relative_inside"]


class EmptyBatch(StorageError):
    """Nothing to process: every folder was missing or held no image."""


def _is_folder(uri: StorageURI) -> bool:
    # A trailing slash means a folder (Claid's rule). Users also write folders without it; a last
    # segment with no image suffix is taken as a folder too, since image files carry one.
    return uri.is_folder or not is_image_name(uri.path)


def relative_inside(outer: tuple[Connector, str], inner: tuple[Connector, str]) -> str | None:
    """Where the folder ``inner`` lies inside the folder ``outer``, as a key prefix ("" = the same folder), or
    None. Compared by physical location (bucket and key, resolved path), so two storages on one folder match."""
    base = outer[0].locate(outer[1])[2].rstrip("/") + "/"
    target = inner[0].locate(inner[1])[2].rstrip("/") + "/"
    return target[len(base) :] if target.startswith(base) else None


def expand(
    sources: list[BatchInput],
    connector_for: Callable[[str], Connector],
    name_for: Callable[[str, str], str],
    problems: list[str],
    destination: tuple[Connector, str] | None = None,
) -> Iterator[ItemSpec]:
    """Items in listing order. ``name_for(input_name, input_ext)`` gives the output file name.
    A folder with no image is appended to ``problems`` (the batch ends in ERROR, the other inputs
    still run); when no input yields anything, :class:`EmptyBatch` is raised. Nothing under
    ``destination`` (connector, folder) is listed: a batch never takes its own outputs as inputs."""
    found = 0
    empty_folders: list[str] = []
    for source in sources:
        if source.source.startswith(("http://", "https://")):
            name = name_from_url(urlsplit(source.source).path)
            found += 1
            yield ItemSpec(source.source, name_for(name, guess_ext(name)))
            continue
        uri = parse_storage_uri(source.source)
        if not _is_folder(uri):
            name = uri.path.rsplit("/", 1)[-1]
            found += 1
            yield ItemSpec(source.source, name_for(name, guess_ext(name)))
            continue
        folder = uri.path if uri.path.endswith("/") or not uri.path else uri.path + "/"
        connector = connector_for(uri.name)
        # The listing is lazy and runs while items are written: outputs under the input folder would come back.
        outputs = relative_inside((connector, folder), destination) if destination is not None else None
        count = 0
        for info in connector.list(folder, source.recursive):
            if not is_image_key(info.key):
                continue
            relative = info.key[len(folder) :] if info.key.startswith(folder) else info.key
            if outputs and relative.startswith(outputs):
                continue
            parent = str(PurePosixPath(relative).parent)
            name = PurePosixPath(relative).name
            out = name_for(name, guess_ext(name))
            count += 1
            found += 1
            # storage:// URIs carry the key as written; the item reads it back through the same connector.
            yield ItemSpec(f"storage://{uri.name}/{info.key}", out if parent in ("", ".") else f"{parent}/{out}")
        if count == 0:
            empty_folders.append(f"storage://{uri.name}/{folder}")
            problems.append(
                f"No images found in storage://{uri.name}/{folder}: the folder is missing, empty, "
                "or holds no image files."
            )
    if found == 0:
        where = ", ".join(empty_folders) or "the input"
        raise EmptyBatch(f"No images found in {where}: the folder is missing, empty, or holds no image files.")
