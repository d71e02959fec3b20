"""End to end through the API against real storage servers on loopback: S3 (moto's server) and GCS
(gcp-storage-emulator), for sync, async and batch."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pyvips

from tests.conftest import LiveApp, fixture_bytes
from tests.servers.gcs import GCSEmulator
from tests.servers.moto import MotoServer


def _wait(client: httpx.Client, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (data := client.get(url).json()["data"])["status"] not in ("DONE", "ERROR", "CANCELLED"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    result: dict[str, Any] = data
    return result


def test_s3_sync_async_batch(live: LiveApp, moto_server: MotoServer) -> None:
    bucket = f"shop-{uuid.uuid4().hex[:8]}"
    s3 = moto_server.client()
    s3.create_bucket(Bucket=bucket)
    for key in ("catalog/in/a.jpg", "catalog/in/b.png", "catalog/in/sub/c.jpg", "catalog/in/sub/"):
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=b"" if key.endswith("/") else fixture_bytes("photo.png" if key.endswith(".png") else "coffee.jpg"),
        )
    name = f"s3-{bucket}"
    storage = {
        "name": name,
        "type": "s3",
        "parameters": {
            "bucket": bucket,
            "path": "catalog",
            "endpoint_url": moto_server.endpoint_url,
            "credentials": {"access_key": moto_server.access_key, "secret_access_key": moto_server.secret_key},
        },
    }
    with live.client() as client:
        assert client.post("/v1/storage/storages", json=storage).status_code == 200
        sync = client.post(
            "/v1/image/edit",
            json={
                "input": f"storage://{name}/in/a.jpg",
                "operations": {"resizing": {"width": 120}},
                "output": {"destination": f"storage://{name}/out/", "format": "webp"},
            },
        )
        assert sync.status_code == 200, sync.text
        out = sync.json()["data"]["output"]
        assert out["object_bucket"] == bucket and out["object_key"] == "catalog/out/a.webp"
        assert out["object_uri"] == f"s3://{bucket}/catalog/out/a.webp"
        assert out["claid_storage_uri"] == f"storage://{name}/out/a.webp"
        body = s3.get_object(Bucket=bucket, Key="catalog/out/a.webp")
        assert body["ContentType"] == "image/webp"
        assert pyvips.Image.new_from_buffer(body["Body"].read(), "").width == 120

        task = client.post(
            "/v1/image/edit/async",
            json={"input": f"storage://{name}/in/b.png", "operations": {}, "output": f"storage://{name}/async/b.jpg"},
        )
        done = _wait(client, f"/v1/image/edit/async/{task.json()['data']['id']}")
        assert done["status"] == "DONE", done
        assert s3.head_object(Bucket=bucket, Key="catalog/async/b.jpg")["ContentLength"] > 0

        batch = client.post(
            "/v1/image/edit/batch",
            json={
                "input": {"source": f"storage://{name}/in/", "recursive": True},
                "operations": {"resizing": {"width": 50}},
                "output": f"storage://{name}/batch/",
            },
        )
        done = _wait(client, f"/v1/image/edit/batch/{batch.json()['data']['id']}")
    assert done["status"] == "DONE", done["errors"]
    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="catalog/batch/")["Contents"])
    assert listed == ["catalog/batch/a.jpg", "catalog/batch/b.jpg", "catalog/batch/sub/c.jpg"]


def test_s3_wrong_credentials_fail_clearly(live: LiveApp, moto_server: MotoServer) -> None:
    bucket = f"locked-{uuid.uuid4().hex[:8]}"
    moto_server.client().create_bucket(Bucket=bucket)
    storage = {
        "name": f"bad-{bucket}",
        "type": "s3",
        "parameters": {
            "bucket": bucket,
            "endpoint_url": moto_server.endpoint_url,
            "credentials": {"access_key": moto_server.access_key, "secret_access_key": "wrong-secret"},
        },
    }
    with live.client() as client:
        assert client.post("/v1/storage/storages", json=storage).status_code == 200
        response = client.post("/v1/image/edit", json={"input": f"storage://bad-{bucket}/a.jpg", "operations": {}})
    assert response.status_code == 400
    body = response.json()
    assert body["error_type"] == "storage" and f"bad-{bucket}" in body["error_message"]
    assert "wrong-secret" not in response.text


def test_gcs_sync_and_batch(live: LiveApp, gcs_emulator: GCSEmulator) -> None:
    bucket = f"gcs-{uuid.uuid4().hex[:8]}"
    gcs = gcs_emulator.client()
    gcs.create_bucket(bucket)
    for key in ("in/a.jpg", "in/b.jpg"):
        gcs.bucket(bucket).blob(key).upload_from_string(fixture_bytes("chelsea.jpg"), content_type="image/jpeg")
    name = f"g-{bucket}"
    storage = {"name": name, "type": "gcs", "parameters": {"bucket": bucket, "endpoint_url": gcs_emulator.endpoint}}
    with live.client() as client:
        created = client.post("/v1/storage/storages", json=storage)
        assert created.status_code == 200, created.text
        sync = client.post(
            "/v1/image/edit",
            json={
                "input": f"storage://{name}/in/a.jpg",
                "operations": {"padding": "10%"},
                "output": f"storage://{name}/out/x.png",
            },
        )
        assert sync.status_code == 200, sync.text
        assert sync.json()["data"]["output"]["object_uri"] == f"gs://{bucket}/out/x.png"
        batch = client.post(
            "/v1/image/edit/batch",
            json={"input": f"storage://{name}/in/", "operations": {}, "output": f"storage://{name}/batch/"},
        )
        done = _wait(client, f"/v1/image/edit/batch/{batch.json()['data']['id']}")
    assert done["status"] == "DONE", done["errors"]
    names = sorted(b.name for b in gcs.list_blobs(bucket, prefix="batch/"))
    assert names == ["batch/a.jpg", "batch/b.jpg"]
    assert gcs.bucket(bucket).blob("out/x.png").download_as_bytes()[:4] == b"\x89PNG"
