"""What one unit of work is given and what it gives back: a :class:`Job`, an :class:`Outcome`.

Apart from :mod:`retouch.work.item` (which runs a job) so that the API process can make jobs and refuse what no
installation can do without loading the image stack: it imports only the contracts (~70 MB less in that
process, docs/performance.md, "Memory").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retouch.contracts.edit import EditResult, ImageObject
from retouch.contracts.operations import ImageOperations
from retouch.contracts.output import OutputOptions
from retouch.downloads import Fetched
from retouch.errors import OperationUnavailable, RetouchError
from retouch.formats import FORMATS

__all__ = ["Failure", "Job", "Outcome", "check_available", "describe"]

# Operations of the contract with no offline model and no honest classical stand-in: validated, then
# refused with a message that says so (docs/operations.md).
_NO_OFFLINE_MODEL = "no offline model for it ships with retouch"


def check_available(ops: ImageOperations) -> None:
    """Refuse, before any work, operations this installation cannot perform."""
    names: list[str] = []
    bg = ops.background
    if bg is not None and ((bg.remove and bg.remove.selective) or (bg.blur and bg.blur.selective)):
        names.append("background.selective (text-prompted object)")
    if names:
        raise OperationUnavailable(
            f"Operation {', '.join(names)} is not available: {_NO_OFFLINE_MODEL}.",
            details={name.split(" ")[0]: ["not available in this installation"] for name in names},
        )
    from retouch import models

    for operation in ops.ai_operations():
        models.require(operation)


def describe(ext: str, width: int, height: int) -> ImageObject:
    """A response's image object (``mps`` = width*height/1e6, unrounded)."""
    fmt = FORMATS[ext]
    return ImageObject(ext=ext, mps=width * height / 1e6, mime=fmt.mime, format=fmt.name, width=width, height=height)


@dataclass(frozen=True)
class Job:
    """One image to edit, and where its result goes."""

    account_id: int
    operations: ImageOperations
    output: OutputOptions
    #: The input as the request names it (an http(s) URL or storage://...); None for an upload or a local file.
    source: str | None = None
    #: The input when it is in hand already: an upload's or a download's handoff file, a local file, its bytes,
    #: or why its download failed. None: read ``source`` here.
    data: Fetched = None
    #: The input's file name when ``data`` is given (the output's name is made from it).
    name: str = ""
    #: The output's name, when the batch listing chose it (unique within the task); None: from the input's name.
    out_name: str | None = None
    #: Write the result to this local file instead of a storage or the tmp store.
    out_file: Path | None = None
    #: The style reference image's bytes when in hand already (``retouch edit`` reads a local file); None: read
    #: ``generative.style_transfer.style_reference_image`` here, like the input.
    style_reference: bytes | None = None
    #: The async or batch task the job is an item of (None: a sync edit, an upload, the CLI): what the style
    #: reference is cached by in the worker (``item._read_reference``).
    task_id: int | None = None
    #: The ids the worker's log lines carry (the API request's id and account).
    request_id: str | None = None
    account: str | None = None
    #: The API request's span context (W3C headers) when tracing is on: the worker's spans continue its trace.
    trace: dict[str, str] | None = None


@dataclass(frozen=True)
class Failure:
    """Why a job produced no output. ``error`` None: a bug (logged; the user sees only that it was internal)."""

    message: str
    error: RetouchError | None = None
    #: The input, when its header could be read: a failed batch item still says what it was given.
    input: ImageObject | None = None

    def raise_(self) -> None:
        raise self.error if self.error is not None else RetouchError(self.message)


Outcome = EditResult | Failure
