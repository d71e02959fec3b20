"""PatchMatch inpainting (``PyPatchMatch``, MIT): a classical patch search, no weights.

PatchMatch (Barnes et al., SIGGRAPH 2009) fills a hole with patches copied from the rest of the picture,
so it continues textures (foliage, fabric, wood, gravel) but never invents objects. The wheel carries its
own native library (OpenCV linked in), so nothing downloads at run time; it is in the ``ai`` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from retouch.models import INSTALL_HINT, ModelMissing, cached

__all__ = ["inpaint"]

#: Radius of the compared patches (7x7). 3 is what the library's examples use and follows fine grain;
#: at the reduced working size a patch already spans several source pixels' worth of structure.
PATCH_RADIUS = 3
#: Fixed seed: the same request gives the same picture on every worker and every retry.
SEED = 1234


def _load() -> Any:
    try:
        import patchmatch
    except ImportError:
        raise ModelMissing(
            f"resizing.fit.outpaint is not available: PyPatchMatch is missing ({INSTALL_HINT})."
        ) from None
    if not patchmatch.patchmatch_available:
        raise ModelMissing("resizing.fit.outpaint is not available: PyPatchMatch's native library did not load.")
    return patchmatch


def inpaint(
    rgb: npt.NDArray[np.uint8], hole: npt.NDArray[np.uint8], frozen: npt.NDArray[np.uint8]
) -> npt.NDArray[np.uint8]:
    """Fill ``hole`` (non-zero = fill) of an HxWx3 uint8 picture with patches from outside ``frozen``
    (non-zero = neither filled nor used as a source). Deterministic."""
    library = cached("patchmatch", _load)
    library.set_random_seed(SEED)
    out: npt.NDArray[np.uint8] = library.inpaint(rgb, hole, global_mask=frozen, patch_size=PATCH_RADIUS)
    return out
