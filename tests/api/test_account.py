"""The public endpoints the console uses, through real HTTP: recent tasks, usage, browsing a storage folder,
the webhook's test event. A script can do all that the console does."""

from __future__ import annotations

import hashlib
import hmac
import json

from tests.api.test_jobs import Receiver, make_folder, wait_done
from tests.conftest import LiveApp, fixture_bytes

JPG = fixture_bytes("coffee.jpg")


def test_tasks_and_usage_follow_a_batch(live: LiveApp) -> None:
    make_folder(live, "acct-in", {f"p{i}.jpg": JPG for i in range(3)} | {"bad.jpg": b"not an image"})
    live.add_local_storage("acct-out")
    other = live.create_key("acct-other")
    with live.client() as client:
        before = client.get("/v1/usage").json()["data"]
        body = {
            "input": "storage://acct-in/",
            "operations": {"resizing": {"width": 40}},
            "output": "storage://acct-out/",
        }
        task = client.post("/v1/image/edit/batch", json=body).json()["data"]
        wait_done(client, task["result_url"])
        listed = client.get("/v1/tasks", params={"limit": 5})
        assert listed.status_code == 200, listed.text
        newest = listed.json()["data"][0]
        assert newest["id"] == task["id"] and newest["kind"] == "batch" and newest["status"] == "ERROR"
        assert newest["progress"] == {"total": 4, "done": 3, "failed": 1}
        assert newest["result_url"] == task["result_url"] and newest["finished_at"]
        after = client.get("/v1/usage").json()["data"]
        for window in ("last_24_hours", "last_30_days"):
            assert after[window]["tasks"] == before[window]["tasks"] + 1
            assert after[window]["images_done"] == before[window]["images_done"] + 3
            assert after[window]["images_failed"] == before[window]["images_failed"] + 1
        assert after["running_tasks"] == 0
        assert client.get("/v1/tasks", params={"limit": 0}).status_code == 422
    with live.client(other) as client:  # another account sees none of it
        assert client.get("/v1/tasks").json() == {"data": []}
        assert client.get("/v1/usage").json()["data"]["last_30_days"] == {
            "tasks": 0,
            "images_done": 0,
            "images_failed": 0,
        }
    with live.client(None) as client:
        assert client.get("/v1/tasks").status_code == 401


def test_browse_a_storage_folder(live: LiveApp) -> None:
    make_folder(
        live, "browse", {"a.jpg": JPG, "b.png": JPG, "notes.txt": b"x", "sub/c.jpg": JPG, "sub/deep/d.jpg": JPG}
    )
    with live.client() as client:
        storage = next(s for s in client.get("/v1/storage/storages").json()["data"] if s["name"] == "browse")
        url = f"/v1/storage/storages/{storage['id']}/objects"
        root = client.get(url).json()["data"]
        assert root["path"] == "" and root["uri"] == "storage://browse/"
        assert [o["key"] for o in root["objects"]] == ["a.jpg", "b.png"]  # images only
        assert root["objects"][0]["size"] == len(JPG)
        assert root["folders"] == ["sub/"] and root["truncated"] is False
        sub = client.get(url, params={"path": "sub"}).json()["data"]
        assert sub["path"] == "sub/" and [o["key"] for o in sub["objects"]] == ["sub/c.jpg"]
        assert sub["folders"] == ["sub/deep/"]
        first = client.get(url, params={"limit": 1}).json()["data"]
        assert len(first["objects"]) == 1 and first["truncated"] is True
        bad = client.get(url, params={"path": "../../etc/"})
        assert bad.status_code == 422 and bad.json()["error_code"] == "9000"
        assert client.get("/v1/storage/storages/999999/objects").status_code == 404
    with live.client(live.create_key("browse-other")) as client:  # another account's storage is not found
        assert client.get(f"/v1/storage/storages/{storage['id']}/objects").status_code == 404
    with live.client(live.create_key("browse-editor", ("image_editing",))) as client:
        assert client.get(f"/v1/storage/storages/{storage['id']}/objects").status_code == 403


def test_webhook_test_event_is_signed_and_reports_the_status(live: LiveApp) -> None:
    key = live.create_key("hook-test")
    ok, failing = Receiver(), Receiver(fail=1)
    try:
        with live.client(key) as client:
            assert client.post("/v1/webhook/test").status_code == 404  # nothing configured yet
            client.put("/v1/webhook", json={"url": ok.url, "secret": "s3cret-value"}).raise_for_status()
            sent = client.post("/v1/webhook/test")
            assert sent.status_code == 200, sent.text
            data = sent.json()["data"]
            assert data["delivered"] is True and data["status"] == 200 and data["signed"] is True
            assert data["url"] == ok.url and data["ms"] >= 0
            body, headers = ok.bodies[-1]
            assert json.loads(body)["data"]["event"] == "test"
            assert headers["X-Claid-Hmac-SHA256"] == hmac.new(b"s3cret-value", body, hashlib.sha256).hexdigest()
            client.put("/v1/webhook", json={"url": failing.url}).raise_for_status()
            data = client.post("/v1/webhook/test").json()["data"]
            assert data == data | {"delivered": False, "status": 503, "signed": False}
            assert "X-Claid-Hmac-SHA256" not in failing.bodies[-1][1]
            failing.close()  # nobody listens any more: the error's name, not a status
            data = client.post("/v1/webhook/test").json()["data"]
            assert data["delivered"] is False and data["status"] == "ConnectError"
    finally:
        ok.close()
