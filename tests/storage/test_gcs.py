"""The contract suite on the GCS connector against a real gcp-storage-emulator server, plus
credentials and error mapping against a scripted loopback server (the emulator has no auth)."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from retouch.errors import StorageError
from retouch.storage.base import ObjectMissing, TransientStorageError
from retouch.storage.gcs import GCSConnector
from tests.servers import gcs as gcs_server
from tests.servers.gcs import GCSEmulator
from tests.storage.contract import Seed, WritableContract, keys

# The session fixture, bound here so that pytest finds it for this module's tests (an assignment
# rather than an import, which ruff would report as redefined by every test's parameter).
gcs_emulator = gcs_server.gcs_emulator

PATH = "prefix/in/bucket"


@pytest.fixture
def bucket(gcs_emulator: GCSEmulator) -> Iterator[str]:
    """A fresh bucket for each test; the emulator is wiped afterwards so memory does not pile up."""
    name = f"b-{uuid.uuid4().hex[:20]}"
    gcs_emulator.client().create_bucket(name)
    yield name
    gcs_emulator.wipe()


class TestGCS(WritableContract):
    # The contract's full sizes: 2,600 objects (three pages) and 50 MB run in a few seconds
    # on the emulator (see tests/servers/gcs.py for what makes seeding fast).
    many = 2_600
    large = 50 * 1024 * 1024

    @pytest.fixture
    def connector(self, gcs_emulator: GCSEmulator, bucket: str) -> Iterator[GCSConnector]:
        connector = GCSConnector("cloud", bucket, PATH, endpoint=gcs_emulator.endpoint, project="retouch-tests")
        yield connector
        connector.close()

    @pytest.fixture
    def seed(self, gcs_emulator: GCSEmulator, bucket: str) -> Seed:
        target = gcs_emulator.client().bucket(bucket)

        def put(key: str, data: bytes) -> None:
            target.blob(f"{PATH}/{key}").upload_from_string(data, content_type="application/octet-stream")

        return put

    @pytest.fixture
    def marker(self, gcs_emulator: GCSEmulator, bucket: str) -> Callable[[str], None]:
        target = gcs_emulator.client().bucket(bucket)
        return lambda key: target.blob(f"{PATH}/{key}").upload_from_string(b"", content_type="application/x-directory")


# ------------------------------------------------------------------------------------------------
# GCS specifics on the emulator
# ------------------------------------------------------------------------------------------------


def test_locate_gives_bucket_key_and_gs_uri(gcs_emulator: GCSEmulator, bucket: str) -> None:
    connector = GCSConnector("cloud", bucket, "/out/", endpoint=gcs_emulator.endpoint)
    assert connector.locate("x/y.png") == (bucket, "out/x/y.png", f"gs://{bucket}/out/x/y.png")


def test_write_sets_content_type_and_stays_under_path(gcs_emulator: GCSEmulator, bucket: str) -> None:
    connector = GCSConnector("cloud", bucket, "out", endpoint=gcs_emulator.endpoint)
    connector.write("a/b.png", b"png", "image/png")
    blob = gcs_emulator.client().bucket(bucket).get_blob("out/a/b.png")
    assert blob is not None and blob.content_type == "image/png"
    # A connector on another path does not see it; one on the bucket root does, with its full key.
    assert keys(GCSConnector("cloud", bucket, "other", endpoint=gcs_emulator.endpoint), recursive=True) == []
    assert keys(GCSConnector("cloud", bucket, endpoint=gcs_emulator.endpoint), recursive=True) == ["out/a/b.png"]


def test_large_write_goes_through_resumable_upload(gcs_emulator: GCSEmulator, bucket: str) -> None:
    # Above 8 MiB the client switches from one multipart request to a resumable session.
    data = bytes(range(256)) * (12 * 1024 * 1024 // 256)
    connector = GCSConnector("cloud", bucket, endpoint=gcs_emulator.endpoint)
    connector.write("big.tif", data, "image/tiff")
    assert connector.read("big.tif") == data
    assert [(i.key, i.size) for i in connector.list("", False)] == [("big.tif", len(data))]


def test_missing_bucket(gcs_emulator: GCSEmulator) -> None:
    connector = GCSConnector("cloud", "no-such-bucket", endpoint=gcs_emulator.endpoint)
    with pytest.raises(StorageError, match="bucket no-such-bucket does not exist"):
        list(connector.list("", True))
    with pytest.raises(ObjectMissing, match=r"storage://cloud/a\.jpg"):
        connector.read("a.jpg")
    assert not connector.exists("a.jpg")


@pytest.mark.parametrize("name", ["", "ab", "Upper", "a/b", "bucket?x=1", "-start", "a..b"])
def test_invalid_bucket_names_refused(name: str) -> None:
    with pytest.raises(StorageError, match="not a valid GCS bucket name"):
        GCSConnector("cloud", name, endpoint="http://127.0.0.1:9")


def test_parent_segments_in_path_refused() -> None:
    with pytest.raises(StorageError, match=r"'\.\.'"):
        GCSConnector("cloud", "bucket", "a/../..", endpoint="http://127.0.0.1:9")


# ------------------------------------------------------------------------------------------------
# Errors and credentials, against a scripted server (the emulator accepts anything)
# ------------------------------------------------------------------------------------------------


class Scripted:
    """A loopback server answering every request with ``status`` and a GCS-style JSON error body,
    except the token endpoint, which answers ``token_status``. Records what it received."""

    def __init__(self) -> None:
        self.status = 200
        self.token_status = 200
        self.pages: list[list[str]] = [["a.jpg"]]
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                scripted.requests.append((self.command, self.path, self.headers.get("Authorization")))
                if self.path == "/token":
                    status = scripted.token_status
                    body: dict[str, Any] = (
                        {"access_token": "token-from-google", "expires_in": 3600, "token_type": "Bearer"}
                        if status == 200
                        else {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
                    )
                else:
                    status = scripted.status
                    body = {"error": {"code": status, "message": "server text that must not be quoted"}}
                    if status == 200:
                        body = scripted.listing(self.path)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval: shutdown() waits for it, once per test.
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def listing(self, path: str) -> dict[str, Any]:
        """One page of ``pages`` (by the request's pageToken), as objects.list answers it."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        number = int(query.get("pageToken", ["0"])[0])
        body: dict[str, Any] = {
            "kind": "storage#objects",
            "items": [{"name": n, "size": "3"} for n in self.pages[number]],
        }
        if number + 1 < len(self.pages):
            body["nextPageToken"] = str(number + 1)
        return body

    def storage_requests(self) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[1] != "/token"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    yield server
    server.close()


@pytest.fixture(scope="module")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def service_account(private_key_pem: str, token_uri: str) -> dict[str, str]:
    return {
        "type": "service_account",
        "project_id": "retouch-tests",
        "private_key_id": "0123456789abcdef",
        "private_key": private_key_pem,
        "client_email": "retouch@retouch-tests.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    }


def fast(connector: GCSConnector) -> GCSConnector:
    connector.retry_timeout = 1.5  # the client's backoff starts at 1 s: at most two attempts
    connector.request_timeout = 5
    return connector


def test_listing_pages_lazily(scripted: Scripted) -> None:
    # The emulator answers objects.list in one page whatever maxResults says, so paging (and its
    # laziness) is checked here, on GCS's real page protocol: maxResults, nextPageToken, pageToken.
    scripted.pages = [[f"p/{i:04d}.jpg" for i in range(start, start + 1000)] for start in (0, 1000, 2000)]
    scripted.pages[1][:2] = ["p/.hidden.jpg", "p/folder/"]  # skipped on any page
    connector = GCSConnector("cloud", "bucket", "p", endpoint=scripted.url)
    listing = connector.list("", False)
    assert next(listing).key == "0000.jpg"
    assert len(scripted.storage_requests()) == 1  # the first item came with the first page only
    rest = [info.key for info in listing]
    assert len(rest) == 2_997 and rest[-1] == "2999.jpg" and ".hidden.jpg" not in rest
    sent = [urllib.parse.parse_qs(urllib.parse.urlsplit(path).query) for _, path, _ in scripted.storage_requests()]
    assert [q.get("pageToken") for q in sent] == [None, ["1"], ["2"]]
    assert all(q["maxResults"] == ["1000"] and q["delimiter"] == ["/"] and q["prefix"] == ["p/"] for q in sent)


@pytest.mark.parametrize("status", [401, 403])
def test_denied_is_permanent_and_not_retried(scripted: Scripted, status: int) -> None:
    scripted.status = status
    connector = fast(GCSConnector("cloud", "bucket", endpoint=scripted.url))
    started = time.monotonic()
    actions = (
        lambda: connector.read("a.jpg"),
        lambda: list(connector.list("", True)),
        lambda: connector.write("a.jpg", b"x", "image/jpeg"),
        lambda: connector.write("big.jpg", b"x" * (9 * 1024 * 1024), "image/jpeg"),  # resumable
    )
    for action in actions:
        with pytest.raises(StorageError) as info:
            action()
        assert not isinstance(info.value, (TransientStorageError, ObjectMissing))
        assert f"access to gs://bucket was denied ({status})" in info.value.public_message
        assert "server text" not in info.value.public_message
    assert time.monotonic() - started < 1.0
    assert len(scripted.storage_requests()) == len(actions)  # one request per action: no retry


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_transient(scripted: Scripted, status: int) -> None:
    scripted.status = status
    connector = fast(GCSConnector("cloud", "bucket", endpoint=scripted.url))
    with pytest.raises(TransientStorageError):
        connector.read("a.jpg")
    with pytest.raises(TransientStorageError):
        connector.write("a.jpg", b"x", "image/jpeg")
    assert len(scripted.storage_requests()) >= 3  # the client retried at least one of them


def test_unreachable_endpoint_is_transient(scripted: Scripted) -> None:
    url = scripted.url
    scripted.close()  # nothing listens there any more: connection refused
    connector = fast(GCSConnector("cloud", "bucket", endpoint=url))
    with pytest.raises(TransientStorageError, match="unavailable"):
        connector.exists("a.jpg")


def test_service_account_key_is_used(scripted: Scripted, private_key_pem: str) -> None:
    info = service_account(private_key_pem, f"{scripted.url}/token")
    connector = fast(GCSConnector("cloud", "bucket", service_account_info=info, endpoint=scripted.url))
    assert keys(connector) == ["a.jpg"]
    assert scripted.requests[0][:2] == ("POST", "/token")  # the signed JWT exchanged for a token
    assert scripted.storage_requests()[0][2] == "Bearer token-from-google"


def test_rejected_service_account_key_fails_fast_without_quoting_it(scripted: Scripted, private_key_pem: str) -> None:
    scripted.token_status = 400  # invalid_grant: e.g. the key was deleted in the console
    info = service_account(private_key_pem, f"{scripted.url}/token")
    connector = fast(GCSConnector("cloud", "bucket", service_account_info=info, endpoint=scripted.url))
    started = time.monotonic()
    with pytest.raises(StorageError, match="credentials were rejected") as raised:
        connector.read("a.jpg")
    assert not isinstance(raised.value, TransientStorageError)
    assert time.monotonic() - started < 1.0
    assert scripted.storage_requests() == []
    assert "PRIVATE KEY" not in raised.value.public_message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"}, "not valid"),
        ({"client_email": None}, "not valid"),
        ({"type": "external_account"}, "only service-account keys"),
        ({"token_uri": "http://169.254.169.254/token"}, "not a Google token endpoint"),
    ],
)
def test_bad_service_account_keys_refused(private_key_pem: str, change: dict[str, Any], message: str) -> None:
    info: dict[str, Any] = service_account(private_key_pem, "https://oauth2.googleapis.com/token")
    info.update(change)
    info = {k: v for k, v in info.items() if v is not None}
    with pytest.raises(StorageError, match=message) as raised:
        GCSConnector("cloud", "bucket", service_account_info=info)  # real GCS: no request is made
    assert "PRIVATE KEY" not in raised.value.public_message and "not a key" not in raised.value.public_message


def test_valid_service_account_key_for_real_gcs_builds_without_network(private_key_pem: str) -> None:
    info = service_account(private_key_pem, "https://oauth2.googleapis.com/token")
    connector = GCSConnector("cloud", "bucket", "photos", service_account_info=info)
    assert connector.locate("a.jpg") == ("bucket", "photos/a.jpg", "gs://bucket/photos/a.jpg")
    connector.close()
