"""Wire models of the Claid image-editing contract. Never imports pyvips."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retouch.contracts.edit import EditRequest, EditResult, ImageObject, OutputObject, UploadData
    from retouch.contracts.operations import ImageOperations
    from retouch.contracts.output import EncodeSpec, OutputOptions

__all__ = [
    "EditRequest",
    "EditResult",
    "EncodeSpec",
    "ImageObject",
    "ImageOperations",
    "OutputObject",
    "OutputOptions",
    "UploadData",
]

# Where each model lives. They are built on first use, not when a submodule is imported: the storage layer needs
# only the key rules of ``contracts.common``, and the download process, which never validates a request, would
# otherwise build every model of the contract (~20 MB; docs/performance.md, "Memory").
_HOMES = {
    "EditRequest": "edit",
    "EditResult": "edit",
    "ImageObject": "edit",
    "OutputObject": "edit",
    "UploadData": "edit",
    "ImageOperations": "operations",
    "EncodeSpec": "output",
    "OutputOptions": "output",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'retouch.contracts' has no attribute {name!r}")
    return getattr(importlib.import_module(f"retouch.contracts.{home}"), name)
