"""The corrupt-JPEG rules on the corpus in tests/fixtures/jpeg_defects (made by make_jpeg_defects.py).

A file that loses pixels is refused, naming the defect, on every decode path (no resize, shrink-on-load,
crop); a file with a benign warning decodes whole, on the same paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyvips

from retouch.contracts.edit import UploadData
from retouch.errors import ImageError
from retouch.pipeline import run
from retouch.settings import Limits

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "jpeg_defects"
BAD = sorted((CORPUS / "bad").glob("*.jpg"))
BENIGN = sorted((CORPUS / "benign").glob("*.jpg"))
REFERENCE = CORPUS.parent / "chelsea.jpg"  # what every corpus file was made from

GEOMETRIES = {
    "as is": {},
    "shrink on load": {"resizing": {"width": 200}},
    "crop": {"resizing": {"width": 120, "height": 120, "fit": "crop"}},
}

DEFECTS = {
    "cut_mid_scan.jpg": "premature end of JPEG image",
    "cut_mid_scan_with_eoi.jpg": "premature end of data segment",
    "header_claims_more_rows.jpg": "premature end of data segment",
    "restart_markers_out_of_order.jpg": "instead of RST",
}


def _edit(data: bytes, operations: dict[str, object]) -> np.ndarray:
    request = UploadData.model_validate({"operations": operations, "output": {"format": "png"}})
    encoded = run(data, request.operations, request.output, Limits())
    return np.asarray(pyvips.Image.new_from_buffer(encoded.data, "").numpy(), dtype=np.float64)


def test_corpus_has_both_kinds() -> None:
    assert {p.name for p in BAD} == set(DEFECTS)
    assert len(BENIGN) >= 5


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=list(GEOMETRIES))
@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_lost_pixels_are_refused_naming_the_defect(path: Path, geometry: str) -> None:
    with pytest.raises(ImageError) as caught:
        _edit(path.read_bytes(), GEOMETRIES[geometry])
    assert caught.value.status == 422 and caught.value.error_type == "image"
    assert DEFECTS[path.name] in caught.value.public_message
    assert "truncated or corrupt" in caught.value.public_message


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=list(GEOMETRIES))
@pytest.mark.parametrize("path", BENIGN, ids=[p.name for p in BENIGN])
def test_benign_warnings_decode_every_pixel(path: Path, geometry: str) -> None:
    got = _edit(path.read_bytes(), GEOMETRIES[geometry])
    want = _edit(REFERENCE.read_bytes(), GEOMETRIES[geometry])
    assert got.shape == want.shape
    # The corpus is a re-encode of the reference at q90: close everywhere, and no grey band at the bottom
    # (the symptom of lost scan data: rows of exactly 128).
    mse = float(np.mean((got - want) ** 2))
    assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 30
    assert not np.all(got[-4:] == 128)
