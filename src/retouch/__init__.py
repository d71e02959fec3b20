"""retouch: self-hosted image editing with the Claid.ai API contract."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from retouch.errors import *  # noqa: F403
from retouch.errors import __all__ as _errors_all

# httpx imports its command-line client (click, rich, pygments: ~5 MB) whenever those happen to be installed, and
# typer installs them; retouch never runs httpx's CLI, and two long-lived processes (the API, the download process)
# import httpx. httpx itself handles an ImportError here (its `main` then says to install httpx[cli]), so this
# only keeps that import out (docs/performance.md, "Memory"). Set before any of our modules imports httpx (the
# import above does not).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

if TYPE_CHECKING:  # the image stack loads on the first edit(), not on `import retouch`
    from retouch.contracts import EditRequest, ImageOperations, OutputOptions
    from retouch.pipeline import Encoded

__all__ = ["__version__", "edit", "EditRequest", "ImageOperations", "OutputOptions", *_errors_all]


def edit(
    data: bytes,
    operations: dict[str, Any] | None = None,
    output: dict[str, Any] | str | None = None,
    style_reference: bytes | None = None,
) -> Encoded:
    """Edit image bytes in this process with the contract's operations and output (a dict, or a storage://
    destination alone); returns :class:`retouch.pipeline.Encoded`: ``.data`` (the encoded bytes), ``.format``,
    ``.width``, ``.height``, ``.source`` (the input as read) and ``.frames_dropped``. ``style_reference``: the bytes
    of the style image for ``generative.style_transfer`` (its URL in the operations is not fetched here)."""
    from retouch.contracts.edit import UploadData
    from retouch.contracts.envelopes import validate
    from retouch.pipeline import run
    from retouch.settings import Settings
    from retouch.work.item import check_available

    global _limits
    request = validate(UploadData, {"operations": operations or {}, "output": output or {}})
    if _limits is None:
        # Read once: Settings() parses the environment, ~2 ms per call - 4 % of a 12 MP resize.
        _limits = Settings().limits
    check_available(request.operations)
    return run(data, request.operations, request.output, _limits, style_reference=style_reference)


_limits: Any = None


_CONTRACTS = ("EditRequest", "ImageOperations", "OutputOptions")


def __getattr__(name: str) -> Any:
    # The contract's models (pydantic: ~20 MB once built) load when first asked for, not on `import retouch`:
    # every process imports this package, and the download process never validates a request
    # (docs/performance.md, "Memory").
    if name in _CONTRACTS:
        from retouch import contracts

        return getattr(contracts, name)
    raise AttributeError(f"module 'retouch' has no attribute {name!r}")
