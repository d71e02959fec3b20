"""The synchronous API through real HTTP: uvicorn on loopback, inputs from a loopback image server."""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import ImageServer, LiveApp, fixture_bytes, make_settings

PREFIXES = ["/v1", "/v1-beta1"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_edit_from_url(live: LiveApp, image_server: ImageServer, prefix: str) -> None:
    body = {
        "input": image_server.url("photo_large.jpg"),
        "operations": {"resizing": {"width": 800}},
        "output": {"format": "webp"},
    }
    with live.client() as client:
        response = client.post(f"{prefix}/image/edit", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"data"}
    assert data["data"]["input"] == {
        "ext": "jpeg",
        "mps": 3.84,
        "mime": "image/jpeg",
        "format": "JPEG",
        "width": 2400,
        "height": 1600,
    }
    out = data["data"]["output"]
    assert {k: out[k] for k in ("ext", "mime", "format", "width", "height")} == {
        "ext": "webp",
        "mime": "image/webp",
        "format": "WEBP",
        "width": 800,
        "height": 533,
    }
    assert out["mps"] == 800 * 533 / 1e6
    assert out["tmp_url"].startswith(f"{live.base}/v1/tmp/") and out["tmp_url"].endswith("/photo_large.webp")
    # the tmp_url is served without any auth
    result = httpx.get(out["tmp_url"])
    assert result.status_code == 200
    assert result.headers["content-type"] == "image/webp"
    assert result.content[8:12] == b"WEBP"
    uuid.UUID(response.headers["x-request-id"])


@pytest.mark.parametrize("prefix", PREFIXES)
def test_upload(live: LiveApp, prefix: str) -> None:
    files = {"file": ("IMG_1.JPG", fixture_bytes("coffee.jpg"), "image/jpeg")}
    data = {"data": '{"operations": {"resizing": {"width": 300, "height": 300}}, "output": {"format": "jpeg"}}'}
    with live.client() as client:
        response = client.post(f"{prefix}/image/edit/upload", files=files, data=data)
    assert response.status_code == 200, response.text
    out = response.json()["data"]["output"]
    assert (out["width"], out["height"]) == (300, 300)
    assert out["tmp_url"].endswith("/IMG_1.JPG")  # same format: the input's extension is kept as written


def test_upload_data_part_with_json_content_type_and_output_name(live: LiveApp) -> None:
    files = {
        "file": ("the_image", fixture_bytes("alpha.png"), "application/octet-stream"),
        "data": (None, '{"operations": {}, "output": {"format": "png"}}', "application/json"),
    }
    with live.client() as client:
        response = client.post("/v1/image/edit/upload", files=files)
    assert response.status_code == 200, response.text
    out = response.json()["data"]["output"]
    assert out["tmp_url"].endswith("/the_image.png")
    assert response.json()["data"]["input"]["ext"] == "png"  # detected from the bytes, not the name


def test_upload_without_data_part_and_empty_operations(live: LiveApp) -> None:
    with live.client() as client:
        response = client.post("/v1/image/edit/upload", files={"file": ("a.png", fixture_bytes("photo.png"))})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["output"]["tmp_url"].endswith("/a.jpg")


def test_legacy_forms_accepted(live: LiveApp, image_server: ImageServer) -> None:
    body = {
        "input": image_server.url("coffee.jpg"),
        "operations": {
            "resizing": {"width": 200, "height": 200, "fit": {"crop": "smart"}},
            "adjustments": None,
            "background": {"color": "#ffffff", "remove": False},
            "restorations": None,
        },
        "output": {"format": {"type": "png", "quality": 85}},
    }
    with live.client() as client:
        response = client.post("/v1/image/edit", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["output"]["ext"] == "png"


def test_auth_required_and_bad_key(live: LiveApp) -> None:
    for key in (None, "rt_not-a-key"):
        with live.client(key) as client:
            response = client.post("/v1/image/edit", json={"input": "https://example.com/a.jpg", "operations": {}})
        assert response.status_code == 401
        assert response.json() == {
            "error_code": "111",
            "error_type": "auth",
            "error_message": "Authorization is required.",
            "error_details": {},
        }
        assert "x-request-id" in response.headers  # RateLimit-* too when limits are on (see the 429 test)


def test_scope_required(live: LiveApp) -> None:
    storage_only = live.service.keys.create("scoped", ("storage",))
    with live.client(storage_only) as client:
        response = client.post("/v1/image/edit", json={"input": "https://example.com/a.jpg", "operations": {}})
    assert response.status_code == 403
    assert response.json()["error_message"] == "Not enough permissions."


def test_health_without_auth(live: LiveApp) -> None:
    assert httpx.get(f"{live.base}/healthz").json() == {"data": {"status": "ok"}}
    deadline = time.monotonic() + 30
    while (ready := httpx.get(f"{live.base}/readyz")).status_code == 503:  # workers still loading
        assert ready.json()["data"]["checks"]["workers"].startswith("starting"), ready.text
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert ready.status_code == 200
    assert ready.json()["data"]["checks"] == {
        "database": "ok",
        "libvips": ready.json()["data"]["checks"]["libvips"],
        "workers": f"ok {live.service.worker_count}",
    }


def test_tmp_url_unknown_token_is_404(live: LiveApp) -> None:
    response = httpx.get(f"{live.base}/v1/tmp/nope/file.jpg")
    assert response.status_code == 404
    assert response.json()["error_message"] == "Result not found or expired."


def test_openapi_describes_every_operation_field(live: LiveApp) -> None:
    schema = httpx.get(f"{live.base}/openapi.json").json()
    resizing = schema["components"]["schemas"]["Resizing"]["properties"]
    assert all("description" in field for field in resizing.values())
    assert "/v1/image/edit" in schema["paths"] and "/v1/image/edit/upload" in schema["paths"]


def test_rate_limit_headers_and_429(tmp_path: Path, image_server: ImageServer) -> None:
    """Token buckets: a burst of 6 passes at once, then the 3/s rate applies; a 429 says when to retry."""
    app = LiveApp(make_settings(tmp_path, rate_limit_per_minute=120, rate_limit_per_second=3, rate_limit_burst=6))
    try:
        statuses = []
        with app.client() as client:
            began = time.monotonic()
            for _ in range(30):
                response = client.post("/v1/image/edit", json={"input": "ftp://x", "operations": {}})
                statuses.append(response.status_code)
                assert response.headers["RateLimit-Limit"].endswith("120;w=60, 3;w=1;burst=6")
                last = response
                if response.status_code == 429:
                    break
            elapsed = time.monotonic() - began
        # Six at once, plus what 3/s refills while they run: far more than a fixed 3-per-second window allows.
        assert statuses[:6] == [422] * 6, statuses
        assert len(statuses) - 1 <= 6 + 3 * elapsed + 1, (statuses, elapsed)
        assert statuses.count(429) >= 1, statuses
        assert last.status_code == 429
        assert last.json() == {
            "detail": {
                "error_code": "2001",
                "error_type": "general",
                "error_message": "Too Many Requests. Rate limit exceeded.",
            }
        }
        assert last.headers["RateLimit-Remaining"] == "-1"
        assert last.headers["RateLimit-Limit"].startswith("3, ")
        assert last.headers["RateLimit-Reset"] == "1"  # one token comes back within 1/3 s
        assert last.headers["Retry-After"] == last.headers["RateLimit-Reset"]  # what generic clients honour
        time.sleep(0.4)  # a token is back: the same key is served again
        with app.client() as client:
            again = client.post("/v1/image/edit", json={"input": "ftp://x", "operations": {}})
            assert again.status_code == 422, again.text
            assert again.headers["RateLimit-Remaining"] == "0"
        # another key has its own budget
        other = app.service.keys.create("other")
        with app.client(other) as client:
            assert client.post("/v1/image/edit", json={"input": "ftp://x", "operations": {}}).status_code == 422
    finally:
        app.close()


# ------------------------------------------------------------------------------------ the upload stream


def _no_stray_handoff_files(live: LiveApp) -> None:
    """Every file left in the RAM folder is a spare waiting for reuse: none leaked, none in use."""
    handoff = live.service.handoff
    assert sorted(handoff.folder.iterdir()) == sorted(handoff.spares)
    assert len(set(handoff.spares)) == len(handoff.spares)  # never the same file twice


def test_upload_reaches_the_worker_as_a_ram_file_that_is_given_back_afterwards(live: LiveApp) -> None:
    large, small = fixture_bytes("photo_large.jpg"), fixture_bytes("coffee.jpg")
    assert len(large) > len(small)
    spares_before = len(live.service.handoff.spares)  # earlier tests' uploads and downloads leave spares too
    with live.client() as client:
        first = client.post("/v1/image/edit/upload", files={"file": ("l.jpg", large, "image/jpeg")})
        bad = client.post("/v1/image/edit/upload", files={"file": ("t.jpg", fixture_bytes("truncated.jpg"))})
        # Over the pages of the spare file the larger upload left: only the new bytes may reach the worker.
        ok = client.post("/v1/image/edit/upload", files={"file": ("c.jpg", small, "image/jpeg")})
    assert first.status_code == 200, first.text
    assert bad.status_code == 422, bad.text
    assert ok.status_code == 200, ok.text
    source = Image.open(io.BytesIO(small))
    assert (ok.json()["data"]["input"]["width"], ok.json()["data"]["input"]["height"]) == source.size
    folder = live.service.handoff.folder
    # One file served all three, in turn: no spare was added beyond the first.
    assert folder.is_dir() and len(live.service.handoff.spares) == max(1, spares_before)
    _no_stray_handoff_files(live)
    if Path("/dev/shm").is_dir():
        assert folder.parent == Path("/dev/shm")


def test_upload_falls_back_to_bytes_when_the_ram_folder_is_unusable(
    live: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live.service.handoff, "create", lambda: None)  # e.g. a full 64 MB /dev/shm in Docker
    with live.client() as client:
        response = client.post("/v1/image/edit/upload", files={"file": ("c.jpg", fixture_bytes("coffee.jpg"))})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"files": {"data": (None, "{}")}}, 422, "`file` part is missing"),
        ({"content": b"not multipart", "headers": {"content-type": "application/octet-stream"}}, 400, "multipart"),
        (
            {
                "content": b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\nabc',
                "headers": {"content-type": "multipart/form-data; boundary=xx"},
            },
            400,
            "malformed",
        ),
    ],
)
def test_upload_body_errors(live: LiveApp, kwargs: dict[str, Any], status: int, message: str) -> None:
    with live.client() as client:
        response = client.post("/v1/image/edit/upload", **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_type"] == "validation" and message in body["error_message"], body
    _no_stray_handoff_files(live)


def test_upload_is_refused_before_its_body_is_read(live: LiveApp) -> None:
    """No key, no parsing: the 401 comes from the auth dependency, which runs before the body is read."""
    with live.client(key=None) as client:
        response = client.post("/v1/image/edit/upload", files={"file": ("c.jpg", fixture_bytes("coffee.jpg"))})
    assert response.status_code == 401


def test_upload_first_file_part_wins_and_unknown_parts_are_ignored(live: LiveApp) -> None:
    files = [
        ("extra", (None, "ignored")),
        ("file", ("first.png", fixture_bytes("photo.png"), "image/png")),
        ("file", ("second.jpg", fixture_bytes("coffee.jpg"), "image/jpeg")),
        ("data", (None, '{"output": {"format": "png"}}')),
    ]
    with live.client() as client:
        response = client.post("/v1/image/edit/upload", files=files)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["output"]["tmp_url"].endswith("/first.png")


# ------------------------------------------------------------------------------------ read-ahead


def test_inputs_waiting_behind_a_running_job_are_downloaded_meanwhile(
    tmp_path: Path, image_server: ImageServer
) -> None:
    """One worker, an origin that takes 0.4 s per answer. Without read-ahead a download starts only once
    the previous image was downloaded and edited, 0.4 s or more apart; with it, the input of the job
    waiting in the worker's pipe is fetched while the job before it runs - for sync edits and batch items."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.api.test_jobs import wait_done

    arrivals = image_server.handler.arrivals
    app = LiveApp(make_settings(tmp_path, workers=1))
    try:
        with app.client() as warm:  # the worker's Service exists before the clock matters
            assert warm.post("/v1/image/edit", json={"input": image_server.url("coffee.jpg")}).status_code == 200

        def edit(k: int) -> httpx.Response:
            with app.client() as client:
                return client.post("/v1/image/edit", json={"input": image_server.url(f"slow/400/coffee.jpg?s={k}")})

        arrivals.clear()
        with ThreadPoolExecutor(2) as threads:
            responses = list(threads.map(edit, range(2)))
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        sync_times = sorted(t for _, t in arrivals)
        assert len(sync_times) == 2 and sync_times[1] - sync_times[0] < 0.25, sync_times

        arrivals.clear()
        with app.client() as client:
            urls = [image_server.url(f"slow/400/coffee.jpg?b={k}") for k in range(2)]
            task = client.post("/v1/image/edit/batch", json={"input": urls, "operations": {}}).json()["data"]
            done = wait_done(client, f"/v1/image/edit/batch/{task['id']}")
        assert done["status"] == "DONE" and len(done["results"]) == 2, done
        batch_times = sorted(t for _, t in arrivals)
        assert len(batch_times) == 2 and batch_times[1] - batch_times[0] < 0.25, batch_times
    finally:
        app.close()


def test_a_sane_incoming_request_id_is_echoed_and_others_replaced(live: LiveApp) -> None:
    with live.client() as client:
        kept = client.get("/healthz", headers={"X-Request-ID": "trace-42.abc_DEF"})
        too_long = client.get("/healthz", headers={"X-Request-ID": "x" * 129})
        spaced = client.get("/healthz", headers={"X-Request-ID": "two words"})
    assert kept.headers["x-request-id"] == "trace-42.abc_DEF"
    for response in (too_long, spaced):
        uuid.UUID(response.headers["x-request-id"])  # replaced by a fresh id
