"""Wire models of the Claid image-editing contract. Never imports pyvips."""

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
