"""The OpenAPI document tells the truth: every answer has a schema (errors: the envelope), every request body an
example that works, the docs pages need no internet, and a client generated from the document reads real answers."""

from __future__ import annotations

import copy
import importlib
import json
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import TypeAdapter

from retouch.api.openapi import install_openapi
from retouch.contracts.edit import EditResponse, ImageObject
from retouch.contracts.envelopes import ErrorEnvelope, RateLimitEnvelope
from retouch.contracts.responses import UndeclaredResponseField
from retouch.contracts.storages import StorageOut, StorageResponse
from retouch.contracts.tasks import AsyncTask, AsyncTaskResponse, BatchTask, BatchTaskResponse, Webhook
from retouch.errors import (
    AuthError,
    ConflictError,
    FetchError,
    ImageError,
    LimitExceeded,
    NotFound,
    OperationUnavailable,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RetouchError,
    StorageError,
    ValidationFailed,
)
from tests.conftest import ImageServer, LiveApp, fixture_bytes

METHODS = ("get", "put", "post", "delete", "patch")
FINAL = ("DONE", "ERROR", "CANCELLED")


@pytest.fixture(scope="module")
def document(live: LiveApp) -> dict[str, Any]:
    response = httpx.get(f"{live.base}/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = doc["components"]["schemas"][name]
    return schema


def ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.removeprefix("#/components/schemas/") if ref else None


def walk_objects(doc: dict[str, Any], schema: dict[str, Any], seen: set[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object schema reachable from ``schema`` (through $ref, anyOf/oneOf/allOf, items, maps), once."""
    name = ref_name(schema)
    if name is not None:
        if name in seen:
            return
        seen.add(name)
    schema = resolve(doc, schema)
    if "properties" in schema:
        yield name or schema.get("title", "?"), schema
        for prop in schema["properties"].values():
            yield from walk_objects(doc, prop, seen)
    for key in ("anyOf", "oneOf", "allOf"):
        for member in schema.get(key, []):
            yield from walk_objects(doc, member, seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from walk_objects(doc, schema[key], seen)


# ------------------------------------------------------------------------------------------------ the document


def test_every_success_answer_has_a_schema_with_described_properties(document: dict[str, Any]) -> None:
    checked = 0
    for path, method, operation in operations(document):
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert successes, f"{method} {path}: no 2xx answer"
        for status, answer in successes.items():
            assert answer.get("content"), f"{method} {path} {status}: no body described"
            for media, content in answer["content"].items():
                schema = content["schema"]
                if path == "/v1/tmp/{token}/{name}":  # the one route that answers with the image itself
                    assert schema == {"type": "string", "format": "binary"} and media != "application/json"
                    continue
                assert media == "application/json"
                top = resolve(document, schema)
                assert top.get("properties"), f"{method} {path} {status}: a schema without properties"
                assert "data" in top["properties"], f"{method} {path}: not the {{data: ...}} wrapper"
                for name, obj in walk_objects(document, schema, set()):
                    for field, spec in obj["properties"].items():
                        assert spec.get("description"), f"{method} {path}: {name}.{field} has no description"
                checked += 1
    assert checked >= 19


def test_every_error_answer_names_the_envelope(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        answers = operation["responses"]
        errors = {status: answer for status, answer in answers.items() if status[0] in "45"}
        assert "500" in errors and "429" in errors, f"{method} {path}: {sorted(errors)}"
        if path.startswith("/v1/") and not path.startswith("/v1/tmp/"):
            assert {"401", "403"} <= set(errors), f"{method} {path} needs a key: {sorted(errors)}"
        if method in ("post", "put", "patch") and "requestBody" in operation and "upload" not in path:
            assert {"400", "413", "422"} <= set(errors), f"{method} {path}: {sorted(errors)}"
        for status, answer in errors.items():
            schema = answer["content"]["application/json"]["schema"]
            expected = {"429": "RateLimitEnvelope"}.get(status, "ErrorEnvelope")
            if (path, status) == ("/readyz", "503"):
                expected = "ReadinessResponse"  # not ready: the readiness body itself, with status "error"
            assert ref_name(schema) == expected, f"{method} {path} {status}: {schema}"
            assert answer["description"], f"{method} {path} {status}: no description"
    envelope = document["components"]["schemas"]["ErrorEnvelope"]
    assert set(envelope["required"]) == {"error_code", "error_type", "error_message", "error_details"}


def test_fastapi_validation_error_is_gone(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert "HTTPValidationError" not in text
    assert "#/components/schemas/ValidationError" not in text
    assert not {"HTTPValidationError", "ValidationError"} & set(document["components"]["schemas"])


def test_a_route_without_its_errors_still_gets_the_envelope_for_422() -> None:
    """The safety net for a route added without ``errors(...)``: FastAPI's own 422 names the envelope."""
    app = FastAPI()

    @app.get("/things/{thing_id}")
    def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @app.get("/files/{name}")
    def file(name: str) -> dict[str, str]:
        return {"name": name}

    install_openapi(app)
    doc = app.openapi()
    assert (
        ref_name(doc["paths"]["/things/{thing_id}"]["get"]["responses"]["422"]["content"]["application/json"]["schema"])
        == "ErrorEnvelope"
    )
    assert "422" not in doc["paths"]["/files/{name}"]["get"]["responses"]  # a plain string cannot fail
    assert "HTTPValidationError" not in json.dumps(doc) and "ErrorEnvelope" in doc["components"]["schemas"]


def test_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    bodies = 0
    for path, method, operation in operations(document):
        if method == "post":
            # The cancel routes and the webhook's test event take no body; every other POST does.
            bodiless = path.endswith(("/cancel", "/webhook/test"))
            assert ("requestBody" in operation) == (not bodiless), f"POST {path}"
        if "requestBody" not in operation:
            continue
        bodies += 1
        for media, content in operation["requestBody"]["content"].items():
            examples = content.get("examples") or ([content["example"]] if "example" in content else [])
            if media == "multipart/form-data":  # the upload: the `data` part carries the example
                examples = content["schema"]["properties"]["data"].get("examples", [])
            assert examples, f"{method} {path} {media}: no example"
    assert bodies == 7  # edit, upload, async, batch, storage create and patch, webhook put


def test_error_envelope_models_match_the_errors() -> None:
    errors: list[RetouchError] = [
        RetouchError("boom"),
        AuthError(),
        PermissionDenied(),
        PayloadTooLarge("too big"),
        NotFound("gone"),
        ConflictError("taken"),
        ValidationFailed("bad", details={"operations.resizing.width": ["expected a number"]}),
        ImageError("not an image"),
        LimitExceeded("too many pixels"),
        OperationUnavailable("no model"),
        StorageError("no storage"),
        FetchError("refused"),
    ]
    for error in errors:
        body = error.envelope()
        assert ErrorEnvelope.model_validate(body).model_dump() == body  # extra="forbid": no key unaccounted for
    limited = RateLimited().envelope()
    assert RateLimitEnvelope.model_validate(limited).model_dump() == limited


# A model round trip writes the bytes the service's dicts gave: omitted stays omitted, null stays null.
OUTPUT = {"ext": "jpeg", "mps": 0.0067, "mime": "image/jpeg", "format": "JPEG", "width": 100, "height": 67}
INPUT = {"ext": "gif", "mps": 1e-06, "mime": "image/gif", "format": "GIF", "width": 1, "height": 1}
WRITTEN = {
    "object_key": "out/a.jpg",
    "object_uri": "file:///srv/out/a.jpg",
    "claid_storage_uri": "storage://st/out/a.jpg",
}
IN_BUCKET = {  # the order write_output_sync gives
    "object_key": "out/a.jpg",
    "object_bucket": "b",
    "object_uri": "s3://b/out/a.jpg",
    "claid_storage_uri": "storage://s3/out/a.jpg",
}
TASK = {
    "id": 7,
    "status": "ACCEPTED",
    "result_url": "http://127.0.0.1:8000/v1/image/edit/async/7",
    "created_at": "2025-05-01T12:00:00.123Z",
    "request": {"input": "https://images.example.com/photo.jpg", "operations": {"resizing": {"width": 80}}},
}
CANNED: list[tuple[Any, dict[str, Any]]] = [
    (EditResponse, {"data": {"input": INPUT, "output": OUTPUT | {"tmp_url": "http://h/v1/tmp/t/a.jpg"}}}),
    (
        EditResponse,
        {"data": {"input": INPUT, "output": OUTPUT | IN_BUCKET | {"frames_dropped": 2}}},
    ),
    (
        AsyncTaskResponse,
        {"data": TASK | {"errors": [], "result": {}, "progress": {"total": 0, "done": 0, "failed": 0}}},
    ),
    (
        AsyncTaskResponse,
        {
            "data": TASK
            | {
                "status": "DONE",
                "errors": [],
                "result": {"input_object": INPUT, "output_object": OUTPUT | WRITTEN},
                "progress": {"total": 1, "done": 1, "failed": 0},
                "webhook": {"delivered": False, "attempts": 0, "last_status": None},
            }
        },
    ),
    (
        BatchTaskResponse,
        {
            "data": TASK
            | {
                "status": "ERROR",
                "errors": [
                    {"error": "No images found in storage://st/missing/.", "created_at": "2025-05-01T12:00:01.000Z"},
                    {
                        "error": "storage://st/b.jpg: truncated",
                        "created_at": "2025-05-01T12:00:02.000Z",
                        "input_object": INPUT,
                    },
                ],
                "results": [{"input_object": INPUT, "output_object": OUTPUT | {"tmp_url": "http://h/v1/tmp/t/a.jpg"}}],
                "progress": {"total": 2, "done": 1, "failed": 1},
                "webhook": {"delivered": True, "attempts": 2, "last_status": 200},
            }
        },
    ),
    (
        StorageResponse,
        {
            "data": {
                "id": 2,
                "name": "shop",
                "type": "s3",
                "parameters": {"path": "p", "bucket": "b", "credentials": {"access_key": "AK"}, "region": "eu-west-1"},
                "created_at": "2025-05-01T12:00:00.123456Z",
            }
        },
    ),
]


@pytest.mark.parametrize(("model", "body"), CANNED)
def test_models_write_the_bytes_the_service_wrote(model: Any, body: dict[str, Any]) -> None:
    # What FastAPI wrote for these dicts before, when the routes' return annotation dict[str, Any] was the model.
    before = TypeAdapter(dict[str, Any]).dump_json(body)
    assert model.model_validate(copy.deepcopy(body)).model_dump_json(exclude_unset=True).encode() == before


def test_an_undeclared_field_is_a_warning() -> None:
    with pytest.warns(UndeclaredResponseField, match="surprise"):
        ImageObject.model_validate(OUTPUT | {"surprise": 1})


def test_the_service_dicts_declare_every_key(live: LiveApp, image_server: ImageServer) -> None:
    """The dicts the service really builds for the answers of tasks, storages and the webhook fit their models, with
    no key a model does not declare. The batch views are written unchecked at run time (api/routes/tasks.py):
    this is their check. (The other answers are checked at run time, in every test that gets one.)"""
    key = live.create_key("openapi-raw")
    principal = live.service.keys.authenticate(key)
    assert principal is not None
    account = principal.account_id
    service = live.service
    folder = live.settings.storage_roots[0] / "openapi-raw"
    (folder / "in").mkdir(parents=True)
    (folder / "in" / "a.jpg").write_bytes(fixture_bytes("coffee.jpg"))
    (folder / "in" / "b.jpg").write_bytes(fixture_bytes("truncated.jpg"))
    seen: list[tuple[Any, Any]] = []
    with live.client(key) as client:
        for body in (
            {"name": "raw", "type": "local", "parameters": {"path": str(folder)}},
            {"name": "web", "type": "web_folder", "parameters": {"base_url": image_server.url("/")}},
            {
                "name": "s3",
                "type": "s3",
                "parameters": {
                    "bucket": "b",
                    "path": "p",
                    "credentials": {"access_key": "AK", "secret_access_key": "SK"},
                    "endpoint_url": "http://127.0.0.1:9",
                    "region": "eu-west-1",
                },
            },
        ):
            assert client.post("/v1/storage/storages", json=body).status_code == 200
        assert (
            client.put("/v1/webhook", json={"url": "http://127.0.0.1:9/hook", "secret": "0123456789"}).status_code
            == 200
        )
        tasks = [
            ("async", client.post("/v1/image/edit/async", json={"input": image_server.url("chelsea.jpg")})),
            ("async", client.post("/v1/image/edit/async", json={"input": image_server.url("truncated.jpg")})),
            (
                "batch",
                client.post("/v1/image/edit/batch", json={"input": ["storage://raw/in/", "storage://raw/none/"]}),
            ),
            (
                "batch",
                client.post(
                    "/v1/image/edit/batch",
                    json={"input": "storage://raw/in/", "output": {"destination": "storage://raw/out/"}},
                ),
            ),
        ]
        for kind, accepted in tasks:
            assert accepted.status_code == 200, accepted.text
            task_id = accepted.json()["data"]["id"]
            seen.append(
                (AsyncTask if kind == "async" else BatchTask, service.task_view(account, kind, task_id, 0, None))
            )
            _wait(client, f"/v1/image/edit/{kind}/{task_id}")
            seen.append(
                (AsyncTask if kind == "async" else BatchTask, service.task_view(account, kind, task_id, 0, None))
            )
    seen += [(StorageOut, storage) for storage in service.storages.list(account)]
    seen.append((Webhook, service.webhooks.get(account)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndeclaredResponseField)
        for kind, value in seen:
            kind.model_validate(value)
    # Every optional field appeared at least once (and so was checked).
    text = json.dumps([value for _, value in seen], default=str)
    for field in (
        "tmp_url",
        "object_key",
        "object_uri",
        "claid_storage_uri",
        "input_object",
        "last_status",
        "endpoint_url",
        "region",
        "base_url",
        "access_key",
    ):
        assert f'"{field}"' in text, field


# ------------------------------------------------------------------------------------ the examples really work


def _swap(value: Any, swaps: dict[str, str]) -> Any:
    text = json.dumps(value)
    for old, new in swaps.items():
        text = text.replace(old, new)
    return json.loads(text)


def _wait(client: httpx.Client, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        data: dict[str, Any] = client.get(url).json()["data"]
        if data["status"] in FINAL:
            return data
        assert time.monotonic() < deadline, data
        time.sleep(0.1)


def _examples(document: dict[str, Any], method: str, path: str) -> list[Any]:
    content = document["paths"][path][method]["requestBody"]["content"]["application/json"]
    return [example["value"] for example in content["examples"].values()]


def test_request_examples_work(live: LiveApp, image_server: ImageServer, document: dict[str, Any]) -> None:
    # Editing examples: an account with a local storage "shop" holding catalog/shoe.jpg (and one in a sub-folder).
    editor = live.create_key("openapi-examples-editor")
    shop = live.settings.storage_roots[0] / "openapi-examples-shop"
    (shop / "catalog" / "sub").mkdir(parents=True)
    (shop / "catalog" / "shoe.jpg").write_bytes(fixture_bytes("coffee.jpg"))
    (shop / "catalog" / "sub" / "boot.png").write_bytes(fixture_bytes("photo.png"))
    swaps = {
        "https://images.example.com/photo.jpg": image_server.url("chelsea.jpg"),
        "https://images.example.com/": image_server.url("/"),
        "https://hooks.example.com/retouch": "http://127.0.0.1:9/hook",
        "/srv/retouch/storage/photos": str(live.settings.storage_roots[0] / "openapi-examples-photos"),
    }
    (live.settings.storage_roots[0] / "openapi-examples-photos").mkdir()
    with live.client(editor) as client:
        made = client.post(
            "/v1/storage/storages", json={"name": "shop", "type": "local", "parameters": {"path": str(shop)}}
        )
        assert made.status_code == 200, made.text
        for example in _examples(document, "post", "/v1/image/edit"):
            answer = client.post("/v1/image/edit", json=_swap(example, swaps))
            assert answer.status_code == 200, (example, answer.text)
        for path in ("/v1/image/edit/async", "/v1/image/edit/batch"):
            examples = _examples(document, "post", path)
            if path.endswith("async"):
                assert examples == _examples(document, "post", "/v1/image/edit")
            for example in examples:
                accepted = client.post(path, json=_swap(example, swaps))
                assert accepted.status_code == 200, (example, accepted.text)
                done = _wait(client, f"{path}/{accepted.json()['data']['id']}")
                assert done["status"] == "DONE", (example, done)
        assert (shop / "web" / "sub" / "boot.webp").exists()  # the recursive batch kept the sub-path
        upload = document["paths"]["/v1/image/edit/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
        for data in upload["schema"]["properties"]["data"]["examples"]:
            files = {"file": ("IMG_1042.JPG", fixture_bytes("coffee.jpg"), "image/jpeg")}
            answer = client.post("/v1/image/edit/upload", files=files, data={"data": data})
            assert answer.status_code == 200, (data, answer.text)
    # Settings examples: an account of their own (the s3 example is also called "shop").
    with live.client(live.create_key("openapi-examples-settings")) as client:
        created = {}
        for example in _examples(document, "post", "/v1/storage/storages"):
            answer = client.post("/v1/storage/storages", json=_swap(example, swaps))
            assert answer.status_code == 200, (example, answer.text)
            created[example["type"]] = answer.json()["data"]["id"]
        for example in _examples(document, "patch", "/v1/storage/storages/{storage_id}"):
            answer = client.patch(f"/v1/storage/storages/{created['s3']}", json=_swap(example, swaps))
            assert answer.status_code == 200, (example, answer.text)
        for example in _examples(document, "put", "/v1/webhook"):
            answer = client.put("/v1/webhook", json=_swap(example, swaps))
            assert answer.status_code == 200, (example, answer.text)
            assert answer.json()["data"]["secret_set"] is True


# ------------------------------------------------------------------------------------------ docs pages, offline


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_everything_from_this_server(live: LiveApp, page: str) -> None:
    html = httpx.get(f"{live.base}{page}")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "://" not in html.text, "the page names another host"
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html.text)
    assert len(assets) >= 2, html.text
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        answer = httpx.get(f"{live.base}{asset}")
        assert answer.status_code == 200 and len(answer.content) > 1000, asset
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts and all(
        httpx.get(f"{live.base}{s}").headers["content-type"].startswith("text/javascript") for s in scripts
    )
    if page == "/redoc":  # the script asks for its logo next to the page
        assert httpx.get(f"{live.base}/redoc/logo-mini.svg").status_code == 200


# ----------------------------------------------------------------------------------- a generated client works


@pytest.fixture(scope="module")
def generated_client(live: LiveApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``openapi-python-client`` run on the live server's /openapi.json (offline, ~1 s), the package imported."""
    where = tmp_path_factory.mktemp("client")
    (where / "openapi.json").write_text(httpx.get(f"{live.base}/openapi.json").text)
    (where / "config.yml").write_text("package_name_override: retouch_client\npost_hooks: []\n")
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(where / "openapi.json")]
    command += ["--meta", "none", "--output-path", str(where / "retouch_client"), "--config", str(where / "config.yml")]
    run = subprocess.run([*command, "--fail-on-warning"], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module("retouch_client")
    finally:
        sys.path.remove(str(where))
        for name in [n for n in sys.modules if n == "retouch_client" or n.startswith("retouch_client.")]:
            del sys.modules[name]


def test_generated_client_models_take_every_request_example(generated_client: Any, document: dict[str, Any]) -> None:
    """Each example fits its schema: the client's model of the body reads it and writes it back unchanged."""
    models = importlib.import_module("retouch_client.models")
    checked = 0
    for _path, _method, operation in operations(document):
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:
            continue
        model = getattr(models, content["schema"]["$ref"].removeprefix("#/components/schemas/"))
        for example in content["examples"].values():
            assert model.from_dict(example["value"]).to_dict() == example["value"], (model, example)
            checked += 1
    assert checked >= 10


def test_generated_client_reads_an_edit_and_a_batch_page(
    live: LiveApp, image_server: ImageServer, generated_client: Any
) -> None:
    models = importlib.import_module("retouch_client.models")
    types = importlib.import_module("retouch_client.types")
    edit = importlib.import_module("retouch_client.api.image_editing.edit")
    submit_batch = importlib.import_module("retouch_client.api.async_and_batch.submit_batch")
    get_batch = importlib.import_module("retouch_client.api.async_and_batch.get_batch")
    submit_async = importlib.import_module("retouch_client.api.async_and_batch.submit_async")
    get_async = importlib.import_module("retouch_client.api.async_and_batch.get_async")
    list_storages = importlib.import_module("retouch_client.api.storage_connectors.list_storages")
    folder = live.add_local_storage("openapi-client")
    for name in ("a.jpg", "b.png", "c.jpg"):
        (folder / name).write_bytes(fixture_bytes("coffee.jpg" if name.endswith(".jpg") else "photo.png"))

    with generated_client.AuthenticatedClient(base_url=live.base, token=live.key, raise_on_unexpected_status=True) as c:
        # A sync edit: data.output.width, and where it went.
        body = models.EditRequest.from_dict(
            {"input": image_server.url("chelsea.jpg"), "operations": {"resizing": {"width": 100}}}
        )
        answer = edit.sync(client=c, body=body)
        assert isinstance(answer, models.EditResponse), answer
        assert answer.data.output.width == 100 and answer.data.input_.width == 451
        assert answer.data.output.tmp_url.startswith(live.public_url)
        assert isinstance(answer.data.output.object_key, types.Unset)  # left out, not null
        # An error answer is read as the envelope.
        refused = edit.sync(client=c, body=models.EditRequest.from_dict({"input": "storage://no-such-storage/a.jpg"}))
        assert isinstance(refused, models.ErrorEnvelope), refused
        assert refused.error_code == "4001" and "no-such-storage" in refused.error_message

        # A batch, then one page of its results.
        batch = models.BatchEditRequest.from_dict(
            {"input": "storage://openapi-client/", "operations": {"resizing": {"width": 50}}}
        )
        accepted = submit_batch.sync(client=c, body=batch)
        assert isinstance(accepted, models.BatchTaskResponse), accepted
        assert accepted.data.status == models.BatchTaskStatus.ACCEPTED and accepted.data.results == []
        deadline = time.monotonic() + 60
        while (state := get_batch.sync(client=c, task_id=accepted.data.id)).data.status.value not in FINAL:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert state.data.status == models.BatchTaskStatus.DONE
        page = get_batch.sync(client=c, task_id=accepted.data.id, offset=1, limit=1)
        assert isinstance(page, models.BatchTaskResponse)
        assert len(page.data.results) == 1 and page.data.errors == []
        assert page.data.results[0].output_object.width == 50
        assert page.data.results[0].output_object.claid_storage_uri is types.UNSET  # no destination: a tmp_url
        assert page.data.results[0].output_object.tmp_url.startswith(live.public_url)
        assert (page.data.progress.total, page.data.progress.done) == (3, 3)

        # An async task: `result` is {} until DONE, then the item.
        task = submit_async.sync(
            client=c, body=models.EditRequest.from_dict({"input": image_server.url("chelsea.jpg")})
        )
        assert isinstance(task, models.AsyncTaskResponse) and isinstance(task.data.result, models.NoResult)
        deadline = time.monotonic() + 60
        while (done := get_async.sync(client=c, task_id=task.data.id)).data.status.value not in FINAL:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert isinstance(done.data.result, models.ItemResult) and done.data.result.output_object.width == 451

        # Storages, with their times as datetimes.
        storages = list_storages.sync(client=c)
        assert isinstance(storages, models.StorageListResponse)
        mine = [s for s in storages.data if s.name == "openapi-client"]
        assert mine and mine[0].parameters.path == str(folder) and mine[0].created_at.year >= 2025
