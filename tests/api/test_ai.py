"""AI operations end to end: sync (URL and upload), async, batch and `retouch edit`, on the real
offline models (u2netp, CenterFace, PP-OCRv4, waifu2x)."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pyvips

from tests.conftest import FIXTURES, ImageServer, LiveApp, fixture_bytes

pytest.importorskip("onnxruntime")


def _upload(client: Any, name: str, data: str) -> Any:
    return client.post("/v1/image/edit/upload", files={"file": (name, fixture_bytes(name))}, data={"data": data})


def _image(client: Any, response: Any) -> pyvips.Image:
    assert response.status_code == 200, response.text
    url = response.json()["data"]["output"]["tmp_url"]
    return pyvips.Image.new_from_buffer(client.get(url).content, "")


def test_remove_background_png_keeps_alpha_and_jpeg_is_white(live: LiveApp) -> None:
    with live.client() as client:
        png = _image(
            client,
            client.post(
                "/v1/image/edit/upload",
                files={"file": ("a.png", fixture_bytes("astronaut.png"))},
                data={"data": '{"operations": {"background": {"remove": true}}, "output": {"format": "png"}}'},
            ),
        )
        jpg = _image(
            client,
            client.post(
                "/v1/image/edit/upload",
                files={"file": ("a.png", fixture_bytes("astronaut.png"))},
                data={"data": '{"operations": {"background": {"remove": {"category": "general"}}}}'},
            ),
        )
    assert png.bands == 4
    alpha = png[3].numpy()
    assert alpha[5, 5] == 0 and alpha[300, 256] == 255  # corner removed, the suit kept
    px = jpg.numpy()
    assert jpg.bands == 3 and px[5, 5].min() >= 245  # removed background is white on JPEG, never black


def test_remove_background_colour_and_clipping_with_padding(live: LiveApp, image_server: ImageServer) -> None:
    body = {
        "input": image_server.url("coffee.jpg"),
        "operations": {"background": {"remove": {"clipping": True}, "color": "#00ff00"}, "padding": "10%"},
        "output": {"format": "png"},
    }
    with live.client() as client:
        out = _image(client, client.post("/v1/image/edit", json=body))
    assert out.bands == 3
    px = out.numpy()
    assert tuple(px[1, 1]) == (0, 255, 0)  # the padding takes the colour
    assert out.width < 600 and out.height < 400  # clipped to the cup before padding


def test_blur_async_and_smart_crop_batch(live: LiveApp, image_server: ImageServer) -> None:
    folder = live.add_local_storage("portraits")
    (folder / "astronaut.png").write_bytes(fixture_bytes("astronaut.png"))
    with live.client() as client:
        task = client.post(
            "/v1/image/edit/async",
            json={
                "input": image_server.url("astronaut.png"),
                "operations": {"background": {"blur": {"type": "lens", "level": "high"}}},
            },
        ).json()["data"]
        batch = client.post(
            "/v1/image/edit/batch",
            json={
                "input": "storage://portraits/",
                "operations": {"resizing": {"width": 150, "height": 400, "fit": {"type": "crop", "crop": "smart"}}},
                "output": {"destination": "storage://portraits/out/", "format": "png"},
            },
        ).json()["data"]
        for kind, tid in (("async", task["id"]), ("batch", batch["id"])):
            deadline = time.monotonic() + 120
            while (view := client.get(f"/v1/image/edit/{kind}/{tid}").json()["data"])["status"] not in (
                "DONE",
                "ERROR",
            ):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert view["status"] == "DONE", view["errors"]
    from retouch.models.faces import detect_faces

    cropped = pyvips.Image.new_from_file(str(folder / "out" / "astronaut.png"))
    assert (cropped.width, cropped.height) == (150, 400)
    faces = detect_faces(np.asarray(cropped.numpy())[..., :3])
    assert len(faces) == 1  # the face was kept whole inside the narrow window


def test_upscale_and_identity_crop(live: LiveApp) -> None:
    with live.client() as client:
        up = _image(
            client,
            client.post(
                "/v1/image/edit/upload",
                files={"file": ("c.jpg", fixture_bytes("chelsea.jpg"))},
                data={
                    "data": '{"operations": {"restorations": {"upscale": "smart_enhance"},'
                    ' "resizing": {"width": "200%"}}}'
                },
            ),
        )
        crop = client.post(
            "/v1/image/edit/upload",
            files={"file": ("a.png", fixture_bytes("astronaut.png"))},
            data={"data": '{"operations": {"privacy": {"identity_crop": true}}}'},
        )
        noface = client.post(
            "/v1/image/edit/upload",
            files={"file": ("c.jpg", fixture_bytes("coffee.jpg"))},
            data={"data": '{"operations": {"privacy": {"identity_crop": true}}}'},
        )
    assert (up.width, up.height) == (902, 600)
    assert crop.status_code == 200 and crop.json()["data"]["output"]["height"] < 512
    assert noface.status_code == 422 and "no face" in noface.json()["error_message"]


def test_plate_blur_with_retouch_edit(tmp_path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    from tests.test_cli import retouch

    canvas = Image.new("RGB", (800, 500), (120, 20, 30))
    draw = ImageDraw.Draw(canvas)
    draw.rounded_rectangle((250, 300, 550, 380), radius=8, fill=(250, 250, 250), outline=(0, 0, 0), width=3)
    draw.text((275, 308), "AB 123 CD", fill=(0, 0, 0), font=ImageFont.load_default(size=56))
    source = tmp_path / "car.png"
    canvas.save(source)
    out = tmp_path / "blurred.png"
    done = retouch("edit", str(source), "-o", str(out), "--ops", '{"privacy": {"blur_car_plate": true}}', home=tmp_path)
    assert done.returncode == 0, done.stderr
    from retouch.models.plates import read_text

    before = " ".join(t for _b, t, _s in read_text(np.asarray(Image.open(source))))
    after = " ".join(t for _b, t, _s in read_text(np.asarray(Image.open(out).convert("RGB"))))
    assert "123" in before.replace(" ", "") or "AB" in before
    assert "123" not in after.replace(" ", "")


def test_decompress_auto_leaves_clean_jpeg_alone() -> None:
    import retouch

    clean = pyvips.Image.new_from_file(str(FIXTURES / "coffee.jpg")).jpegsave_buffer(Q=95)
    plain = retouch.edit(clean, {}, {"format": "png"})
    auto = retouch.edit(clean, {"restorations": {"decompress": "auto"}}, {"format": "png"})
    assert plain.data == auto.data
    rough = pyvips.Image.new_from_file(str(FIXTURES / "coffee.jpg")).jpegsave_buffer(Q=15)
    repaired = retouch.edit(rough, {"restorations": {"decompress": "auto"}}, {"format": "png"})
    assert repaired.data != retouch.edit(rough, {}, {"format": "png"}).data
    assert io is not None


def test_smart_enhance_beats_lanczos_on_a_real_photo(live: LiveApp) -> None:
    """The protocol of docs/ai.md through the API: skimage's chelsea downscaled 2x (Lanczos3), upscaled back with
    ``smart_enhance``, PSNR against the original, compared with a centred Lanczos3 enlargement. (The fixture
    chelsea.jpg is a second JPEG generation of it: there smart_enhance gains +0.98 dB, cunet alone +0.79.)"""
    from PIL import Image

    skimage_data = pytest.importorskip("skimage.data")
    original = np.asarray(skimage_data.chelsea())[:300, :450]
    small = Image.fromarray(original).resize((225, 150), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, "PNG")
    with live.client() as client:
        up = _image(
            client,
            client.post(
                "/v1/image/edit/upload",
                files={"file": ("small.png", buffer.getvalue())},
                data={
                    "data": '{"operations": {"restorations": {"upscale": "smart_enhance"}, "resizing": {"width": 450}},'
                    ' "output": {"format": "png"}}'
                },
            ),
        )
    lanczos = np.asarray(small.resize((450, 300), Image.Resampling.LANCZOS))

    def psnr(a: Any) -> float:
        mse = float(np.mean((np.asarray(a, np.float64) - original.astype(np.float64)) ** 2))
        return float(10 * np.log10(255**2 / mse))

    gain = psnr(up.numpy()[..., :3]) - psnr(lanczos)
    # Issue 16's goal, through the API: measured +1.19 dB (the mean of cunet and SPAN 2x); cunet alone gave
    # +0.93, the photo network +0.77 (docs/ai.md has the table).
    assert gain >= 1.0, gain
