"""The http(s) fetcher and its guarded transport, against real HTTP servers on 127.0.0.1.

Nothing here needs the internet: the servers run in threads, and host names other than
"localhost" are answered by a fake ``socket.getaddrinfo`` (see ``fake_dns`` in conftest.py), so the
tests also show that the guard judges the addresses the transport actually resolves and connects to.
The network-free checks (check_url, the policy) are in test_guard.py.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from retouch.errors import FetchError, LimitExceeded
from retouch.net import FetchPolicy, fetch, guarded_client

BODY = b"\xff\xd8\xff" + b"jpeg" * 100
CAP = 1000  # max_bytes of the size tests


class _Handler(BaseHTTPRequestHandler):
    """Routes by path; every request is recorded on the server (path and Host header)."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Host", "")))
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        route = parts.path
        if route == "/redirect":
            self._answer(302, b"", {"Location": query["to"][0]})
        elif route == "/loop":
            self._answer(302, b"", {"Location": "/loop"})
        elif route == "/missing.jpg":
            self._answer(404, b"not found")
        elif route == "/sized":
            self._answer(200, b"x" * int(query["n"][0]))
        elif route == "/chunked":
            self._chunked(chunks=10, size=500)
        elif route == "/drip":
            self._drip_body()
        elif route == "/slow-headers":
            self._drip_headers()
        else:
            self._answer(200, BODY, {"Content-Type": "Image/JPEG; charset=binary"})

    do_POST = do_GET  # the webhook-style test posts

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunked(self, chunks: int, size: int) -> None:
        # No Content-Length: only the streamed byte count can enforce the cap.
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for _ in range(chunks):
                self.wfile.write(b"%x\r\n%s\r\n" % (size, b"y" * size))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            return  # the client stopped reading at the cap, as it should

    def _drip_body(self) -> None:
        # Each byte arrives well within any read timeout; only an overall deadline stops this.
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self._drip(b"z" * 1000)

    def _drip_headers(self) -> None:
        # The same trick during the headers, where no caller code runs between socket reads.
        self._drip(b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"p" * 1000)

    def _drip(self, data: bytes) -> None:
        started = time.monotonic()
        try:
            for byte in data:
                if time.monotonic() - started > 10:
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            return  # the client gave up, as it should


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str]] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def _start() -> Iterator[_Server]:
    server = _Server()
    # A short poll interval keeps shutdown() (and so each test) fast.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server_a() -> Iterator[_Server]:
    yield from _start()


@pytest.fixture
def server_b() -> Iterator[_Server]:
    yield from _start()


def _loopback_allowed() -> FetchPolicy:
    return FetchPolicy(allow_hosts=("127.0.0.1",), timeout_seconds=5)


# --- loopback and the allow list --------------------------------------------------------------


def test_allowed_loopback_fetch_works(server_a: _Server) -> None:
    got = fetch(server_a.url("/photos/cat.jpg"), _loopback_allowed())
    assert got.data == BODY
    assert got.url == server_a.url("/photos/cat.jpg")
    assert got.name == "cat.jpg"
    assert got.content_type == "image/jpeg"


def test_loopback_refused_without_allow_entry(server_a: _Server) -> None:
    with pytest.raises(FetchError) as caught:
        fetch(server_a.url("/img.jpg"), FetchPolicy())
    assert caught.value.public_message == (
        f"Could not fetch {server_a.url('/img.jpg')}: 127.0.0.1 is a loopback address, which is not allowed."
    )
    assert server_a.seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/img.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/img.jpg",
        "http://0.0.0.0:8080/img.jpg",
    ],
)
def test_internal_addresses_refused(url: str) -> None:
    with pytest.raises(FetchError, match="is not allowed"):
        fetch(url, FetchPolicy(timeout_seconds=2))


def test_cidr_allow_entry(server_a: _Server) -> None:
    assert fetch(server_a.url("/a.jpg"), FetchPolicy(allow_hosts=("127.0.0.0/8",))).data == BODY
    with pytest.raises(FetchError, match="loopback"):
        fetch(server_a.url("/a.jpg"), FetchPolicy(allow_hosts=("10.0.0.0/8",)))


def test_localhost_refused_unless_allowed(server_a: _Server) -> None:
    url = server_a.url("/a.jpg", host="localhost")
    with pytest.raises(FetchError) as caught:
        fetch(url, FetchPolicy())
    # The resolved address of a name is not revealed.
    assert "the host localhost resolves to a loopback address" in caught.value.public_message
    with pytest.raises(FetchError):
        fetch(url, FetchPolicy(allow_hosts=(f"localhost:{server_a.port + 1}",)))
    assert server_a.seen == []

    # A name entry admits the name whatever it resolves to (and whatever order ::1/127.0.0.1).
    assert fetch(url, FetchPolicy(allow_hosts=("localhost",))).data == BODY
    assert fetch(url, FetchPolicy(allow_hosts=(f"LocalHost:{server_a.port}",))).data == BODY


def test_decimal_ip_host_is_judged_after_resolution(server_a: _Server) -> None:
    # 2130706433 is not an IP literal to the syntactic check, but the resolver makes it 127.0.0.1.
    with pytest.raises(FetchError, match="resolves to a loopback address"):
        fetch(f"http://2130706433:{server_a.port}/a.jpg", FetchPolicy())
    assert server_a.seen == []


def test_guard_lives_in_the_transport(server_a: _Server) -> None:
    # No check_url here: the client alone must refuse, for GET and for webhook-style POST.
    with guarded_client(FetchPolicy()) as client:
        with pytest.raises(FetchError, match="loopback"):
            client.get(server_a.url("/a.jpg"))
        with pytest.raises(FetchError, match="loopback"):
            client.post(server_a.url("/hook"), content=b"{}")
        with pytest.raises(FetchError, match="link-local"):
            client.get("http://169.254.169.254/latest/meta-data/")
    assert server_a.seen == []
    with guarded_client(_loopback_allowed()) as client:
        assert client.post(server_a.url("/hook"), content=b"{}").status_code == 200


def test_hostname_resolving_to_private_address_is_refused(
    fake_dns: Callable[[dict[str, list[str]]], list[str]],
) -> None:
    fake_dns({"internal.test": ["10.0.0.7"], "mixed.test": ["8.8.8.8", "192.168.0.1"]})
    with pytest.raises(FetchError, match=r"the host internal\.test resolves to a private address"):
        fetch("http://internal.test/a.jpg", FetchPolicy(timeout_seconds=2))
    # One bad address in the answer refuses the host: no trying until the internal one works.
    with pytest.raises(FetchError, match=r"the host mixed\.test resolves to a private address"):
        fetch("http://mixed.test/a.jpg", FetchPolicy(timeout_seconds=2))
    fake_dns({"mapped.test": ["::ffff:127.0.0.1"]})
    with pytest.raises(FetchError, match="loopback"):
        fetch("http://mapped.test/a.jpg", FetchPolicy(timeout_seconds=2))


def test_connects_to_the_checked_address_with_the_original_host_header(
    server_a: _Server, fake_dns: Callable[[dict[str, list[str]]], list[str]]
) -> None:
    # Resolved once, by the guard; the socket then gets that IP, so a DNS answer that changes
    # between check and connect (rebinding) has nothing to change.
    lookups = fake_dns({"images.test": ["127.0.0.1"]})
    got = fetch(server_a.url("/a.jpg", host="images.test"), FetchPolicy(allow_hosts=("127.0.0.0/8",)))
    assert got.data == BODY
    assert lookups == ["images.test"]
    assert server_a.seen == [("/a.jpg", f"images.test:{server_a.port}")]


def test_dns_failure(fake_dns: Callable[[dict[str, list[str]]], list[str]]) -> None:
    fake_dns({"nowhere.test": []})
    with pytest.raises(FetchError) as caught:
        fetch("https://nowhere.test/a.jpg", FetchPolicy())
    assert caught.value.public_message == (
        "Could not fetch https://nowhere.test/a.jpg: the host name nowhere.test could not be resolved."
    )


# --- redirects ----------------------------------------------------------------------------------


def _redirect(server: _Server, to: str) -> str:
    return server.url("/redirect?" + urllib.parse.urlencode({"to": to}))


def test_redirect_is_followed(server_a: _Server, server_b: _Server) -> None:
    policy = FetchPolicy(allow_hosts=(f"127.0.0.1:{server_a.port}", f"127.0.0.1:{server_b.port}"))
    got = fetch(_redirect(server_a, server_b.url("/photos/final.jpg")), policy)
    assert got.data == BODY
    assert got.url == server_b.url("/photos/final.jpg")
    assert got.name == "final.jpg"


def test_redirect_to_a_disallowed_port_is_refused(server_a: _Server, server_b: _Server) -> None:
    policy = FetchPolicy(allow_hosts=(f"127.0.0.1:{server_a.port}",))
    assert fetch(_redirect(server_a, server_a.url("/same.jpg")), policy).name == "same.jpg"
    with pytest.raises(FetchError) as caught:
        fetch(_redirect(server_a, server_b.url("/b.jpg")), policy)
    message = caught.value.public_message
    assert message.startswith(f"Could not fetch {server_b.url('/b.jpg')} (redirected from ")
    assert "loopback address, which is not allowed" in message
    assert server_b.seen == []


def test_redirect_to_internal_name_is_refused_in_the_transport(
    server_a: _Server, fake_dns: Callable[[dict[str, list[str]]], list[str]]
) -> None:
    # check_url passes names through, so only the transport can catch this hop.
    fake_dns({"internal.test": ["10.0.0.7"]})
    with pytest.raises(FetchError, match=r"internal\.test resolves to a private address"):
        fetch(_redirect(server_a, "http://internal.test/secret"), _loopback_allowed())


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "file:///etc/passwd", "gopher://x/"])
def test_redirect_to_forbidden_target_is_refused(server_a: _Server, target: str) -> None:
    with pytest.raises(FetchError, match=r"not allowed|only http"):
        fetch(_redirect(server_a, target), _loopback_allowed())


def test_redirect_loop(server_a: _Server) -> None:
    with pytest.raises(FetchError) as caught:
        fetch(server_a.url("/loop"), _loopback_allowed())
    assert caught.value.public_message == (
        f"Could not fetch {server_a.url('/loop')}: too many redirects (more than 5)."
    )
    assert len(server_a.seen) == 6
    with pytest.raises(FetchError, match=r"more than 0"):
        fetch(_redirect(server_a, "/a.jpg"), FetchPolicy(allow_hosts=("127.0.0.1",), max_redirects=0))


# --- size, status, time -------------------------------------------------------------------------


def test_body_at_the_cap_is_accepted(server_a: _Server) -> None:
    policy = FetchPolicy(allow_hosts=("127.0.0.1",), max_bytes=CAP)
    assert len(fetch(server_a.url(f"/sized?n={CAP}"), policy).data) == CAP


@pytest.mark.parametrize("path", [f"/sized?n={CAP + 1}", "/chunked"])
def test_oversize_body_refused(server_a: _Server, path: str) -> None:
    policy = FetchPolicy(allow_hosts=("127.0.0.1",), max_bytes=CAP)
    with pytest.raises(LimitExceeded) as caught:  # a limit: 422 `image`, like every other limit
        fetch(server_a.url(path), policy)
    shown = server_a.url(path.split("?")[0])
    assert caught.value.public_message == f"The input at {shown} exceeds the input size limit of {CAP} bytes."
    assert (caught.value.status, caught.value.error_type) == (422, "image")


def test_error_status_is_named_and_secrets_are_not(server_a: _Server) -> None:
    url = f"http://alice:hunter2@127.0.0.1:{server_a.port}/missing.jpg?token=s3cr3t"
    with pytest.raises(FetchError) as caught:
        fetch(url, _loopback_allowed())
    error = caught.value
    assert error.public_message == (f"Could not fetch {server_a.url('/missing.jpg')}: the server answered 404.")
    assert (error.status, error.code, error.error_type) == (400, "4002", "web")
    assert "hunter2" not in str(error) and "s3cr3t" not in str(error)


def test_user_info_is_sent_but_not_returned(server_a: _Server) -> None:
    got = fetch(f"http://alice:hunter2@127.0.0.1:{server_a.port}/a.jpg?v=2", _loopback_allowed())
    assert got.url == server_a.url("/a.jpg?v=2")


@pytest.mark.parametrize("path", ["/drip", "/slow-headers"])
def test_slow_drip_hits_the_deadline(server_a: _Server, path: str) -> None:
    policy = FetchPolicy(allow_hosts=("127.0.0.1",), timeout_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch(server_a.url(path), policy)
    assert time.monotonic() - started < 2.0
    assert caught.value.public_message == (
        f"Could not fetch {server_a.url(path)}: the download did not finish within 1 seconds."
    )


# --- names and clients ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/photos/my%20photo%E2%9C%93.png", "my photo\u2713.png"),
        ("/photos/cat.jpg?size=large", "cat.jpg"),
        ("/photos/", "image"),
        ("/", "image"),
        ("/a%2Fb.jpg", "b.jpg"),
        ("/..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("/x/..%5C..%5Cboot.ini", "boot.ini"),
        ("/x/%2E%2E", "image"),
    ],
)
def test_file_name(server_a: _Server, path: str, name: str) -> None:
    assert fetch(server_a.url(path), _loopback_allowed()).name == name


def test_reused_client(server_a: _Server) -> None:
    policy = _loopback_allowed()
    with guarded_client(policy) as client:
        for _ in range(3):
            assert fetch(server_a.url("/a.jpg"), policy, client=client).data == BODY


def test_mock_transport_client_gets_the_syntactic_checks() -> None:
    # A non-guarded client (tests of callers) still gets scheme/literal checks and the cap.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"ok", headers={"Content-Type": "image/png"})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        got = fetch("https://images.example/p.png", FetchPolicy(), client=client)
        assert (got.data, got.content_type, got.name) == (b"ok", "image/png", "p.png")
        with pytest.raises(FetchError, match="private"):
            fetch("https://10.0.0.1/p.png", FetchPolicy(), client=client)
