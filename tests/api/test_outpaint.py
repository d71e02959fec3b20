"""fit outpaint through every path a user takes: sync (upload), async and batch over real HTTP, `retouch edit`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pyvips

from tests.api.test_jobs import wait_done
from tests.conftest import LiveApp
from tests.pipeline.outpaint_scenes import png, studio, textured

pytest.importorskip("patchmatch")

OPS = {"resizing": {"fit": {"type": "outpaint", "outpaint_by": "10% 20%", "feathering": "20%"}}}


def test_outpaint_sync_async_and_batch(live: LiveApp) -> None:
    folder = live.add_local_storage("outpaint")
    (folder / "studio.png").write_bytes(png(studio(300, 200)))
    (folder / "gravel.png").write_bytes(png(textured(240, 160)))
    with live.client() as client:
        sync = client.post(
            "/v1/image/edit/upload",
            files={"file": ("studio.png", png(studio(300, 200)))},
            data={"data": json.dumps({"operations": OPS, "output": {"format": "png"}})},
        )
        assert sync.status_code == 200, sync.text
        output = sync.json()["data"]["output"]
        assert (output["width"], output["height"]) == (330, 240)
        image = pyvips.Image.new_from_buffer(client.get(output["tmp_url"]).content, "")
        assert (image.width, image.height) == (330, 240)

        task = client.post(
            "/v1/image/edit/async",
            json={"input": "storage://outpaint/gravel.png", "operations": OPS, "output": "storage://outpaint/async/"},
        ).json()["data"]
        batch = client.post(
            "/v1/image/edit/batch",
            json={
                "input": "storage://outpaint/",
                "operations": {"resizing": {"width": 600, "height": 200, "fit": "outpaint"}},
                "output": {"destination": "storage://outpaint/batch/", "format": "png"},
            },
        ).json()["data"]
        view = wait_done(client, f"/v1/image/edit/async/{task['id']}", timeout=120)
        assert view["status"] == "DONE", view
        batch_view = wait_done(client, f"/v1/image/edit/batch/{batch['id']}", timeout=120)
    assert pyvips.Image.new_from_file(str(folder / "async" / "gravel.jpg")).width == 264
    # The studio shot widens to 600x200 (plain fill); the gravel would grow by 50% of its width on each side on a
    # textured border, past what a classical fill continues: that item fails with the reason, the other is done.
    studio_out = pyvips.Image.new_from_file(str(folder / "batch" / "studio.png"))
    assert (studio_out.width, studio_out.height) == (600, 200)
    assert batch_view["status"] == "ERROR"
    errors = batch_view["errors"]
    assert isinstance(errors, list) and len(errors) == 1
    assert "gravel.png" in str(errors[0]) and "textured" in str(errors[0])


def test_outpaint_with_retouch_edit(tmp_path: Path) -> None:
    from tests.test_cli import retouch

    source = tmp_path / "shot.png"
    source.write_bytes(png(studio(300, 200)))
    out = tmp_path / "wide.jpg"
    done = retouch(
        "edit",
        str(source),
        "-o",
        str(out),
        "--ops",
        '{"resizing": {"fit": {"type": "outpaint", "outpaint_by": "100px 0px"}}}',
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    image = pyvips.Image.new_from_file(str(out))
    assert (image.width, image.height) == (400, 200)
