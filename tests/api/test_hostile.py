"""Issue "safe to run for other people": each failure found by the hostile run, reproduced through real HTTP.

1. bodies: the key is checked before any body byte, JSON bodies are capped (413), errors never echo huge values;
2. huge integers are a 422 naming the field, on every route;
3. control characters in storage keys are a 422 naming the field;
4. JPEGs that lose pixels are a 422 naming the defect (sync, upload, batch items), benign warnings decode;
5. percentages are parsed once: out of range is a 422, a tiny one gives at least 1 px;
7. local storage folders belong to one account; a request never reads its own outputs or overwrites its inputs.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_jobs import wait_done
from tests.conftest import ImageServer, LiveApp, fixture_bytes, make_settings

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "jpeg_defects"
HUGE = "9" * 310


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    live = LiveApp(make_settings(tmp_path_factory.mktemp("hostile")))
    folder = live.add_local_storage("local")
    (folder / "in").mkdir()
    (folder / "in" / "a.jpg").write_bytes(fixture_bytes("coffee.jpg"))
    yield live
    live.close()


def _raw(app: LiveApp, head: bytes, body: bytes = b"", timeout: float = 5.0) -> tuple[int, dict[str, Any], float]:
    """Send ``head`` (and only ``body`` of the declared length), read the answer: (status, JSON, seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", app.settings.port), timeout=timeout) as sock:
        sock.sendall(head + body)
        received = b""
        while b"\r\n\r\n" not in received or not _complete(received):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    elapsed = time.monotonic() - started
    header, _, payload = received.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    return status, json.loads(payload), elapsed


def _complete(received: bytes) -> bool:
    header, _, payload = received.partition(b"\r\n\r\n")
    for line in header.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(payload) >= int(line.split(b":")[1])
    return False


def _envelope(body: dict[str, Any]) -> None:
    assert set(body) == {"error_code", "error_type", "error_message", "error_details"}, body


# ---------------------------------------------------------------------------------------------- 1. bodies


@pytest.mark.parametrize(
    ("route", "auth", "content_type"),
    [
        ("/v1/image/edit", b"", b"application/json"),
        ("/v1/image/edit/batch", b"Authorization: Bearer nope\r\n", b"application/json"),
        ("/v1/image/edit/upload", b"", b"multipart/form-data; boundary=xyz"),
    ],
    ids=["no key", "wrong key", "upload without key"],
)
def test_a_stranger_is_refused_before_the_body_is_read(
    app: LiveApp, route: str, auth: bytes, content_type: bytes
) -> None:
    # 500 MB declared, 10 bytes sent: a server that read the body first would wait here until the timeout.
    head = (
        b"POST "
        + route.encode()
        + b" HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Content-Type: "
        + content_type
        + b"\r\nContent-Length: 500000000\r\n\r\n"
    )
    status, body, elapsed = _raw(app, head, b'{"input": ')
    assert status == 401 and elapsed < 1.0
    _envelope(body)
    assert body["error_type"] == "auth"


def test_json_over_the_cap_is_413_from_its_length(app: LiveApp) -> None:
    head = (
        b"POST /v1/image/edit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + app.key.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
    )
    status, body, elapsed = _raw(app, head)
    assert status == 413 and elapsed < 1.0
    _envelope(body)
    assert "RETOUCH_MAX_JSON_BYTES" in body["error_message"] and "1048576" in body["error_message"]


def test_streamed_json_over_the_cap_is_413(app: LiveApp) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer, counted as it arrives
        yield b'{"input": "https://example.com/a.jpg", "operations": {"padding": "'
        for _ in range(40):
            yield b"1" * 65536
        yield b'px"}}'

    with app.client() as client:
        response = client.post("/v1/image/edit", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    _envelope(response.json())


def test_other_routes_answer_while_a_big_body_is_refused(app: LiveApp) -> None:
    with app.client() as client:
        started = time.monotonic()
        big = client.post("/v1/image/edit", content=b"[" + b"1," * 3_000_000 + b"1]")
        assert big.status_code == 413
        assert client.get("/healthz").status_code == 200
        assert time.monotonic() - started < 2.0


def test_error_answers_do_not_echo_huge_values(app: LiveApp) -> None:
    padding = "1" * 800_000 + "px"
    with app.client() as client:
        response = client.post(
            "/v1/image/edit", json={"input": "https://example.com/a.jpg", "operations": {"padding": padding}}
        )
    assert response.status_code == 422
    assert len(response.content) < 2_000, len(response.content)
    assert "operations.padding" in response.json()["error_details"]


def test_many_bad_fields_give_a_bounded_answer(app: LiveApp) -> None:
    body = {"input": [f"ftp://x/{i}.jpg" for i in range(5_000)], "operations": {}}
    with app.client() as client:
        response = client.post("/v1/image/edit/batch", json=body)
    assert response.status_code == 422
    assert len(response.content) < 40_000
    assert "more errors" in response.json()["error_message"]


# ------------------------------------------------------------------------------------- 2. huge integers

HUGE_CASES = {
    "operations.resizing.width": {"resizing": {"width": int(HUGE)}},
    "operations.resizing.height": {"resizing": {"height": int(HUGE)}},
    "operations.padding": {"padding": HUGE + "px"},
    "operations.adjustments.exposure": {"adjustments": {"exposure": int(HUGE)}},
}


@pytest.mark.parametrize("field", HUGE_CASES, ids=list(HUGE_CASES))
@pytest.mark.parametrize("route", ["sync", "upload", "async", "batch"])
def test_huge_integers_are_422_naming_the_field(
    app: LiveApp, image_server: ImageServer, route: str, field: str
) -> None:
    operations = HUGE_CASES[field]
    url = image_server.url("coffee.jpg")
    with app.client() as client:
        if route == "upload":
            data = json.dumps({"operations": operations})
            response = client.post(
                "/v1/image/edit/upload", files={"file": ("a.jpg", fixture_bytes("coffee.jpg"))}, data={"data": data}
            )
        else:
            path = {"sync": "/v1/image/edit", "async": "/v1/image/edit/async", "batch": "/v1/image/edit/batch"}[route]
            response = client.post(path, json={"input": url, "operations": operations})
    assert response.status_code == 422, response.text
    body = response.json()
    _envelope(body)
    assert field in body["error_details"], body


def test_json_integers_past_pythons_digit_limit_are_not_a_500(app: LiveApp) -> None:
    raw = b'{"input": "https://example.com/a.jpg", "operations": {"resizing": {"width": ' + b"9" * 5000 + b"}}}"
    with app.client() as client:
        response = client.post("/v1/image/edit", content=raw, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    _envelope(response.json())


# ------------------------------------------------------------------------------- 3. storage keys


@pytest.mark.parametrize(
    "key",
    ["x%00y.jpg", "x%0Ay.jpg", "x%1By.jpg", "x%7Fy.jpg", "a%5Cb.jpg", "a" * 300 + ".jpg", "a/" * 600 + "b.jpg"],
    ids=["nul", "newline", "escape", "delete", "backslash", "long name", "long key"],
)
def test_bad_storage_keys_are_422_naming_the_field(app: LiveApp, key: str) -> None:
    with app.client() as client:
        as_input = client.post("/v1/image/edit", json={"input": f"storage://local/{key}"})
        as_output = client.post(
            "/v1/image/edit", json={"input": "storage://local/in/a.jpg", "output": f"storage://local/out/{key}"}
        )
        as_batch = client.post("/v1/image/edit/batch", json={"input": [f"storage://local/{key}"]})
        upload = client.post(
            "/v1/image/edit/upload",
            files={"file": ("a.jpg", fixture_bytes("coffee.jpg"))},
            data={"data": json.dumps({"output": f"storage://local/out/{key}"})},
        )
    for response, field in (
        (as_input, "input"),
        (as_output, "output.destination"),
        (as_batch, "input.0.source"),
        (upload, "output.destination"),
    ):
        assert response.status_code == 422, response.text
        _envelope(response.json())
        assert field in response.json()["error_details"], response.json()


# --------------------------------------------------------------------------------- 4. corrupt JPEGs


@pytest.mark.parametrize("path", sorted((CORPUS / "bad").glob("*.jpg")), ids=lambda p: p.name)
def test_jpegs_that_lose_pixels_are_refused(app: LiveApp, image_server: ImageServer, path: Path) -> None:
    with app.client() as client:
        upload = client.post("/v1/image/edit/upload", files={"file": (path.name, path.read_bytes())})
        by_url = client.post(
            "/v1/image/edit",
            json={
                "input": image_server.url(f"jpeg_defects/bad/{path.name}"),
                "operations": {"resizing": {"width": 100}},
            },
        )
    for response in (upload, by_url):
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error_type"] == "image" and "truncated or corrupt" in body["error_message"], body


@pytest.mark.parametrize("path", sorted((CORPUS / "benign").glob("*.jpg")), ids=lambda p: p.name)
def test_jpegs_with_benign_warnings_decode(app: LiveApp, path: Path) -> None:
    with app.client() as client:
        response = client.post(
            "/v1/image/edit/upload",
            files={"file": (path.name, path.read_bytes())},
            data={"data": json.dumps({"operations": {"resizing": {"width": 200}}})},
        )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["output"]["width"] == 200


def test_batch_items_name_the_defect(app: LiveApp) -> None:
    folder = app.settings.storage_roots[0] / "local" / "defects"
    folder.mkdir(exist_ok=True)
    for path in [*sorted((CORPUS / "bad").glob("*.jpg")), *sorted((CORPUS / "benign").glob("*.jpg"))]:
        (folder / f"{path.parent.name}-{path.name}").write_bytes(path.read_bytes())
    with app.client() as client:
        task = client.post(
            "/v1/image/edit/batch", json={"input": "storage://local/defects/", "output": "storage://local/fixed/"}
        )
        data = _wait(client, task)
    failed = {e["error"].split(": ", 1)[0].rsplit("/", 1)[-1] for e in data["errors"]}
    done = {r["output_object"]["claid_storage_uri"].rsplit("/", 1)[-1] for r in data["results"]}
    assert failed == {f"bad-{p.name}" for p in (CORPUS / "bad").glob("*.jpg")}
    assert done == {f"benign-{p.name}" for p in (CORPUS / "benign").glob("*.jpg")}
    assert all("truncated or corrupt" in e["error"] for e in data["errors"])


# ------------------------------------------------------------------------------------- 5. percentages


@pytest.mark.parametrize("value", ["10000000000000000%", "10001%", "inf%", "1e5%", "-5%", "0%", "nan%"])
def test_out_of_range_percentages_are_422(app: LiveApp, value: str) -> None:
    with app.client() as client:
        response = client.post(
            "/v1/image/edit", json={"input": "storage://local/in/a.jpg", "operations": {"resizing": {"width": value}}}
        )
    assert response.status_code == 422, response.text
    assert "operations.resizing.width" in response.json()["error_details"]


def test_a_tiny_percentage_gives_one_pixel_never_a_no_op(app: LiveApp) -> None:
    with app.client() as client:
        tiny = client.post(
            "/v1/image/edit",
            json={"input": "storage://local/in/a.jpg", "operations": {"resizing": {"width": "0.00001%"}}},
        )
        padded = client.post(
            "/v1/image/edit",
            json={
                "input": "storage://local/in/a.jpg",
                "operations": {"padding": "0.00001%"},
                "output": "storage://local/p.png",
            },
        )
    assert tiny.status_code == 200, tiny.text
    assert tiny.json()["data"]["output"]["width"] == 1
    assert padded.status_code == 200, padded.text
    import pyvips

    image = pyvips.Image.new_from_file(str(app.settings.storage_roots[0] / "local" / "p.png"))
    assert (image.width, image.height) == (600, 400)
    assert image.getpoint(0, 0)[:3] == [255.0, 255.0, 255.0]  # the padding is there: 1 px of background


def test_fractional_percentages_keep_their_precision(app: LiveApp) -> None:
    with app.client() as client:
        response = client.post(
            "/v1/image/edit", json={"input": "storage://local/in/a.jpg", "operations": {"resizing": {"width": "12.5%"}}}
        )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["output"]["width"] == 75  # 600 x 12.5 %


# ------------------------------------------------------------------------------- 7. local folders


def _local(client: Any, name: str, path: Path) -> Any:
    return client.post("/v1/storage/storages", json={"name": name, "type": "local", "parameters": {"path": str(path)}})


def test_a_local_folder_belongs_to_one_account(app: LiveApp) -> None:
    root = app.settings.storage_roots[0]
    victim_folder = root / "victim"
    (victim_folder / "private").mkdir(parents=True, exist_ok=True)
    (victim_folder / "private" / "secret.jpg").write_bytes(fixture_bytes("coffee.jpg"))
    victim, thief = app.create_key("victim-co"), app.create_key("thief-co")
    with app.client(victim) as client:
        assert _local(client, "mine", victim_folder).status_code == 200
        assert _local(client, "again", victim_folder / "private").status_code == 200  # one's own: fine
    with app.client(thief) as client:
        for name, path in (("same", victim_folder), ("inside", victim_folder / "private"), ("around", root)):
            response = _local(client, name, path)
            assert response.status_code == 409, (name, response.text)
            _envelope(response.json())
            assert "another account" in response.json()["error_message"]
        own = _local(client, "own", root / "thief")
        assert own.status_code == 200, own.text
        # ... and it cannot be moved onto the victim's folder afterwards
        moved = client.patch(
            f"/v1/storage/storages/{own.json()['data']['id']}", json={"parameters": {"path": str(victim_folder)}}
        )
        assert moved.status_code == 409, moved.text
        read = client.post("/v1/image/edit", json={"input": "storage://own/../victim/private/secret.jpg"})
        assert read.status_code == 422


def test_an_overlapping_folder_is_refused_on_use_too(app: LiveApp) -> None:
    """A row made before the rule existed (or by two accounts racing) is refused when it is used."""
    from sqlalchemy.orm import Session

    from retouch.stores.tables import StorageRow

    root = app.settings.storage_roots[0]
    (root / "shared").mkdir(exist_ok=True)
    (root / "shared" / "a.jpg").write_bytes(fixture_bytes("coffee.jpg"))
    first, second = app.create_key("first-co"), app.create_key("second-co")
    with app.client(first) as client:
        assert _local(client, "data", root / "shared").status_code == 200
    second_id = app.service.keys.authenticate(second).account_id
    with Session(app.service.engine) as session, session.begin():
        session.add(
            StorageRow(account_id=second_id, name="old", type="local", parameters={"path": str(root / "shared")})
        )
    with app.client(second) as client:
        response = client.post("/v1/image/edit", json={"input": "storage://old/a.jpg"})
    assert response.status_code == 409, response.text
    assert "another account" in response.json()["error_message"]


def _wait(client: Any, task: Any) -> dict[str, Any]:
    assert task.status_code == 200, task.text
    return wait_done(client, f"/v1/image/edit/batch/{task.json()['data']['id']}")


def test_a_batch_never_lists_its_own_outputs(app: LiveApp) -> None:
    folder = app.settings.storage_roots[0] / "local" / "album"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "b.png", "sub/c.png"):
        (folder / name).write_bytes(fixture_bytes("photo.png"))
    body = {
        "input": {"source": "storage://local/album/", "recursive": True},
        "operations": {"resizing": {"width": 50}},
        "output": {"destination": "storage://local/album/small/", "format": "png"},
    }
    with app.client() as client:
        first = _wait(client, client.post("/v1/image/edit/batch", json=body))
        again = _wait(client, client.post("/v1/image/edit/batch", json=body))  # the outputs now exist
    for data in (first, again):
        assert data["status"] == "DONE", data
        assert sorted(r["output_object"]["object_key"] for r in data["results"]) == [
            "album/small/a.png",
            "album/small/b.png",
            "album/small/sub/c.png",
        ]
    assert not (folder / "small" / "small").exists()


def test_outputs_never_overwrite_inputs(app: LiveApp) -> None:
    folder = app.settings.storage_roots[0] / "local" / "originals"
    folder.mkdir(parents=True, exist_ok=True)
    original = fixture_bytes("coffee.jpg")
    (folder / "a.jpg").write_bytes(original)
    with app.client() as client:
        sync = client.post(
            "/v1/image/edit",
            json={
                "input": "storage://local/originals/a.jpg",
                "operations": {"resizing": {"width": 10}},
                "output": "storage://local/originals/a.jpg",
            },
        )
        into_folder = client.post(
            "/v1/image/edit",
            json={"input": "storage://local/originals/a.jpg", "output": "storage://local/originals/"},
        )
        batch = client.post(
            "/v1/image/edit/batch", json={"input": "storage://local/originals/", "output": "storage://local/originals/"}
        )
        listed = client.post(  # a list of files: checked per item
            "/v1/image/edit/batch",
            json={"input": ["storage://local/originals/a.jpg"], "output": "storage://local/originals/"},
        )
        listed_data = _wait(client, listed)
        converted = client.post(  # another format beside the input overwrites nothing: allowed
            "/v1/image/edit",
            json={
                "input": "storage://local/originals/a.jpg",
                "output": {"destination": "storage://local/originals/", "format": "png"},
            },
        )
    for response in (sync, into_folder, batch):
        assert response.status_code == 422, response.text
        assert "RETOUCH_ALLOW_OVERWRITE_INPUT" in response.json()["error_message"]
    assert listed_data["status"] == "ERROR" and "would overwrite the input" in listed_data["errors"][0]["error"]
    assert converted.status_code == 200, converted.text
    assert (folder / "a.jpg").read_bytes() == original


def test_the_operator_may_allow_overwriting_inputs(tmp_path: Path) -> None:
    live = LiveApp(make_settings(tmp_path, allow_overwrite_input=True, workers=1))
    try:
        folder = live.add_local_storage("local")
        (folder / "a.jpg").write_bytes(fixture_bytes("coffee.jpg"))
        with live.client() as client:
            response = client.post(
                "/v1/image/edit",
                json={
                    "input": "storage://local/a.jpg",
                    "operations": {"resizing": {"width": 10}},
                    "output": "storage://local/a.jpg",
                },
            )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["output"]["width"] == 10
    finally:
        live.close()
