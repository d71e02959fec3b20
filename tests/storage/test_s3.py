"""The S3 connector against a real moto server on loopback: the contract suite, then credentials,
missing buckets, retries (through a fault-injecting proxy), timeouts, the path prefix, uploads.

Every test gets a bucket of its own. The connector's root is a path inside it, with decoy objects
next to and above that path, so any listing that leaks outside the root fails the contract tests.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from retouch.errors import StorageError
from retouch.storage.base import ObjectMissing, TransientStorageError, join_key
from retouch.storage.s3 import S3Connector
from tests.servers.moto import MotoServer, moto_server  # noqa: F401
from tests.storage.contract import Seed, WritableContract, keys

PATH = "tenants/acme/photos"
DECOYS = ("tenants/acme/photos-old/a.jpg", "tenants/acme/a.jpg", "top.jpg", "tenants/acme/photos-old/many/00000.jpg")


@pytest.fixture(scope="session")
def server(moto_server: MotoServer) -> MotoServer:  # noqa: F811 - the imported fixture, requested by name
    return moto_server


@pytest.fixture(scope="module")
def s3(server: MotoServer) -> Any:
    return server.client()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"retouch-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    for key in DECOYS:
        s3.put_object(Bucket=name, Key=key, Body=b"decoy")
    return name


def make_connector(
    server: MotoServer, bucket: str, *, endpoint_url: str | None = None, path: str = PATH, **kwargs: Any
) -> S3Connector:
    params: dict[str, Any] = {"access_key": server.access_key, "secret_key": server.secret_key, "max_attempts": 3}
    params.update(kwargs)
    return S3Connector("s3-test", bucket, path, endpoint_url=endpoint_url or server.endpoint_url, **params)


class TestS3(WritableContract):
    @pytest.fixture
    def connector(self, server: MotoServer, bucket: str) -> S3Connector:
        return make_connector(server, bucket)

    @pytest.fixture
    def seed(self, s3: Any, bucket: str) -> Seed:
        return lambda key, data: s3.put_object(Bucket=bucket, Key=join_key(PATH, key), Body=data)

    @pytest.fixture
    def marker(self, s3: Any, bucket: str) -> Callable[[str], None]:
        return lambda key: s3.put_object(Bucket=bucket, Key=join_key(PATH, key), Body=b"")


# -- a fault-injecting proxy in front of moto -------------------------------------------------------


@dataclass
class Fault:
    #: "status" (answer an S3 error), "truncate" (send half the body, then hang up), "stall" (hang up late)
    kind: str
    status: int = 500
    code: str = "InternalError"
    delay: float = 0.0
    match: Callable[[str, str], bool] = field(default=lambda method, path: True)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class FaultProxy(ThreadingHTTPServer):
    """Forwards requests to moto unchanged (the Host header too, so signatures still match), except
    those a queued :class:`Fault` matches. Records every request it receives."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, fault: Fault, times: int = 1) -> None:
        with self.lock:
            self.faults.extend([fault] * times)

    def take(self, method: str, path: str, headers: dict[str, str]) -> Fault | None:
        with self.lock:
            self.seen.append(Seen(method, path, headers))
            for i, fault in enumerate(self.faults):
                if fault.match(method, path):
                    return self.faults.pop(i)
        return None

    def count(self, method: str) -> int:
        return sum(1 for s in self.seen if s.method == method)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and "Expect: 100-continue" is honoured
    server: FaultProxy

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = self.server.take(self.command, self.path, dict(self.headers.items()))
        if fault is not None and fault.kind == "stall":
            time.sleep(fault.delay)  # the client has timed out and gone by now: hang up
            self.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            self._error(fault)
            return
        conn = http.client.HTTPConnection(*self.server.upstream, timeout=30)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in ("connection", "expect", "keep-alive"):
                    conn.putheader(name, value)
            conn.endheaders(body)
            response = conn.getresponse()
            payload = response.read()
            headers = response.getheaders()
        finally:
            conn.close()
        self.send_response(response.status)
        for name, value in headers:
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload) if self.command != "HEAD" else _length(headers)))
        if fault is not None and fault.kind == "truncate":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True
            return
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _error(self, fault: Fault) -> None:
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
            + fault.code.encode()
            + b"</Code><Message>Injected by the test proxy.</Message></Error>"
        )
        self.send_response(fault.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
        pass


def _length(headers: list[tuple[str, str]]) -> str:
    return next((v for k, v in headers if k.lower() == "content-length"), "0")


@pytest.fixture
def proxy(server: MotoServer) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(server.endpoint_url)
    thread = threading.Thread(target=fault_proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fault_proxy
    fault_proxy.shutdown()
    fault_proxy.server_close()
    thread.join(timeout=5)


@contextmanager
def nobody_listening() -> Iterator[str]:
    """An endpoint on a loopback port that refuses connections (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


# -- credentials and buckets ------------------------------------------------------------------------


def _every_operation(connector: S3Connector) -> Iterator[tuple[str, Callable[[], object]]]:
    yield "read", lambda: connector.read("a.jpg")
    yield "write", lambda: connector.write("a.jpg", b"x", "image/jpeg")
    yield "exists", lambda: connector.exists("a.jpg")
    yield "list", lambda: list(connector.list("", True))


@pytest.mark.parametrize(
    ("access_key", "secret_key", "expected"),
    [
        (None, "not-the-secret-at-all", "the secret key does not match"),
        ("AKIAUNKNOWNKEY000000", None, "unknown access key"),
    ],
    ids=["wrong-secret", "unknown-key"],
)
def test_wrong_credentials_fail_fast_without_retries(
    server: MotoServer,
    bucket: str,
    proxy: FaultProxy,
    access_key: str | None,
    secret_key: str | None,
    expected: str,
) -> None:
    secret = secret_key or server.secret_key
    connector = make_connector(
        server,
        bucket,
        endpoint_url=proxy.endpoint_url,
        max_attempts=4,
        access_key=access_key or server.access_key,
        secret_key=secret,
    )
    for operation, call in _every_operation(connector):
        started = time.monotonic()
        with pytest.raises(StorageError) as info:
            call()
        assert time.monotonic() - started < 2, operation
        assert not isinstance(info.value, TransientStorageError | ObjectMissing), operation
        message = info.value.public_message
        assert "storage://s3-test/" in message and f"bucket {bucket}" in message, message
        if operation != "exists":  # a HEAD answer has no body: only "403" is known
            assert expected in message, message
        assert secret not in message and secret not in repr(connector)
    assert len(proxy.seen) == 4  # one request per operation: a refusal is never retried


def test_missing_permission_is_access_denied(server: MotoServer, bucket: str) -> None:
    iam = server.client("iam")
    user = f"no-s3-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)  # no policy: authenticated, allowed nothing
    key = iam.create_access_key(UserName=user)["AccessKey"]
    connector = make_connector(server, bucket, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    for _, call in _every_operation(connector):
        with pytest.raises(StorageError, match=r"Access denied to storage://s3-test/.* check the storage's credent"):
            call()


def test_missing_bucket_is_a_clear_error(server: MotoServer) -> None:
    connector = make_connector(server, "no-such-bucket-here")
    for operation, call in _every_operation(connector):
        if operation == "exists":
            # HEAD cannot tell a missing bucket from a missing object (no body): just "no".
            assert call() is False
            continue
        with pytest.raises(StorageError) as info:
            call()
        assert not isinstance(info.value, ObjectMissing | TransientStorageError), operation
        assert "the bucket no-such-bucket-here of storage://s3-test does not exist" in info.value.public_message


# -- retries, timeouts ------------------------------------------------------------------------------


def test_transient_errors_are_retried(server: MotoServer, bucket: str, s3: Any, proxy: FaultProxy) -> None:
    s3.put_object(Bucket=bucket, Key=f"{PATH}/a.jpg", Body=b"pixels")
    connector = make_connector(server, bucket, endpoint_url=proxy.endpoint_url, max_attempts=4)
    proxy.add(Fault("status", 500, "InternalError"))
    proxy.add(Fault("status", 503, "SlowDown"))  # throttling: botocore backs off up to 1 s
    assert connector.read("a.jpg") == b"pixels"
    assert proxy.count("GET") == 3

    proxy.add(Fault("status", 503, "ServiceUnavailable", match=lambda method, path: method == "PUT"))
    connector.write("b.jpg", b"new", "image/jpeg")
    assert proxy.count("PUT") == 2
    assert s3.get_object(Bucket=bucket, Key=f"{PATH}/b.jpg")["Body"].read() == b"new"


def test_retries_give_up_after_max_attempts(server: MotoServer, bucket: str, proxy: FaultProxy) -> None:
    connector = make_connector(server, bucket, endpoint_url=proxy.endpoint_url, max_attempts=3)
    proxy.add(Fault("status", 500, "InternalError"), times=10)
    with pytest.raises(TransientStorageError, match=r"unavailable \(InternalError\) after 3 attempts"):
        connector.read("a.jpg")
    assert proxy.count("GET") == 3  # max_attempts counts the first request
    with pytest.raises(TransientStorageError):
        list(connector.list("", False))
    assert proxy.count("GET") == 6


def test_interrupted_download_is_fetched_again(server: MotoServer, bucket: str, s3: Any, proxy: FaultProxy) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    s3.put_object(Bucket=bucket, Key=f"{PATH}/big.jpg", Body=data)
    connector = make_connector(server, bucket, endpoint_url=proxy.endpoint_url, max_attempts=3)
    proxy.add(Fault("truncate"))
    assert connector.read("big.jpg") == data
    assert proxy.count("GET") == 2

    proxy.add(Fault("truncate"), times=3)
    with pytest.raises(TransientStorageError, match="interrupted 3 times"):
        connector.read("big.jpg")


def test_timeouts_and_refused_connections_are_transient(server: MotoServer, bucket: str, proxy: FaultProxy) -> None:
    slow = make_connector(server, bucket, endpoint_url=proxy.endpoint_url, max_attempts=2, read_timeout=0.3)
    proxy.add(Fault("stall", delay=1.5), times=2)
    started = time.monotonic()
    with pytest.raises(TransientStorageError, match="did not answer after 2 attempts"):
        slow.exists("a.jpg")
    assert time.monotonic() - started < 1.5
    assert proxy.count("HEAD") == 2

    with nobody_listening() as endpoint:
        refused = make_connector(server, bucket, endpoint_url=endpoint, max_attempts=2, connect_timeout=1)
        with pytest.raises(TransientStorageError, match=r"127\.0\.0\.1:\d+ did not answer"):
            refused.read("a.jpg")


def test_other_client_errors_are_permanent(server: MotoServer, bucket: str, proxy: FaultProxy) -> None:
    connector = make_connector(server, bucket, endpoint_url=proxy.endpoint_url, max_attempts=4)
    proxy.add(Fault("status", 400, "InvalidArgument"), times=4)
    with pytest.raises(StorageError, match=r"answered InvalidArgument \(400\)") as info:
        connector.read("a.jpg")
    assert not isinstance(info.value, TransientStorageError | ObjectMissing)
    assert proxy.count("GET") == 1


# -- the path prefix, keys, uploads -----------------------------------------------------------------


def test_path_prefix_is_honoured(server: MotoServer, bucket: str, s3: Any) -> None:
    connector = make_connector(server, bucket, path="/tenants//acme/photos/")
    assert connector.path == PATH
    connector.write("x/y.png", b"png", "image/png")
    assert s3.get_object(Bucket=bucket, Key=f"{PATH}/x/y.png")["Body"].read() == b"png"
    assert connector.locate("x/y.png") == (bucket, f"{PATH}/x/y.png", f"s3://{bucket}/{PATH}/x/y.png")
    # The decoys sit next to ("photos-old/") and above the path: never visible, never readable.
    assert keys(connector, recursive=True) == ["x/y.png"]
    with pytest.raises(StorageError, match="not allowed"):
        keys(connector, "../photos-old", recursive=True)
    for outside in ("../photos-old/a.jpg", "../a.jpg", "../../../top.jpg"):
        with pytest.raises(StorageError, match="not allowed"):
            connector.read(outside)
    with pytest.raises(ObjectMissing):
        connector.read("top.jpg")
    # Without a path the bucket's root is the storage: the decoys are there.
    whole = make_connector(server, bucket, path="")
    assert keys(whole, recursive=True) == sorted([*DECOYS, f"{PATH}/x/y.png"])
    assert keys(whole) == ["top.jpg"]


def test_folders_are_not_files(server: MotoServer, bucket: str) -> None:
    connector = make_connector(server, bucket)
    for key in ("", "folder/"):
        with pytest.raises(StorageError, match="is a folder"):
            connector.read(key)
        with pytest.raises(StorageError, match="is a folder"):
            connector.write(key, b"x", "image/jpeg")


def test_upload_headers_suit_s3_compatible_servers(server: MotoServer, bucket: str, s3: Any, proxy: FaultProxy) -> None:
    connector = make_connector(server, bucket, endpoint_url=proxy.endpoint_url)
    connector.write("out/a.png", b"\x89PNG data", "image/png")
    (put,) = [s for s in proxy.seen if s.method == "PUT"]
    headers = {k.lower(): v for k, v in put.headers.items()}
    # GCS's XML API and other S3-compatible servers reject botocore's default CRC headers and
    # aws-chunked bodies; Content-MD5 keeps the upload checked end to end everywhere.
    assert "content-md5" in headers
    assert not [h for h in headers if h.startswith(("x-amz-checksum", "x-amz-sdk-checksum", "x-amz-trailer"))]
    assert "aws-chunked" not in headers.get("content-encoding", "")
    assert put.path.startswith(f"/{bucket}/{PATH}/out/a.png")  # path-style addressing
    head = s3.head_object(Bucket=bucket, Key=f"{PATH}/out/a.png")
    assert head["ContentType"] == "image/png"


def test_large_write_is_a_multipart_upload(server: MotoServer, bucket: str, s3: Any) -> None:
    connector = make_connector(server, bucket)
    connector.multipart_threshold = 6 * 1024 * 1024  # S3's smallest part is 5 MiB
    connector.multipart_chunksize = 5 * 1024 * 1024
    data = bytes(range(256)) * (48 * 1024)  # 12 MiB: three parts
    connector.write("big/pano.jpg", data, "image/jpeg")
    head = s3.head_object(Bucket=bucket, Key=f"{PATH}/big/pano.jpg")
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentType"] == "image/jpeg"
    assert connector.read("big/pano.jpg") == data


def test_failed_multipart_upload_leaves_nothing(server: MotoServer, bucket: str, s3: Any, proxy: FaultProxy) -> None:
    connector = make_connector(server, bucket, endpoint_url=proxy.endpoint_url)
    connector.multipart_threshold = 6 * 1024 * 1024
    connector.multipart_chunksize = 5 * 1024 * 1024
    proxy.add(Fault("status", 403, "AccessDenied", match=lambda method, path: "partNumber=2" in path), times=5)
    with pytest.raises(StorageError, match="Access denied"):
        connector.write("big/pano.jpg", b"x" * (12 * 1024 * 1024), "image/jpeg")
    assert not connector.exists("big/pano.jpg")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_one_client_shared_by_threads(server: MotoServer, bucket: str) -> None:
    connector = make_connector(server, bucket)

    def work(i: int) -> tuple[int, bytes]:
        client = connector.client()
        connector.write(f"t/{i}.jpg", str(i).encode(), "image/jpeg")
        return id(client), connector.read(f"t/{i}.jpg")

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(work, range(48)))
    assert len({client for client, _ in results}) == 1
    assert [data for _, data in results] == [str(i).encode() for i in range(48)]
    assert len(keys(connector, "t/")) == 48


def test_no_secret_in_repr(server: MotoServer) -> None:
    connector = make_connector(server, "photos")
    assert server.secret_key not in repr(connector)
    assert "photos" in repr(connector)
