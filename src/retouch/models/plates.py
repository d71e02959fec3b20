"""Licence-plate finder for ``privacy.blur_car_plate``.

No permissively licensed, purpose-trained plate detector ships in a registry package (docs/ai.md,
"Why these models"), so the default finds *text that looks like a plate*: PP-OCRv4 text detection and recognition
from ``rapidocr-onnxruntime`` (Apache-2.0 code and weights), run through rapidocr's own pre/post-processing
on the CPU provider with :func:`retouch.models.threads` intra-op threads, then :func:`looks_like_plate`.

The plate rule (on the recognised text of one detected text line):

* Normalise: drop spaces and the separators ``. - · • : | _ / ' "``; upper-case.
* 4 to 10 characters remain, all alphanumeric (Unicode: ``京A12345`` passes), and the text line's
  rotated box has a plate-like aspect (long side / short side 1.5 to 8);
* and either the text has at least one digit and one letter (``AB 123 CD``, ``KX 4821``, ``7ABC123``),
  or it has 5+ characters in a box of aspect 2 to 6 (letters-only vanity plates like ``WATTUP``, and
  digits-only plates like ``123456``).

Known misses: vanity plates of 4 letters or fewer without a digit (``OPEN`` and ``SALE`` are left alone
by the same rule); two-line plates, whose lines are read separately and are often too short alone;
plates the recogniser reads below a 0.5 score (very small, blurred, dirty or strongly slanted ones);
plates smaller than roughly 10 px of text height after rapidocr shrinks the image to 2000 px on its
long side (so about 20 px of text height in a 4000 px photo). Known over-blurring: any other 5-to-8
letter word or 5+ digit number on a single line (shop signs, prices, phone numbers) is blurred too,
which is the safe side for a privacy operation.

Each kept text box is widened to cover the plate frame (+40 % along the text, +60 % across it, in the
text's own rotation), then turned into an axis-aligned ``(x, y, w, h)`` clipped to the image.

Operator override: ``RETOUCH_MODEL_PLATES=/path/plates.onnx`` replaces the OCR with a YOLO-style plate
detector (e.g. an Ultralytics YOLOv8/v11 detect or seg export; mind the AGPL of Ultralytics-trained
weights). Expected I/O:

* input 0: ``[1, 3, H, W]`` float32 or float16, RGB scaled to 0..1, letterboxed (aspect kept, centred,
  padded with grey 114); ``H, W`` are read from the model, 640×640 if they are symbolic;
* output 0: ``[1, 4 + K (+ M), N]`` (or transposed ``[1, N, 4 + K (+ M)]``): per candidate ``cx, cy, w, h``
  in input pixels, then K class scores (already sigmoid-ed); every class counts as a plate. A second
  rank-4 output ``[1, M, h, w]`` (mask prototypes of a seg model) means the last M rows are mask
  coefficients and are ignored. Candidates scoring >= 0.4 are kept after NMS at IoU 0.5, and each box is
  widened by 10 % per side.
"""

from __future__ import annotations

import importlib
import importlib.resources
import math
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retouch.models import ModelMissing, cached, make_room, model_file, onnx_session, release_memory, threads

__all__ = [
    "DETECT_SIDE",
    "OPERATION",
    "Box",
    "decode_yolo",
    "dedupe",
    "find_plates",
    "load",
    "looks_like_plate",
    "read_text",
    "views",
    "widen",
]

OPERATION = "privacy.blur_car_plate"
PACKAGE = "rapidocr_onnxruntime"
DET = "models/ch_PP-OCRv4_det_infer.onnx"
REC = "models/ch_PP-OCRv4_rec_infer.onnx"

#: (x, y, w, h) in pixels of the image given to find_plates.
Box = tuple[int, int, int, int]

#: Long side, in px, of what the detector is given (rapidocr's own ``max_side_len``): callers shrink
#: larger images to this first, so the full-resolution array never reaches the model.
DETECT_SIDE = 2000
TEXT_SCORE = 0.5  # rapidocr's default recognition-score floor (4/4 real plates read in the survey)
LINE_ASPECT = (1.5, 8.0)  # long/short side of the rotated text box: any plate line
WORD_ASPECT = (2.0, 6.0)  # the letters-only / digits-only alternative
WIDEN_ALONG, WIDEN_ACROSS = 1.4, 1.6  # text box -> plate frame
YOLO_SCORE, YOLO_IOU, YOLO_WIDEN = 0.4, 0.5, 1.2
#: Tiled detection (see ``views``): tile area limit, overlap between tiles, overview long side, in px.
#: 1.2 MP, not 1.7: a worker that had run removals before peaked at 615-741 MB on a 12 MP plate job
#: with 1.7 MP tiles (budget 700), 540-560 MB with these; a 12 MP image costs 4 tiles instead of 2
#: (12 MP plate blurring, bench_ai: 1.25 -> 1.43 s wall).
TILE_AREA = 1_200_000
TILE_OVERLAP = 400
OVERVIEW_SIDE = 1000

_SEPARATORS = re.compile(r"[\s.\-·•:|_/'\"]+")

Detector = Callable[[np.ndarray], list[Box]]


def find_plates(rgb: np.ndarray) -> list[Box]:
    """Plates in an 8-bit RGB array (H×W×3), as widened, clipped ``(x, y, w, h)`` boxes."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"find_plates wants an H×W×3 uint8 array, not {rgb.dtype} {rgb.shape}")
    return load()(np.ascontiguousarray(rgb))


def load() -> Detector:
    """The process-wide detector: PP-OCRv4 + the plate rule, or the operator's YOLO model.

    Raises :class:`ModelMissing` (422) when the files or the runtime are not installed; call it before
    decoding to refuse a request early."""
    det = model_file("PLATES", PACKAGE, DET, OPERATION)
    if _is_packaged(det):
        return cached("ppocr", lambda: _OcrPlates(det, model_file("PPOCR_REC", PACKAGE, REC, OPERATION)))
    return cached(f"plates-yolo:{det}", lambda: _YoloPlates(det))


def read_text(rgb: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
    """Every text line the OCR reads: (4×2 float32 quad, text, score). For tests and diagnostics."""
    det = model_file("PPOCR_DET", PACKAGE, DET, OPERATION)
    rec = model_file("PPOCR_REC", PACKAGE, REC, OPERATION)
    engine: _OcrPlates = cached("ppocr" if _is_packaged(det) else f"ppocr:{det}", lambda: _OcrPlates(det, rec))
    return engine.read(np.ascontiguousarray(rgb))


def _is_packaged(path: Path) -> bool:
    try:
        packaged = Path(str(importlib.resources.files(PACKAGE) / DET))
    except ImportError:
        return False
    return packaged.is_file() and path.resolve() == packaged.resolve()


# ------------------------------------------------------------------------------------ the plate rule


def _rect(quad: np.ndarray) -> tuple[tuple[float, float], tuple[float, float], float]:
    import cv2

    (cx, cy), (w, h), angle = cv2.minAreaRect(np.asarray(quad, dtype=np.float32).reshape(-1, 2))
    return (float(cx), float(cy)), (float(w), float(h)), float(angle)


def _aspect(quad: np.ndarray) -> float:
    _, (w, h), _ = _rect(quad)
    return max(w, h) / max(min(w, h), 1.0)


def looks_like_plate(text: str, quad: np.ndarray) -> bool:
    """The plate rule of the module docstring, on one recognised text line and its box."""
    chars = _SEPARATORS.sub("", text).upper()
    if not 4 <= len(chars) <= 10 or not chars.isalnum():
        return False
    aspect = _aspect(quad)
    if not LINE_ASPECT[0] <= aspect <= LINE_ASPECT[1]:
        return False
    mixed = any(c.isdigit() for c in chars) and any(c.isalpha() for c in chars)
    return mixed or (len(chars) >= 5 and WORD_ASPECT[0] <= aspect <= WORD_ASPECT[1])


def widen(quad: np.ndarray, width: int, height: int, along: float = WIDEN_ALONG, across: float = WIDEN_ACROSS) -> Box:
    """Grow a (rotated) text box in its own frame, then take its axis-aligned bounds, clipped."""
    import cv2

    centre, (w, h), angle = _rect(quad)
    size = (w * along, h * across) if w >= h else (w * across, h * along)  # the long side is the text
    pts = cv2.boxPoints((centre, size, angle))
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(width, int(x1)), min(height, int(y1))
    return (x0, y0, max(0, x1 - x0), max(0, y1 - y0))


# ------------------------------------------------------------------------------------ PP-OCRv4


class _OcrPlates:
    def __init__(self, det: Path, rec: Path) -> None:
        try:
            rapidocr = importlib.import_module(PACKAGE)  # untyped: keep mypy out of it
        except ImportError as exc:
            raise ModelMissing(
                f"{OPERATION} is not available: rapidocr-onnxruntime cannot be imported ({exc.name} is missing)."
            ) from None
        n = min(threads(), os.cpu_count() or 1)  # rapidocr ignores (-> all cores) a count above the cores
        self._engine = rapidocr.RapidOCR(
            det_model_path=str(det),
            rec_model_path=str(rec),
            text_score=TEXT_SCORE,
            intra_op_num_threads=n,
            inter_op_num_threads=1,
        )
        _own_sessions(self._engine, det, rec)
        # rapidocr keeps per-call state on the engine (and mutates it when given kwargs): one call at a time.
        self._lock = threading.Lock()

    def read(self, rgb: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        make_room()  # a held u2netp arena goes first: its memory must not stack on the detector's peak
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # PaddleOCR models are trained on BGR
        with self._lock:
            result, _ = self._engine(bgr, use_cls=False)  # no 180° classifier: the pipeline is upright
        return [(np.asarray(quad, dtype=np.float32), str(text), float(score)) for quad, text, score in result or []]

    def __call__(self, rgb: np.ndarray) -> list[Box]:
        height, width = rgb.shape[:2]
        boxes: list[Box] = []
        for x, y, scale, view in views(rgb):
            for quad in self._plates(view):
                full = quad / scale + np.array([x, y], dtype=np.float32)
                if scale < 1.0:
                    # Seen in the overview, where the text box is a few px off at full size (a 200 px
                    # plate's box fell 4 % short): measure it again on a full-detail crop around it.
                    full = self._refine(rgb, full)
                boxes.append(widen(full, width, height))
        return dedupe([b for b in boxes if b[2] > 0 and b[3] > 0])

    def _plates(self, view: np.ndarray) -> list[np.ndarray]:
        """Quads of the text lines in ``view`` that pass the plate rule (which is scale-free)."""
        found = [quad for quad, text, _ in self.read(view) if looks_like_plate(text, quad)]
        release_memory()
        return found

    def _refine(self, rgb: np.ndarray, quad: np.ndarray) -> np.ndarray:
        """The plate quad re-read on a full-detail crop around ``quad`` (half its size again on each
        side), shrunk to ``TILE_AREA`` if need be; ``quad`` itself when the crop finds nothing."""
        height, width = rgb.shape[:2]
        (x0, y0), (x1, y1) = quad.min(axis=0), quad.max(axis=0)
        mx, my = (x1 - x0) / 2, (y1 - y0) / 2
        cx0, cy0 = max(0, math.floor(x0 - mx)), max(0, math.floor(y0 - my))
        cx1, cy1 = min(width, math.ceil(x1 + mx)), min(height, math.ceil(y1 + my))
        crop = rgb[cy0:cy1, cx0:cx1]
        scale = min(1.0, math.sqrt(TILE_AREA / max(1, crop.shape[0] * crop.shape[1])))
        if scale < 1.0:
            import cv2

            size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
            crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        found = self._plates(np.ascontiguousarray(crop))
        if not found:
            return quad
        best = max(found, key=lambda q: float(np.ptp(q[:, 0]) * np.ptp(q[:, 1])))
        refined: np.ndarray = best / scale + np.array([cx0, cy0], dtype=np.float32)
        return refined


def views(rgb: np.ndarray) -> list[tuple[int, int, float, np.ndarray]]:
    """What the text detector runs on: ``(x, y, scale, array)``, with ``array`` = ``rgb[y:, x:]`` x ``scale``.

    The detector's working memory grows with the pixels it is given (PP-OCRv4 det: ~190 MB per
    megapixel; one 2000x1333 pass peaked at ~500 MB over the loaded model), so an image above
    ``TILE_AREA`` is read as a grid of overlapping tiles at full detail, plus one ``OVERVIEW_SIDE``
    overview. A plate up to ``TILE_OVERLAP`` px long lies whole inside some tile; a longer one is
    at least ``OVERVIEW_SIDE / DETECT_SIDE`` x that in the overview, large enough to read. The grid
    is the one with the least total area whose tiles fit ``TILE_AREA``.
    """
    height, width = rgb.shape[:2]
    if height * width <= TILE_AREA:
        return [(0, 0, 1.0, rgb)]

    def side(length: int, count: int) -> int:
        return length if count == 1 else min(length, math.ceil((length + (count - 1) * TILE_OVERLAP) / count))

    grids = [(nx, ny) for nx in range(1, 9) for ny in range(1, 9) if side(width, nx) * side(height, ny) <= TILE_AREA]
    nx, ny = min(grids, key=lambda g: (g[0] * side(width, g[0]) * g[1] * side(height, g[1]), g))
    tw, th = side(width, nx), side(height, ny)
    out: list[tuple[int, int, float, np.ndarray]] = []
    for j in range(ny):
        for i in range(nx):
            x = 0 if nx == 1 else round(i * (width - tw) / (nx - 1))
            y = 0 if ny == 1 else round(j * (height - th) / (ny - 1))
            out.append((x, y, 1.0, rgb[y : y + th, x : x + tw]))
    import cv2

    scale = min(1.0, OVERVIEW_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    out.append((0, 0, scale, cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)))
    return out


def dedupe(boxes: list[Box]) -> list[Box]:
    """Drop boxes lying mostly (>= 80 %) inside a larger kept one: the same plate seen by two views."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b[2] * b[3]):
        x, y, w, h = box
        inside = any(
            max(0, min(x + w, kx + kw) - max(x, kx)) * max(0, min(y + h, ky + kh) - max(y, ky)) >= 0.8 * w * h
            for kx, ky, kw, kh in kept
        )
        if not inside:
            kept.append(box)
    return kept


def _own_sessions(engine: object, det: Path, rec: Path) -> None:
    """Swap rapidocr's onnxruntime sessions for :func:`onnx_session`'s: threads that sleep instead of
    spinning (two workers with two spinning threads each on 2 cores lost 25 % of plate throughput)
    and no memory arena. rapidocr 1.4 builds its sessions without a way to pass these options; if a
    later version moves the attributes, its own sessions are kept and only the tuning is lost."""
    try:
        det_holder = engine.text_det.infer  # type: ignore[attr-defined]
        rec_holder = engine.text_rec.session  # type: ignore[attr-defined]
        if not (hasattr(det_holder, "session") and hasattr(rec_holder, "session")):
            return
    except AttributeError:
        return
    det_holder.session = onnx_session(det, OPERATION)
    rec_holder.session = onnx_session(rec, OPERATION)


# ------------------------------------------------------------------------------------ YOLO override


class _YoloPlates:
    def __init__(self, path: Path) -> None:
        self._session = onnx_session(path, OPERATION)
        inp = self._session.get_inputs()[0]
        shape = list(inp.shape)
        h, w = (shape[2], shape[3]) if len(shape) == 4 else (None, None)
        self._size = (h if isinstance(h, int) else 640, w if isinstance(w, int) else 640)
        self._name = inp.name
        self._dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        outputs = self._session.get_outputs()
        self._masks = 0
        if len(outputs) > 1 and len(outputs[1].shape) == 4 and isinstance(outputs[1].shape[1], int):
            self._masks = outputs[1].shape[1]

    def __call__(self, rgb: np.ndarray) -> list[Box]:
        import cv2

        height, width = rgb.shape[:2]
        th, tw = self._size
        scale = min(th / height, tw / width)
        nh, nw = max(1, round(height * scale)), max(1, round(width * scale))
        top, left = (th - nh) // 2, (tw - nw) // 2
        canvas = np.full((th, tw, 3), 114, dtype=np.uint8)
        canvas[top : top + nh, left : left + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        blob = (canvas.transpose(2, 0, 1)[None] / 255.0).astype(self._dtype)
        make_room()
        pred = self._session.run(None, {self._name: blob})[0]
        found = decode_yolo(np.asarray(pred, dtype=np.float32), self._masks)
        boxes: list[Box] = []
        for cx, cy, bw, bh in found:
            quad = np.array(
                [
                    [cx - bw / 2, cy - bh / 2],
                    [cx + bw / 2, cy - bh / 2],
                    [cx + bw / 2, cy + bh / 2],
                    [cx - bw / 2, cy + bh / 2],
                ],
                dtype=np.float32,
            )
            quad = (quad - [left, top]) / scale
            box = widen(quad, width, height, YOLO_WIDEN, YOLO_WIDEN)
            if box[2] > 0 and box[3] > 0:
                boxes.append(box)
        return boxes


def decode_yolo(
    pred: np.ndarray, masks: int = 0, score: float = YOLO_SCORE, iou: float = YOLO_IOU
) -> list[tuple[float, float, float, float]]:
    """Ultralytics-style raw output ``[1, 4+K(+M), N]`` (or ``[1, N, 4+K(+M)]``) -> NMS-ed ``(cx, cy, w, h)``."""
    import cv2

    rows = pred.reshape(pred.shape[-2], pred.shape[-1])
    if rows.shape[0] > rows.shape[1]:  # [N, C]: candidates outnumber channels in any real export
        rows = rows.T
    classes = rows[4 : rows.shape[0] - masks]
    if rows.shape[0] < 5 or classes.shape[0] < 1:
        raise ModelMissing(
            f"{OPERATION} is not available: the plate model's output {list(pred.shape)} is not YOLO-style."
        )
    scores = classes.max(axis=0)
    keep = np.flatnonzero(scores >= score)
    if keep.size == 0:
        return []
    cxcywh = rows[:4, keep].T
    xywh = [[float(cx - w / 2), float(cy - h / 2), float(w), float(h)] for cx, cy, w, h in cxcywh]
    chosen = cv2.dnn.NMSBoxes(xywh, [float(s) for s in scores[keep]], score, iou)
    found: list[tuple[float, float, float, float]] = []
    for i in np.asarray(chosen, dtype=int).reshape(-1):
        cx, cy, w, h = (float(v) for v in cxcywh[i])
        found.append((cx, cy, w, h))
    return found
