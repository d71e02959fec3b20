"""Async and batch jobs through real HTTP: folders, lists, naming, failures, cancel, paging, tenancy,
webhooks to a loopback receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ImageServer, LiveApp, fixture_bytes, free_port, make_settings


@pytest.fixture(scope="module", params=["local", "celery"])
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The same suite on the embedded default and on the scale-out topology (2 API replicas, 2 Celery
    workers, PostgreSQL, Redis); requests alternate between the replicas there."""
    if request.param == "celery":
        yield request.getfixturevalue("celery_topology")
        return
    live = LiveApp(make_settings(tmp_path_factory.mktemp("jobs"), webhook_backoff_seconds=0.2))
    yield live
    live.close()


def wait_done(client: httpx.Client, url: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        data: dict[str, Any] = client.get(url).json()["data"]
        if data["status"] in ("DONE", "ERROR", "CANCELLED"):
            return data
        assert time.monotonic() < deadline, data
        time.sleep(0.1)


def make_folder(app: LiveApp, name: str, files: dict[str, bytes]) -> Path:
    folder = app.add_local_storage(name)
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


JPG, PNG = fixture_bytes("coffee.jpg"), fixture_bytes("photo.png")


def test_async_from_url(app: LiveApp, image_server: ImageServer) -> None:
    body = {"input": image_server.url("chelsea.jpg"), "operations": {"resizing": {"width": 100}}}
    with app.client() as client:
        accepted = client.post("/v1/image/edit/async", json=body)
        assert accepted.status_code == 200, accepted.text
        data = accepted.json()["data"]
        assert data["status"] == "ACCEPTED" and isinstance(data["id"], int)
        assert data["request"] == body
        assert data["result_url"] == f"{app.public_url}/v1/image/edit/async/{data['id']}"
        assert data["created_at"].endswith("Z")
        done = wait_done(client, data["result_url"].replace(app.public_url, ""))
    assert done["status"] == "DONE" and done["errors"] == []
    assert done["result"]["input_object"]["width"] == 451
    out = done["result"]["output_object"]
    assert (out["width"], out["ext"]) == (100, "jpeg")
    assert httpx.get(out["tmp_url"]).content[:3] == b"\xff\xd8\xff"
    assert done["progress"] == {"total": 1, "done": 1, "failed": 0}


def test_async_error(app: LiveApp, image_server: ImageServer) -> None:
    with app.client() as client:
        task = client.post("/v1/image/edit/async", json={"input": image_server.url("truncated.jpg"), "operations": {}})
        done = wait_done(client, f"/v1/image/edit/async/{task.json()['data']['id']}")
    assert done["status"] == "ERROR" and done["result"] == {}
    assert "truncated.jpg" in done["errors"][0]["error"] and "truncated or corrupt" in done["errors"][0]["error"]
    assert done["errors"][0]["input_object"]["ext"] == "jpeg"


def test_batch_root_vs_recursive_and_names(app: LiveApp) -> None:
    make_folder(app, "shop", {"a.jpg": JPG, "b.png": PNG, "sub/c.jpg": JPG, "notes.txt": b"x", ".hidden.jpg": JPG})
    out = app.add_local_storage("shop-out")
    with app.client() as client:
        root = client.post(
            "/v1/image/edit/batch",
            json={
                "input": "storage://shop/",
                "operations": {"resizing": {"width": 50}},
                "output": {"destination": "storage://shop-out/root/", "format": "png"},
            },
        )
        assert root.status_code == 200, root.text
        assert root.json()["data"]["status"] == "ACCEPTED" and root.json()["data"]["results"] == []
        rec = client.post(
            "/v1/image/edit/batch",
            json={
                "input": {"source": "storage://shop/", "recursive": True},
                "operations": {},
                "output": "storage://shop-out/rec",
            },
        )
        done_root = wait_done(client, f"/v1/image/edit/batch/{root.json()['data']['id']}")
        done_rec = wait_done(client, f"/v1/image/edit/batch/{rec.json()['data']['id']}")
    assert done_root["status"] == "DONE", done_root
    assert sorted(r["output_object"]["claid_storage_uri"] for r in done_root["results"]) == [
        "storage://shop-out/root/a.png",
        "storage://shop-out/root/b.png",
    ]
    assert done_root["progress"] == {"total": 2, "done": 2, "failed": 0}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "rec/a.jpg",
        "rec/b.jpg",
        "rec/sub/c.jpg",
        "root/a.png",
        "root/b.png",
    ]
    assert done_rec["status"] == "DONE" and len(done_rec["results"]) == 3


def test_batch_url_list_mix_and_collisions(app: LiveApp, image_server: ImageServer) -> None:
    make_folder(app, "mix", {"x.jpg": JPG, "x.jpeg": JPG})
    with app.client() as client:
        task = client.post(
            "/v1/image/edit/batch",
            json={
                "input": ["storage://mix/", image_server.url("coffee.jpg"), image_server.url("chelsea.jpg")],
                "operations": {"resizing": {"width": 40}},
                "output": {"format": "webp"},
            },
        ).json()["data"]
        done = wait_done(client, f"/v1/image/edit/batch/{task['id']}")
    assert done["status"] == "DONE", done
    names = sorted(r["output_object"]["tmp_url"].rsplit("/", 1)[-1] for r in done["results"])
    assert names == ["chelsea.webp", "coffee.webp", "x-2.webp", "x.webp"]  # never two outputs with one name


def test_partial_and_total_failure(app: LiveApp) -> None:
    make_folder(app, "partial", {"good1.jpg": JPG, "bad.jpg": fixture_bytes("truncated.jpg"), "good2.png": PNG})
    make_folder(app, "allbad", {"a.jpg": b"not an image", "b.jpg": fixture_bytes("garbage.jpg")})
    with app.client() as client:
        p = client.post("/v1/image/edit/batch", json={"input": "storage://partial/", "operations": {}}).json()["data"]
        a = client.post("/v1/image/edit/batch", json={"input": "storage://allbad/", "operations": {}}).json()["data"]
        partial = wait_done(client, f"/v1/image/edit/batch/{p['id']}")
        allbad = wait_done(client, f"/v1/image/edit/batch/{a['id']}")
    assert partial["status"] == "ERROR"
    assert len(partial["results"]) == 2 and len(partial["errors"]) == 1
    assert partial["errors"][0]["error"].startswith("storage://partial/bad.jpg: ")
    assert partial["errors"][0]["input_object"]["width"] == 600
    assert partial["progress"] == {"total": 3, "done": 2, "failed": 1}
    assert allbad["status"] == "ERROR" and allbad["results"] == [] and len(allbad["errors"]) == 2


def test_empty_and_missing_folder(app: LiveApp) -> None:
    make_folder(app, "empty", {"readme.txt": b"no images"})
    with app.client() as client:
        e = client.post("/v1/image/edit/batch", json={"input": "storage://empty/", "operations": {}}).json()["data"]
        m = client.post("/v1/image/edit/batch", json={"input": "storage://empty/nope/", "operations": {}}).json()[
            "data"
        ]
        empty = wait_done(client, f"/v1/image/edit/batch/{e['id']}")
        missing = wait_done(client, f"/v1/image/edit/batch/{m['id']}")
        unknown = client.post("/v1/image/edit/batch", json={"input": "storage://ghost/", "operations": {}})
    assert empty["status"] == "ERROR" and "No images found in storage://empty/" in empty["errors"][0]["error"]
    assert missing["status"] == "ERROR" and "storage://empty/nope/" in missing["errors"][0]["error"]
    assert unknown.status_code == 400 and "No storage named 'ghost'" in unknown.json()["error_message"]


def test_cancel(app: LiveApp) -> None:
    make_folder(app, "many", {f"{i:03d}.jpg": fixture_bytes("photo_large.jpg") for i in range(40)})
    with app.client() as client:
        task = client.post(
            "/v1/image/edit/batch",
            json={
                "input": "storage://many/",
                "operations": {"adjustments": {"hdr": 100}},
            },
        ).json()["data"]
        time.sleep(0.5)
        cancelled = client.post(f"/v1/image/edit/batch/{task['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["data"]["status"] == "CANCELLED", cancelled.json()["data"]["errors"][:3]
        time.sleep(1.5)
        final = client.get(f"/v1/image/edit/batch/{task['id']}").json()["data"]
    assert final["status"] == "CANCELLED"
    assert final["progress"]["done"] < 40
    later = final["progress"]["done"]
    time.sleep(1)
    with app.client() as client:
        assert client.get(f"/v1/image/edit/batch/{task['id']}").json()["data"]["progress"]["done"] == later


def test_pagination_and_tenancy(app: LiveApp) -> None:
    make_folder(app, "paged", {f"p{i}.jpg": JPG for i in range(7)})
    with app.client() as client:
        task = client.post("/v1/image/edit/batch", json={"input": "storage://paged/", "operations": {}}).json()["data"]
        wait_done(client, f"/v1/image/edit/batch/{task['id']}")
        everything = client.get(f"/v1/image/edit/batch/{task['id']}").json()["data"]["results"]
        page = client.get(f"/v1/image/edit/batch/{task['id']}", params={"offset": 2, "limit": 3}).json()["data"]
        assert client.get(f"/v1/image/edit/async/{task['id']}").status_code == 404  # a batch is not an async task
    assert len(everything) == 7 and page["results"] == everything[2:5]
    other = app.create_key("someone-else")
    with app.client(other) as client:
        response = client.get(f"/v1/image/edit/batch/{task['id']}")
        assert response.status_code == 404
        assert response.json()["error_message"] == "Batch image edit pipeline not found."
        assert client.post(f"/v1/image/edit/batch/{task['id']}/cancel").status_code == 404


class Receiver:
    """A loopback webhook receiver that fails the first ``fail`` deliveries."""

    def __init__(self, fail: int = 0) -> None:
        self.bodies: list[tuple[bytes, dict[str, str]]] = []
        self.fail = fail
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.bodies.append((body, dict(self.headers)))
                failing = len(outer.bodies) <= outer.fail
                self.send_response(503 if failing else 200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("fail", [0, 2])
def test_webhook_signed_and_retried(app: LiveApp, image_server: ImageServer, fail: int) -> None:
    receiver = Receiver(fail=fail)
    try:
        with app.client() as client:
            put = client.put("/v1/webhook", json={"url": receiver.url, "secret": "s3cret-value", "events": ["success"]})
            assert put.status_code == 200, put.text
            assert put.json()["data"] == {"url": receiver.url, "events": ["success"], "secret_set": True}
            task = client.post(
                "/v1/image/edit/async", json={"input": image_server.url("coffee.jpg"), "operations": {}}
            ).json()["data"]
            _wait(lambda: len(receiver.bodies) >= fail + 1)
            body, headers = receiver.bodies[-1]
            expected = hmac.new(b"s3cret-value", body, hashlib.sha256).hexdigest()
            assert headers["X-Claid-Hmac-SHA256"] == expected
            payload = json.loads(body)
            assert payload["data"]["id"] == task["id"] and payload["data"]["status"] == "DONE"
            assert payload["data"]["result"]["output_object"]["ext"] == "jpeg"

            def delivered() -> bool:
                hook = client.get(f"/v1/image/edit/async/{task['id']}").json()["data"].get("webhook")
                return bool(hook and hook["delivered"])

            _wait(delivered)
            hook = client.get(f"/v1/image/edit/async/{task['id']}").json()["data"]["webhook"]
            assert hook == {"delivered": True, "attempts": fail + 1, "last_status": 200}
            time.sleep(0.5)
            assert len(receiver.bodies) == fail + 1  # exactly once after success, whatever the replicas
            # a failed task does not trigger a success-only webhook
            bad = client.post(
                "/v1/image/edit/async", json={"input": image_server.url("page.html"), "operations": {}}
            ).json()["data"]
            wait_done(client, f"/v1/image/edit/async/{bad['id']}")
            time.sleep(0.6)
            assert len(receiver.bodies) == fail + 1
            client.delete("/v1/webhook")
    finally:
        receiver.close()


def test_webhook_settings_validation(app: LiveApp) -> None:
    with app.client() as client:
        assert client.get("/v1/webhook").status_code in (200, 404)
        assert client.put("/v1/webhook", json={"url": "ftp://x"}).status_code == 422
        private = client.put("/v1/webhook", json={"url": "http://10.0.0.1/hook"})
        assert private.status_code == 400 and list(private.json()["error_details"]) == ["url"]
        assert client.delete("/v1/webhook").json() == {"data": None}
        assert client.get("/v1/webhook").status_code == 404


def test_webhook_without_an_answer_records_a_message(app: LiveApp, image_server: ImageServer) -> None:
    """`last_status` is the receiver's status as a number when it answers, and a message when nothing answers."""
    if app.kind != "local":
        pytest.skip("the sender is the same code on both topologies; one run is enough")
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    with app.client() as client:
        assert client.put("/v1/webhook", json={"url": dead, "events": ["success"]}).status_code == 200
        try:
            task = client.post(
                "/v1/image/edit/async", json={"input": image_server.url("coffee.jpg"), "operations": {}}
            ).json()["data"]

            def attempted() -> bool:
                hook = client.get(f"/v1/image/edit/async/{task['id']}").json()["data"].get("webhook")
                return bool(hook and hook["attempts"] >= 1)

            _wait(attempted)
            hook = client.get(f"/v1/image/edit/async/{task['id']}").json()["data"]["webhook"]
            assert hook["delivered"] is False
            assert isinstance(hook["last_status"], str) and hook["last_status"].startswith("no response"), hook
        finally:
            client.delete("/v1/webhook")
