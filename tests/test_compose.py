"""deploy/docker-compose.yml, proved without a container engine (CI has none).

1. The file is valid against the Compose Specification's schema, and its start-up order holds: every
   long-running service has a healthcheck, every dependency waits on a condition (healthy, or a one-shot
   completed), no dependency names a missing service or goes round in a circle.
2. Its `init` step runs as written - the same shell command, with the compose environment - against a real
   S3 server on loopback standing for MinIO (only the host names and credentials swapped), and a
   `retouch serve` with that environment then passes a batch from the bucket to the bucket, with its
   `tmp_url` results in the shared `tmp` storage the init step made. The SSRF guard admits the endpoint
   only because the file allows it: without `RETOUCH_FETCH_ALLOW_HOSTS` the same init step is refused.

The Celery side of the same topology (two replicas, two workers, PostgreSQL, Redis) runs in tests/scaleout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from tests.api.test_jobs import wait_done
from tests.conftest import FIXTURES, free_port, wait_healthy
from tests.servers.moto import MotoServer

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_the_file_is_valid_compose(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft201909Validator(schema).validate(compose)


def test_start_up_order_is_declared(compose: dict[str, Any]) -> None:
    services: dict[str, dict[str, Any]] = compose["services"]
    one_shot = {name for name, s in services.items() if s.get("restart") == "no"}
    assert one_shot == {"minio-init", "migrate", "init"}
    for name, service in services.items():
        if name not in one_shot:
            assert "healthcheck" in service, f"{name} has no healthcheck"
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a list"
        for target, rule in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            wanted = "service_completed_successfully" if target in one_shot else "service_healthy"
            assert rule["condition"] == wanted, (name, target, rule)
    # No circle: a topological order exists.
    order: list[str] = []
    pending = dict(services)
    while pending:
        ready = [n for n, s in pending.items() if set(s.get("depends_on", {})) <= set(order)]
        assert ready, f"circular depends_on among {sorted(pending)}"
        order += sorted(ready)
        for n in ready:
            del pending[n]
    assert order.index("init") < order.index("api-1") and order.index("migrate") < order.index("worker-ai")
    # Every retouch process has the same environment, and it allows the MinIO endpoint the init step uses.
    env = services["api-1"]["environment"]
    assert all(services[n]["environment"] == env for n in ("api-2", "worker-fast", "worker-ai", "migrate"))
    parameters = json.loads(services["init"]["environment"]["TMP_STORAGE_PARAMETERS"])
    endpoint = httpx.URL(parameters["endpoint_url"])
    assert f"{endpoint.host}:{endpoint.port}" in env["RETOUCH_FETCH_ALLOW_HOSTS"].split(",")
    assert env["RETOUCH_TMP_STORAGE"].startswith("storage://tmp/")


def _local_env(compose: dict[str, Any], moto: MotoServer, home: Path, *, allow: bool = True) -> dict[str, str]:
    """The compose environment on this machine: MinIO is the moto server, SQLite stands for PostgreSQL and
    the local executor for Celery (tests/scaleout runs those); everything else as written."""
    env = dict(compose["services"]["init"]["environment"])
    endpoint = httpx.URL(moto.endpoint_url)
    here = f"{endpoint.host}:{endpoint.port}"
    parameters = json.loads(env["TMP_STORAGE_PARAMETERS"])
    assert parameters["endpoint_url"] == "http://minio:9000"
    parameters["endpoint_url"] = moto.endpoint_url
    parameters["credentials"] = {"access_key": moto.access_key, "secret_access_key": moto.secret_key}
    env["TMP_STORAGE_PARAMETERS"] = json.dumps(parameters)
    env["RETOUCH_FETCH_ALLOW_HOSTS"] = env["RETOUCH_FETCH_ALLOW_HOSTS"].replace("minio:9000", here)
    if not allow:
        del env["RETOUCH_FETCH_ALLOW_HOSTS"]
    env.update(
        RETOUCH_DATABASE_URL=f"sqlite:///{home / 'retouch.db'}",
        RETOUCH_EXECUTOR="local",
        RETOUCH_SECRET_KEY="8sBn4Vl3kGz1p6V0m2YJ9rS0cW5u1QeZ3o7aTqL4xkE=",
        RETOUCH_PUBLIC_URL="http://127.0.0.1:0",
        RETOUCH_RATE_LIMIT_PER_MINUTE="0",
        RETOUCH_RATE_LIMIT_PER_SECOND="0",
    )
    env.pop("RETOUCH_BROKER_URL")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RETOUCH_")}
    return {**clean, **{k: str(v) for k, v in env.items()}, "RETOUCH_HOME": str(home)}


def _init_command(compose: dict[str, Any]) -> list[str]:
    command: list[str] = compose["services"]["init"]["command"]
    assert command[:2] == ["sh", "-c"]
    # Compose turns $$ into $ before the shell sees it; `retouch` is this checkout's.
    script = command[2].replace("$$", "$").replace("retouch ", f"{sys.executable} -m retouch ", 1)
    return ["sh", "-c", script]


def test_init_and_a_batch_as_written(compose: dict[str, Any], moto_server: MotoServer, tmp_path: Path) -> None:
    s3 = moto_server.client("s3")
    bucket = json.loads(compose["services"]["init"]["environment"]["TMP_STORAGE_PARAMETERS"])["bucket"]
    # minio-init's `mc mb --ignore-existing`: the bucket may exist from another test of this session.
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=bucket)

    # Without the allow-list the guard refuses the private endpoint: the failure the file used to have.
    refused = subprocess.run(
        _init_command(compose),
        env=_local_env(compose, moto_server, tmp_path / "refused", allow=False),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "not allowed" in refused.stderr, refused.stderr

    home = tmp_path / "home"
    env = _local_env(compose, moto_server, home)
    for attempt in ("created storage 'tmp'", "exists already: unchanged"):  # a restarted init changes nothing
        done = subprocess.run(_init_command(compose), env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and attempt in done.stdout, done.stdout + done.stderr

    run = uuid.uuid4().hex[:8]
    for index in range(3):
        s3.put_object(Bucket=bucket, Key=f"photos-{run}/p{index}.jpg", Body=(FIXTURES / "coffee.jpg").read_bytes())
    key_done = subprocess.run(
        [sys.executable, "-m", "retouch", "keys", "create", "--account", "default"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    key = key_done.stdout.strip().splitlines()[-1]
    port = free_port()
    env["RETOUCH_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "retouch", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(port)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            parameters = json.loads(env["TMP_STORAGE_PARAMETERS"])
            shop = {"name": "shop", "type": "s3", "parameters": {**parameters, "path": ""}}
            assert client.post("/v1/storage/storages", json=shop).status_code == 200
            batch = client.post(
                "/v1/image/edit/batch",
                json={
                    "input": f"storage://shop/photos-{run}/",
                    "operations": {"resizing": {"width": 100}},
                    "output": {"destination": f"storage://shop/out-{run}/", "format": "webp"},
                },
            )
            assert batch.status_code == 200, batch.text
            task = wait_done(client, batch.json()["data"]["result_url"])
            assert task["status"] == "DONE", task
            written = s3.list_objects_v2(Bucket=bucket, Prefix=f"out-{run}/")["Contents"]
            assert sorted(o["Key"] for o in written) == [f"out-{run}/p{i}.webp" for i in range(3)]
            # A sync result lands in the shared tmp storage (the bucket's tmp/results/), served by its tmp_url.
            edit = client.post(
                "/v1/image/edit", json={"input": f"storage://shop/photos-{run}/p0.jpg", "operations": {}}
            )
            assert edit.status_code == 200, edit.text
            assert httpx.get(edit.json()["data"]["output"]["tmp_url"], timeout=30).status_code == 200
            held = s3.list_objects_v2(Bucket=bucket, Prefix="tmp/results/")
            assert held.get("KeyCount", 0) >= 1
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
