"""Bad input never gets a 500: every case answers the right 4xx in the contract's envelope."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ImageServer, LiveApp, fixture_bytes, make_settings

OK_URL = "@coffee.jpg"  # "@name" = the loopback image server's URL for a fixture


@dataclass
class Case:
    name: str
    status: int
    error_type: str
    message: str  # a part of error_message that tells the user what is wrong
    body: Any = None  # JSON body for /image/edit
    upload: tuple[str, bytes] | None = None  # (file name, bytes) for /image/edit/upload
    data: str | None = None  # the upload's data part
    raw: bytes | None = None  # a raw body for /image/edit
    detail_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def ops(operations: dict[str, Any], output: Any = None, input_url: str = OK_URL) -> dict[str, Any]:
    body: dict[str, Any] = {"input": input_url, "operations": operations}
    if output is not None:
        body["output"] = output
    return body


CASES = [
    # --- the image itself
    Case("truncated jpeg", 422, "image", "truncated or corrupt", upload=("t.jpg", fixture_bytes("truncated.jpg"))),
    Case("zero bytes", 422, "image", "empty", upload=("e.jpg", b"")),
    Case("html page by url", 422, "image", "not a supported image", body=ops({}, input_url="@page.html")),
    Case("text upload", 422, "image", "not a supported image", upload=("a.txt", fixture_bytes("not_an_image.txt"))),
    Case(
        "garbage after jpeg marker",
        422,
        "image",
        "could not be decoded",
        upload=("g.jpg", fixture_bytes("garbage.jpg")),
    ),
    Case(
        "huge dimension png header", 422, "image", "100000x100000", upload=("h.png", fixture_bytes("huge_header.png"))
    ),
    Case("output over the megapixel limit", 422, "image", "output limit", body=ops({"resizing": {"width": "5000%"}})),
    # --- the JSON
    Case(
        "unknown operation key",
        422,
        "validation",
        "unknown field",
        body=ops({"sharpen": 5}),
        detail_key="operations.sharpen",
    ),
    Case("unknown top-level key", 422, "validation", "unknown field", body={**ops({}), "extra": 1}, detail_key="extra"),
    Case(
        "width wrong type",
        422,
        "validation",
        "whole number of pixels",
        body=ops({"resizing": {"width": "abc"}}),
        detail_key="operations.resizing.width",
    ),
    Case("width boolean", 422, "validation", "whole number", body=ops({"resizing": {"width": True}})),
    Case("width zero", 422, "validation", "at least 1", body=ops({"resizing": {"width": 0}})),
    Case(
        "both sides auto",
        422,
        "validation",
        "cannot both be",
        body=ops({"resizing": {"width": "auto", "height": "auto"}}),
    ),
    Case(
        "mixed percent and px", 422, "validation", "percentage", body=ops({"resizing": {"width": "50%", "height": 200}})
    ),
    Case("unknown fit", 422, "validation", "fit", body=ops({"resizing": {"width": 10, "fit": "stretch"}})),
    Case(
        "exposure out of range",
        422,
        "validation",
        "less than or equal to 100",
        body=ops({"adjustments": {"exposure": 300}}),
        detail_key="operations.adjustments.exposure",
    ),
    Case(
        "sharpness negative",
        422,
        "validation",
        "greater than or equal to 0",
        body=ops({"adjustments": {"sharpness": -1}}),
    ),
    Case(
        "padding three values",
        422,
        "validation",
        "1, 2 or 4 values",
        body=ops({"padding": "10px 5px 3px"}),
        detail_key="operations.padding",
    ),
    Case("padding words", 422, "validation", "px or %", body=ops({"padding": "wide"})),
    Case("padding over half", 422, "validation", "below 50%", body=ops({"padding": "60%"})),
    Case("padding number", 422, "validation", "expected a string", body=ops({"padding": 10})),
    Case("bad colour", 422, "validation", "#rrggbb", body=ops({"background": {"color": "red"}})),
    Case("unknown output format", 422, "validation", "format", body=ops({}, {"format": "gif"})),
    Case(
        "bad webp compression",
        422,
        "validation",
        "lossy or lossless",
        body=ops({}, {"format": {"type": "webp", "compression": "zip"}}),
        detail_key="output.format.compression",
    ),
    Case("quality over 100", 422, "validation", "100", body=ops({}, {"format": {"type": "jpeg", "quality": 101}})),
    Case("dpi zero", 422, "validation", "dpi", body=ops({}, {"format": "jpeg", "metadata": {"dpi": 0}})),
    Case(
        "cmyk png",
        422,
        "validation",
        "CMYK needs format jpeg or tiff",
        body=ops({}, {"format": "png", "metadata": {"color_space": "CMYK"}}),
        detail_key="output.metadata",
    ),
    # Exact paths inside unions and across groups, not the parent.
    Case(
        "upscale object with a bad version",
        422,
        "validation",
        "version",
        body=ops({"restorations": {"upscale": {"type": "photo", "version": 9}}}),
        extra={"only_details": ["operations.restorations.upscale.version"]},
    ),
    Case(
        "style transfer with background removal",
        422,
        "validation",
        "cannot be combined",
        body=ops(
            {
                "generative": {"style_transfer": {"style_reference_image": "@astronaut.png"}},
                "background": {"remove": True},
            }
        ),
        extra={"only_details": ["operations.generative"]},
    ),
    # A well-formed request this image cannot be served with: an image error, not a validation one.
    Case(
        "padding leaves no room",
        422,
        "image",
        "leaves no room",
        body=ops({"padding": "400px"}),
        detail_key="operations.padding",
    ),
    Case("missing input", 422, "validation", "field required", body={"operations": {}}, detail_key="input"),
    Case("ftp input", 422, "validation", "http(s)", body=ops({}, input_url="ftp://example.com/a.jpg")),
    Case("body is a list", 422, "validation", "", body=[1, 2]),
    Case("invalid json", 400, "validation", "not valid JSON", raw=b'{"input": '),
    Case(
        "upload data not json",
        422,
        "validation",
        "not valid JSON",
        upload=("a.jpg", fixture_bytes("coffee.jpg")),
        data="{oops",
    ),
    Case(
        "upload data unknown key",
        422,
        "validation",
        "unknown field",
        upload=("a.jpg", fixture_bytes("coffee.jpg")),
        data='{"operations": {}, "input": "x"}',
    ),
    # --- operations this installation cannot do yet
    Case(
        "selective removal (no text-grounded model)",
        422,
        "image",
        "background.selective",
        body=ops({"background": {"remove": {"selective": {"object_to_keep": "the red car"}}}}),
    ),
    # --- the style reference image: fetched like an input, every problem named at its field
    Case(
        "style reference 404",
        422,
        "image",
        "404",
        body=ops({"generative": {"style_transfer": {"style_reference_image": "@missing.jpg"}}}),
        detail_key="operations.generative.style_transfer.style_reference_image",
    ),
    Case(
        "style reference not an image",
        422,
        "image",
        "not a supported image",
        body=ops({"generative": {"style_transfer": {"style_reference_image": "@not_an_image.txt"}}}),
        detail_key="operations.generative.style_transfer.style_reference_image",
    ),
    Case(
        "style reference on a private address",
        422,
        "image",
        "private",
        body=ops({"generative": {"style_transfer": {"style_reference_image": "http://10.0.0.1/style.jpg"}}}),
        detail_key="operations.generative.style_transfer.style_reference_image",
    ),
    # A textured border (the coffee table) cannot be continued classically to three times the picture's width.
    Case(
        "outpaint too far",
        422,
        "image",
        "textured",
        body=ops({"resizing": {"width": 1800, "height": 400, "fit": "outpaint"}}),
    ),
    Case(
        "outpaint_by larger than the output",
        422,
        "validation",
        "leaves no room",
        body=ops({"resizing": {"width": 100, "height": 100, "fit": {"type": "outpaint", "outpaint_by": "200px"}}}),
    ),
    # --- fetching
    Case("private address url", 400, "web", "private", body=ops({}, input_url="http://10.0.0.1/a.jpg")),
    Case(
        "metadata service url",
        400,
        "web",
        "not allowed",
        body=ops({}, input_url="http://169.254.169.254/latest/meta-data"),
    ),
    Case("redirect to private address", 400, "web", "not allowed", body=ops({}, input_url="@redirect-private")),
    Case("url 404", 400, "web", "404", body=ops({}, input_url="@missing.jpg")),
    Case("oversize download", 422, "image", "input size limit", body=ops({}, input_url="@big/3000000")),
    Case(
        "unknown storage destination",
        400,
        "storage",
        "No storage named 'bucket'",
        body=ops({}, "storage://bucket/out/"),
    ),
    Case("unknown storage input", 400, "storage", "No storage named", body=ops({}, input_url="storage://nope/a.jpg")),
    Case("storage folder as sync input", 400, "storage", "is a folder", body=ops({}, input_url="storage://local/in/")),
    Case(
        "missing storage object", 400, "storage", "does not exist", body=ops({}, input_url="storage://local/none.jpg")
    ),
    Case("storage path escaping", 422, "validation", "'..'", body=ops({}, input_url="storage://local/../etc/passwd")),
    Case("destination not storage", 422, "validation", "storage://", body=ops({}, {"destination": "https://x/y.jpg"})),
]


@pytest.fixture(scope="module")
def strict_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    # Small byte limit for the oversize cases; loopback allowed only on the fixture server's port.
    app = LiveApp(make_settings(tmp_path_factory.mktemp("strict"), max_input_bytes=2_000_000))
    app.add_local_storage("local")
    yield app
    app.close()


def _resolve(value: Any, server: ImageServer) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        return server.url(value[1:])
    if isinstance(value, dict):
        return {k: _resolve(v, server) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, strict_app: LiveApp, image_server: ImageServer) -> None:
    image_server.redirect("redirect-private", "http://10.1.2.3/secret.jpg")
    with strict_app.client() as client:
        if case.upload is not None:
            form = {"data": case.data} if case.data is not None else None
            response = client.post("/v1/image/edit/upload", files={"file": case.upload}, data=form)
        elif case.raw is not None:
            response = client.post("/v1/image/edit", content=case.raw, headers={"content-type": "application/json"})
        else:
            response = client.post("/v1/image/edit", json=_resolve(case.body, image_server))
    assert response.status_code == case.status, response.text
    body = response.json()
    assert set(body) == {"error_code", "error_type", "error_message", "error_details"}
    assert body["error_type"] == case.error_type, body
    assert case.message in body["error_message"], body
    if case.error_type == "validation" and case.status == 422:
        assert body["error_code"] == "9000"
    if case.detail_key:
        assert case.detail_key in body["error_details"], body
    if "only_details" in case.extra:
        assert list(body["error_details"]) == case.extra["only_details"], body


def test_one_pixel_image_is_fine(strict_app: LiveApp) -> None:
    with strict_app.client() as client:
        response = client.post("/v1/image/edit/upload", files={"file": ("p.png", fixture_bytes("tiny_1x1.png"))})
    assert response.status_code == 200, response.text


def test_upload_over_byte_limit(tmp_path: Path) -> None:
    app = LiveApp(make_settings(tmp_path, max_input_bytes=50_000, workers=1))
    try:
        with app.client() as client:
            response = client.post("/v1/image/edit/upload", files={"file": ("c.jpg", fixture_bytes("coffee.jpg"))})
        assert response.status_code == 422
        assert "input size limit of 50000 bytes" in response.json()["error_message"]
    finally:
        app.close()
