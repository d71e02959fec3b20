"""Hostile images through real HTTP: bombs by pixels, frames, pages and zlib; corrupt headers and scans; formats
we do not decode. Each is answered with a 4xx in well under a second, and the workers do not grow."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvips

from tests.conftest import LiveApp, fixture_bytes, make_settings

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "jpeg_defects"


def _gif_frames(width: int, height: int, frames: int) -> bytes:
    """A GIF whose logical screen is width x height with ``frames`` 1x1 frames: tiny, and width*height*frames
    pixels to a decoder that composites every frame on the screen."""
    out = bytearray(b"GIF89a" + struct.pack("<HH", width, height) + bytes([0x80, 0, 0]) + b"\0\0\0\xff\xff\xff")
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for _ in range(frames):
        out += b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # graphic control: 10 ms
        out += b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00" + b"\x02\x02\x44\x01\x00"  # one pixel, LZW
    return bytes(out + b"\x3b")


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = fixture_bytes("coffee.jpg")
    sof = data.find(b"\xff\xc0")
    return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


def _png_cut_with_iend() -> bytes:
    """A PNG cut inside its image data, with the end chunk appended: the PNG twin of the grey-rows JPEG."""
    data = fixture_bytes("photo.png")
    return data[: len(data) // 2] + b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _corpus() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, a part of the expected message)."""
    black = pyvips.Image.black(12000, 12000)
    return {
        "pixels: jpeg header 60000x60000": (_jpeg_claiming(60000, 60000), "megapixels"),
        "pixels: png header 100000x100000": (fixture_bytes("huge_header.png"), "megapixels"),
        "zlib: 144 MP of black in 140 KB of png": (black.pngsave_buffer(compression=9), "megapixels"),
        "frames: gif of 120 frames on a 1000x1000 screen": (_gif_frames(1000, 1000, 120), "120 frames"),
        "pages: tiff of 120 pages of 1000x1000": (
            pyvips.Image.black(1000, 120_000).tiffsave_buffer(compression="deflate", page_height=1000),
            "megapixels",
        ),
        "corrupt: jpeg of garbage after the header": (fixture_bytes("garbage.jpg"), "could not be decoded"),
        "corrupt: truncated jpeg": (fixture_bytes("truncated.jpg"), "truncated or corrupt"),
        "corrupt: jpeg cut mid-scan, end marker appended": (
            (CORPUS / "bad" / "cut_mid_scan_with_eoi.jpg").read_bytes(),
            "premature end of data segment",
        ),
        "corrupt: jpeg header 0 rows": (_jpeg_claiming(600, 0), ""),
        "corrupt: png cut mid-data, end chunk appended": (_png_cut_with_iend(), ""),
        "format: svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="99999" height="99999"/>', "not a supported"),
        "format: pdf": (b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "not a supported"),
        "format: psd": (b"8BPS\x00\x01" + b"\x00" * 64, "not a supported"),
        "format: html": (fixture_bytes("page.html"), "not a supported"),
        "format: empty": (b"", "empty"),
    }


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    live = LiveApp(make_settings(tmp_path_factory.mktemp("bombs"), workers=2))
    yield live
    live.close()


def _worker_rss_mb(app: LiveApp) -> float:
    total = 0
    for pid in app.service.pool.pids():
        with open(f"/proc/{pid}/status") as status:
            total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return total / 1024


def test_hostile_images_are_refused_fast_and_cost_no_memory(app: LiveApp) -> None:
    corpus = _corpus()
    with app.client() as client:
        for _ in range(4):  # warm both workers: their first image loads libvips' codecs
            response = client.post("/v1/image/edit/upload", files={"file": ("w.jpg", fixture_bytes("coffee.jpg"))})
            assert response.status_code == 200
        before = _worker_rss_mb(app)
        slowest = 0.0
        for _round in range(3):
            for name, (data, message) in corpus.items():
                started = time.monotonic()
                response = client.post(
                    "/v1/image/edit/upload",
                    files={"file": ("x", data)},
                    data={"data": '{"operations": {"resizing": {"width": 500}}}'},
                )
                took = time.monotonic() - started
                slowest = max(slowest, took)
                assert response.status_code == 422, (name, response.text)
                body = response.json()
                assert body["error_type"] == "image", (name, body)
                assert message in body["error_message"], (name, body)
                assert took < 0.5, (name, took)
        grown = _worker_rss_mb(app) - before
    print(f"slowest refusal {slowest * 1000:.0f} ms; workers' RSS {before:.0f} MB, grown {grown:+.0f} MB")
    assert grown < 64, grown
