"""The contract suite on the web_folder connector, against Python's http.server on loopback, plus
index parsing (nginx and Apache pages), the SSRF guard and the read-only rules."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from retouch.errors import FetchError, LimitExceeded, StorageError
from retouch.net import FetchPolicy
from retouch.storage.base import ObjectMissing
from retouch.storage.web_folder import WebFolderConnector
from tests.storage.contract import ConnectorContract, Seed, keys

LOOPBACK = FetchPolicy(allow_hosts=("127.0.0.1",))


class WebServer:
    """http.server over a folder, on 127.0.0.1; records request paths; ``routes`` overrides
    paths with a canned (status, content type, body) answer."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str]] = []
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.no_head = False
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(server.root), **kwargs)

            def _canned(self) -> bool:
                server.requests.append((self.command, self.path))
                answer = server.routes.get(self.path)
                if self.command == "HEAD" and server.no_head:
                    answer = (405, "text/plain", b"")
                if answer is None:
                    return False
                status, content_type, body = answer
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", body.decode())
                    body = b""
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                return True

            def do_GET(self) -> None:
                if not self._canned():
                    super().do_GET()

            def do_HEAD(self) -> None:
                if not self._canned():
                    super().do_HEAD()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        # A short poll interval: shutdown() waits for it, once per test.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebServer]:
    (tmp_path / "www" / "root").mkdir(parents=True)
    server = WebServer(tmp_path / "www")
    yield server
    server.close()


def put(web: WebServer, key: str, data: bytes = b"x") -> None:
    path = web.root / "root" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class TestWebFolder(ConnectorContract):
    # The full contract sizes: 2,600 files in one index page, and a 50 MB download (under the
    # policy's default 100 MB cap).
    many = 2_600
    large = 50 * 1024 * 1024

    @pytest.fixture
    def connector(self, web: WebServer) -> Iterator[WebFolderConnector]:
        # The folder is not the server's root, so the base path is exercised too.
        connector = WebFolderConnector("site", web.url("root/"), LOOPBACK)
        yield connector
        connector.close()

    @pytest.fixture
    def seed(self, web: WebServer) -> Seed:
        return lambda key, data: put(web, key, data)


# ------------------------------------------------------------------------------------------------
# Read-only, locate, exists
# ------------------------------------------------------------------------------------------------


def test_read_only(web: WebServer) -> None:
    connector = WebFolderConnector("site", web.url("root"), LOOPBACK)
    assert connector.read_only
    with pytest.raises(StorageError, match="web_folder storages are read-only"):
        connector.write("a.jpg", b"x", "image/jpeg")
    assert not (web.root / "root" / "a.jpg").exists()


def test_locate_is_the_public_url_without_credentials(web: WebServer) -> None:
    connector = WebFolderConnector("site", f"http://user:secret@127.0.0.1:{web.port}/root?token=abc", LOOPBACK)
    assert connector.locate("a b/é#1.jpg") == (
        None,
        "a b/é#1.jpg",
        f"http://127.0.0.1:{web.port}/root/a%20b/%C3%A9%231.jpg",
    )


def test_base_url_query_is_sent_with_every_request(web: WebServer) -> None:
    put(web, "sub/a.jpg", b"data")
    connector = WebFolderConnector("site", web.url("root/?token=abc"), LOOPBACK)
    assert connector.read("sub/a.jpg") == b"data"
    assert keys(connector, recursive=True) == ["sub/a.jpg"]
    assert all(path.endswith("?token=abc") for _, path in web.requests)


def test_exists_uses_head_and_falls_back_to_get(web: WebServer) -> None:
    put(web, "a.jpg")
    connector = WebFolderConnector("site", web.url("root/"), LOOPBACK)
    assert connector.exists("a.jpg") and not connector.exists("b.jpg")
    assert [method for method, _ in web.requests] == ["HEAD", "HEAD"]
    assert not connector.exists("") and not connector.exists("folder/")
    web.no_head = True  # 405 to every HEAD, as some servers and CDNs answer
    web.requests.clear()
    assert connector.exists("a.jpg") and not connector.exists("b.jpg")
    assert [method for method, _ in web.requests] == ["HEAD", "GET", "HEAD", "GET"]


def test_redirects_are_followed(web: WebServer) -> None:
    put(web, "real.jpg", b"real")
    web.routes["/root/moved.jpg"] = (302, "text/plain", b"/root/real.jpg")
    connector = WebFolderConnector("site", web.url("root/"), LOOPBACK)
    assert connector.read("moved.jpg") == b"real"
    assert connector.exists("moved.jpg")


def test_server_errors_and_forbidden_are_fetch_errors(web: WebServer) -> None:
    web.routes["/root/broken.jpg"] = (500, "text/plain", b"boom")
    web.routes["/root/private.jpg"] = (403, "text/plain", b"no")
    web.routes["/root/private/"] = (403, "text/plain", b"no")
    connector = WebFolderConnector("site", web.url("root/"), LOOPBACK)
    with pytest.raises(FetchError, match="answered 500"):
        connector.read("broken.jpg")
    with pytest.raises(FetchError, match="answered 403") as raised:
        connector.read("private.jpg")
    assert not isinstance(raised.value, ObjectMissing)
    with pytest.raises(FetchError, match="answered 403"):
        connector.exists("private.jpg")
    with pytest.raises(FetchError, match="answered 403"):
        list(connector.list("private/", False))


def test_byte_cap_applies(web: WebServer) -> None:
    put(web, "big.jpg", b"x" * 10_000)
    connector = WebFolderConnector("site", web.url("root/"), FetchPolicy(allow_hosts=("127.0.0.1",), max_bytes=1_000))
    with pytest.raises(LimitExceeded, match="exceeds the input size limit"):
        connector.read("big.jpg")


def test_folder_keys_are_not_read(web: WebServer) -> None:
    put(web, "sub/a.jpg")
    connector = WebFolderConnector("site", web.url("root/"), LOOPBACK)
    with pytest.raises(StorageError, match="is a folder"):
        connector.read("sub/")


# ------------------------------------------------------------------------------------------------
# SSRF guard
# ------------------------------------------------------------------------------------------------


def test_loopback_refused_without_allow_list(web: WebServer) -> None:
    put(web, "a.jpg")
    # An IP literal is refused when the storage is configured, before any request.
    with pytest.raises(FetchError, match="loopback"):
        WebFolderConnector("site", web.url("root/"), FetchPolicy())
    # A host name is refused by the transport, on the address it resolves to.
    connector = WebFolderConnector("site", f"http://localhost:{web.port}/root/", FetchPolicy())
    with pytest.raises(FetchError, match="loopback"):
        connector.read("a.jpg")
    with pytest.raises(FetchError, match="loopback"):
        list(connector.list("", False))
    with pytest.raises(FetchError, match="loopback"):
        connector.exists("a.jpg")
    assert web.requests == []  # nothing reached the server


def test_redirect_to_a_refused_host_is_not_followed(web: WebServer) -> None:
    web.routes["/root/a.jpg"] = (302, "text/plain", b"http://169.254.169.254/latest/meta-data/")
    connector = WebFolderConnector("site", web.url("root/"), LOOPBACK)
    with pytest.raises(FetchError, match="link-local"):
        connector.read("a.jpg")


@pytest.mark.parametrize("url", ["ftp://example.com/images/", "file:///etc/", "/relative/path/"])
def test_only_http_urls(url: str) -> None:
    with pytest.raises(FetchError, match="only http"):
        WebFolderConnector("site", url, LOOPBACK)


# ------------------------------------------------------------------------------------------------
# Listing: order, laziness, other servers' index pages
# ------------------------------------------------------------------------------------------------


def test_recursive_listing_is_in_key_order_and_lazy(web: WebServer) -> None:
    for key in ("a.jpg", "a/x.jpg", "a.b/y.jpg", "b/c/d.jpg", "b.jpg", "z.jpg"):
        put(web, key)
    connector = WebFolderConnector("site", web.url("root/"), LOOPBACK)
    listing = connector.list("", True)
    assert next(listing).key == "a.b/y.jpg"
    assert [path for _, path in web.requests] == ["/root/", "/root/a.b/"]  # no other folder yet
    assert ["a.b/y.jpg"] + [info.key for info in listing] == sorted(
        ["a.jpg", "a/x.jpg", "a.b/y.jpg", "b/c/d.jpg", "b.jpg", "z.jpg"]
    )


def test_folder_without_index_lists_empty(web: WebServer) -> None:
    connector = WebFolderConnector("site", web.url("root/"), LOOPBACK)
    assert keys(connector, "nothing/here/", recursive=True) == []


def test_non_html_index_is_an_error(web: WebServer) -> None:
    web.routes["/root/api/"] = (200, "application/json", b'[{"name": "a.jpg"}]')
    connector = WebFolderConnector("site", web.url("root/"), LOOPBACK)
    with pytest.raises(StorageError, match="not an HTML directory index"):
        list(connector.list("api/", False))


NGINX = b"""<html>
<head><title>Index of /root/photos/</title></head>
<body>
<h1>Index of /root/photos/</h1><hr><pre><a href="../">../</a>
<a href="2024/">2024/</a>                                              01-Jan-2024 10:00       -
<a href="caf%C3%A9%20au%20lait.jpg">caf\xc3\xa9 au lait.jpg</a>                        01-Jan-2024 10:00    1234
<a href="plain.png">plain.png</a>                                          01-Jan-2024 10:00    1234
<a href=".secret.jpg">.secret.jpg</a>                                        01-Jan-2024 10:00    1234
</pre><hr></body>
</html>
"""

APACHE = b"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html><head><title>Index of /root/photos</title></head><body>
<h1>Index of /root/photos</h1>
<table>
<tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th></tr>
<tr><td><a href="/root/">Parent Directory</a></td></tr>
<tr><td><a href="/root/photos/2024/">2024/</a></td></tr>
<tr><td><a href="caf&#xe9;%20au%20lait.jpg">caf&eacute; au lait.jpg</a></td></tr>
<tr><td><a href="./plain.png">plain.png</a></td></tr>
<tr><td><a href="http://elsewhere.example/photos/evil.jpg">evil.jpg</a></td></tr>
<tr><td><a href="mailto:webmaster@example.com">webmaster</a></td></tr>
<tr><td><a href="2024/deeper.jpg">not a direct child</a></td></tr>
<tr><td><a href="a%2Fb.jpg">encoded slash</a></td></tr>
<tr><td><a href="#top">top</a><a>no href</a></td></tr>
</table></body></html>
"""


@pytest.mark.parametrize("page", [NGINX, APACHE], ids=["nginx", "apache"])
def test_nginx_and_apache_index_pages(web: WebServer, page: bytes) -> None:
    # http.server serves a folder's index.html instead of its own listing: a stand-in for
    # another server's generated page, served over the same real HTTP path.
    put(web, "photos/index.html", page)
    put(web, "photos/2024/new.jpg")
    put(web, "photos/2024/index.html", b"<a href='new.jpg'>new.jpg</a>")
    connector = WebFolderConnector("site", web.url("root/"), LOOPBACK)
    assert keys(connector, "photos/") == ["photos/café au lait.jpg", "photos/plain.png"]
    assert keys(connector, "photos", recursive=True) == [
        "photos/2024/new.jpg",
        "photos/café au lait.jpg",
        "photos/plain.png",
    ]
