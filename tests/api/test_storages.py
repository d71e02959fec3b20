"""Storage connector CRUD through real HTTP, and edits that read from and write to a storage."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import httpx
import pyvips

from tests.conftest import LiveApp, fixture_bytes

S3_BODY = {
    "name": "s3-playground",
    "type": "s3",
    "parameters": {
        "bucket": "playground",
        "path": "",
        "credentials": {"access_key": "AKIAEXAMPLE", "secret_access_key": "TOP-SECRET-VALUE"},
        "endpoint_url": "http://127.0.0.1:9",
    },
}


def test_types(live: LiveApp) -> None:
    with live.client() as client:
        assert client.get("/v1/storage/storage-types").json() == {"data": ["web_folder", "s3", "gcs", "local"]}


def test_crud_secrets_never_returned(live: LiveApp) -> None:
    with live.client() as client:
        created = client.post("/v1/storage/storages", json=S3_BODY)
        assert created.status_code == 200, created.text
        data = created.json()["data"]
        assert data["name"] == "s3-playground" and data["type"] == "s3"
        assert data["parameters"]["credentials"] == {"access_key": "AKIAEXAMPLE"}
        assert data["parameters"]["bucket"] == "playground"
        sid = data["id"]
        for response in (client.get(f"/v1/storage/storages/{sid}"), client.get("/v1/storage/storages")):
            assert "TOP-SECRET-VALUE" not in response.text
        assert client.post("/v1/storage/storages", json=S3_BODY).status_code == 409
        patched = client.patch(f"/v1/storage/storages/{sid}", json={"parameters": {"path": "photos/"}})
        assert patched.status_code == 200, patched.text
        assert patched.json()["data"]["parameters"]["path"] == "photos/"
        assert patched.json()["data"]["parameters"]["credentials"] == {"access_key": "AKIAEXAMPLE"}
        renamed = client.patch(f"/v1/storage/storages/{sid}", json={"name": "renamed"})
        assert renamed.json()["data"]["name"] == "renamed"
        assert client.delete(f"/v1/storage/storages/{sid}").json() == {"data": None}
        missing = client.get(f"/v1/storage/storages/{sid}")
        assert missing.status_code == 404 and missing.json()["error_message"] == "Storage not found."
    # at rest the secret is sealed: the database file does not contain it
    db = sqlite3.connect(live.settings.resolved_home / "retouch.db")
    assert "TOP-SECRET-VALUE" not in "\n".join(str(r) for r in db.execute("SELECT * FROM storages"))
    db.close()


def test_validation_of_parameters(live: LiveApp) -> None:
    with live.client() as client:
        no_bucket = client.post("/v1/storage/storages", json={"name": "x", "type": "s3", "parameters": {}})
        assert no_bucket.status_code == 422 and "bucket" in no_bucket.json()["error_message"]
        long_name = client.post("/v1/storage/storages", json={**S3_BODY, "name": "n" * 51})
        assert long_name.status_code == 422 and "name" in long_name.json()["error_details"]
        outside = client.post(
            "/v1/storage/storages", json={"name": "etc", "type": "local", "parameters": {"path": "/etc"}}
        )
        assert (
            outside.status_code == 400 and "not under an allowed local storage root" in outside.json()["error_message"]
        )
        web = client.post(
            "/v1/storage/storages", json={"name": "w", "type": "web_folder", "parameters": {"base_url": "ftp://x"}}
        )
        assert web.status_code == 422
        no_secret = client.post(
            "/v1/storage/storages",
            json={"name": "s", "type": "s3", "parameters": {"bucket": "b", "credentials": {"access_key": "AK"}}},
        )
        # The exact dotted path of the field at fault, not `body`.
        assert no_secret.status_code == 422 and list(no_secret.json()["error_details"]) == ["parameters.credentials"]
        assert list(no_bucket.json()["error_details"]) == ["parameters.bucket"]
        assert list(web.json()["error_details"]) == ["parameters.base_url"]
        # Problems the connector finds name their field too (still 400 storage: the values are well-formed).
        assert list(outside.json()["error_details"]) == ["parameters.path"]
        relative = client.post("/v1/storage/storages", json={"name": "r", "type": "local", "parameters": {"path": "r"}})
        assert relative.status_code == 400 and list(relative.json()["error_details"]) == ["parameters.path"]
        gcs = {
            "name": "g",
            "type": "gcs",
            "parameters": {"bucket": "Bad Bucket!", "endpoint_url": "http://127.0.0.1:9"},
        }
        bad_bucket = client.post("/v1/storage/storages", json=gcs)
        assert bad_bucket.status_code == 400 and list(bad_bucket.json()["error_details"]) == ["parameters.bucket"]
        key = {"bucket": "ok-bucket", "credentials": {"service_account": {"type": "external_account"}}}
        bad_key = client.post("/v1/storage/storages", json={"name": "g", "type": "gcs", "parameters": key})
        assert list(bad_key.json()["error_details"]) == ["parameters.credentials.service_account"], bad_key.text
        # PATCH checks the merged parameters: a wrong nested value is named at its own path.
        sid = client.post("/v1/storage/storages", json={**S3_BODY, "name": "patchable"}).json()["data"]["id"]
        patched = client.patch(f"/v1/storage/storages/{sid}", json={"parameters": {"credentials": {"access_key": ""}}})
        assert patched.status_code == 422 and list(patched.json()["error_details"]) == [
            "parameters.credentials.access_key"
        ], patched.text
        nested = client.patch(f"/v1/storage/storages/{sid}", json={"parameters": {"credentials": "x"}})
        assert nested.status_code == 422 and list(nested.json()["error_details"]) == ["parameters.credentials"]


def test_tenancy_and_scope(live: LiveApp) -> None:
    with live.client() as client:
        sid = client.post("/v1/storage/storages", json={**S3_BODY, "name": "mine"}).json()["data"]["id"]
    intruder = live.service.keys.create("intruder")
    with live.client(intruder) as client:
        assert client.get(f"/v1/storage/storages/{sid}").status_code == 404
        assert client.delete(f"/v1/storage/storages/{sid}").status_code == 404
        assert all(s["name"] != "mine" for s in client.get("/v1/storage/storages").json()["data"])
    editing_only = live.service.keys.create("editor", ("image_editing",))
    with live.client(editing_only) as client:
        denied = client.get("/v1/storage/storages")
        assert denied.status_code == 403 and denied.json()["error_message"] == "Not enough permissions."


def test_edit_reads_and_writes_local_storage(live: LiveApp) -> None:
    folder = live.add_local_storage("photos")
    (folder / "in").mkdir(exist_ok=True)
    (folder / "in" / "Coffee Cup.JPG").write_bytes(fixture_bytes("coffee.jpg"))
    body = {
        "input": "storage://photos/in/Coffee%20Cup.JPG",
        "operations": {"resizing": {"width": 300}},
        "output": {"destination": "storage://photos/out/", "format": "png"},
    }
    with live.client() as client:
        response = client.post("/v1/image/edit", json=body)
    assert response.status_code == 200, response.text
    out = response.json()["data"]["output"]
    assert "tmp_url" not in out
    assert out["object_key"] == "out/Coffee Cup.png"
    assert out["claid_storage_uri"] == "storage://photos/out/Coffee Cup.png"
    assert out["object_uri"].startswith("file://")
    written = pyvips.Image.new_from_file(str(folder / "out" / "Coffee Cup.png"))
    assert (written.width, written.height) == (300, 200)
    # a full file path as destination is used as is
    body["output"] = "storage://photos/exact/name.jpg"
    with live.client() as client:
        response = client.post("/v1/image/edit", json=body)
    assert response.status_code == 200, response.text
    assert (folder / "exact" / "name.jpg").read_bytes()[:3] == b"\xff\xd8\xff"


def test_first_start_creates_local_storage(tmp_path: Path) -> None:
    from retouch.bootstrap import open_service
    from tests.conftest import make_settings

    service = open_service(make_settings(tmp_path))
    try:
        key = service.first_start()
        assert key is not None and service.first_start() is None
        principal = service.keys.authenticate(key)
        assert principal is not None
        storages = service.storages.list(principal.account_id)
        assert [(s["name"], s["type"], s["parameters"]["path"]) for s in storages] == [
            ("local", "local", str((tmp_path / "storage" / "default").resolve()))
        ]
    finally:
        service.close()


def test_openapi_lists_storage_routes(live: LiveApp) -> None:
    paths = httpx.get(f"{live.base}/openapi.json").json()["paths"]
    assert "/v1/storage/storages/{storage_id}" in paths


def test_one_time_format_everywhere(live: LiveApp) -> None:
    """Issue 13: every time in an answer is RFC 3339 in UTC with milliseconds and Z - a storage right after its
    creation, the same storage read back (SQLite drops the zone), and a task."""
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    folder = live.settings.storage_roots[0] / "stamped"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(fixture_bytes("coffee.jpg"))
    with live.client() as client:
        spec = {"name": "stamped", "type": "local", "parameters": {"path": str(folder)}}
        mine = client.post("/v1/storage/storages", json=spec).json()["data"]
        again = client.get(f"/v1/storage/storages/{mine['id']}").json()["data"]
        task = client.post("/v1/image/edit/async", json={"input": "storage://stamped/a.jpg"}).json()["data"]
    assert stamp.match(mine["created_at"]) and again["created_at"] == mine["created_at"], (mine, again)
    assert stamp.match(task["created_at"]), task


def test_the_readme_scope_table_is_what_the_routes_require(live: LiveApp) -> None:
    """Every route of /openapi.json, called with a key of each scope: 403 exactly where the README's table says."""
    schema = httpx.get(f"{live.base}/openapi.json").json()
    editing, storage = live.create_key("scope-e", ("image_editing",)), live.create_key("scope-s", ("storage",))
    open_routes = {"/healthz", "/readyz", "/v1/tmp/{token}/{name}"}
    for path, operations in schema["paths"].items():
        concrete = path.replace("{task_id}", "999999").replace("{storage_id}", "999999")
        concrete = concrete.replace("{token}", "x").replace("{name}", "y.jpg")
        for method in operations:
            bare = path.removeprefix("/v1-beta1").removeprefix("/v1")
            if path in open_routes:
                answer = httpx.request(method, f"{live.base}{concrete}", timeout=30)
                assert answer.status_code != 401, (method, path)
                continue
            needs = "storage" if bare.startswith("/storage/") else "image_editing"
            for key, scope in ((editing, "image_editing"), (storage, "storage")):
                answer = httpx.request(
                    method, f"{live.base}{concrete}", headers={"Authorization": f"Bearer {key}"}, json={}, timeout=30
                )
                assert (answer.status_code == 403) == (scope != needs), (method, path, scope, answer.status_code)
            assert httpx.request(method, f"{live.base}{concrete}", timeout=30).status_code == 401, (method, path)
