"""A read-only folder on a web server (Claid's ``web_folder`` storage, configured by ``base_url``).

Objects are files under ``base_url``: ``read("a b/c.jpg")`` downloads ``base_url + "a%20b/c.jpg"``.
Every request goes through :mod:`retouch.net`, so the SSRF guard, the byte cap and the
deadline of the :class:`~retouch.net.FetchPolicy` apply to files and index pages alike,
redirects included: a web folder is a URL chosen by a user, like any http(s) input.

Listing reads the server's HTML directory index — what Python's ``http.server``, nginx
``autoindex`` and Apache ``mod_autoindex`` generate — and keeps the ``<a href>`` links that name
a direct child of the folder: a link ending in ``/`` is a subfolder, anything else a file. Parent
links (``../``), sort links (``?C=N;O=D``), links to other hosts or elsewhere on the host, and
hidden names are ignored. A folder without an index page (404) lists as empty. Index pages carry
no reliable sizes, so :attr:`ObjectInfo.size` is None.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx

from retouch.errors import FetchError, StorageError
from retouch.net import FetchPolicy, check_url, fetch, guarded_client
from retouch.storage.base import ObjectInfo, ObjectMissing, check_relative, is_hidden, join_key

__all__ = ["WebFolderConnector"]

# Subfolders deeper than this are not listed: a server can generate endless folders (or a
# symlink loop can), and a recursive listing must end.
_MAX_DEPTH = 32
_GONE = (404, 410)
_HTML_TYPES = ("text/html", "application/xhtml+xml")


class _Absent(StorageError):
    """Raised by the client's response hook on a 404/410, so that ``fetch`` (which reports
    every non-2xx answer as the same FetchError) lets us tell a missing file from a failure."""


def _raise_if_absent(response: httpx.Response) -> None:
    if response.status_code in _GONE:
        raise _Absent("absent")


class WebFolderConnector:
    kind = "web_folder"
    read_only = True

    def __init__(self, name: str, base_url: str, policy: FetchPolicy) -> None:
        self.name = name
        self.policy = policy
        # Refuses, without a request, what can never be fetched: other schemes, no host, and IP
        # literals the policy does not allow. Host names are checked by the transport.
        check_url(base_url, policy)
        parts = urllib.parse.urlsplit(base_url)
        # The folder's path always ends with '/', so keys (and index links) resolve inside it.
        # A query (e.g. an access token) is kept for every request; a fragment never reaches
        # a server and is dropped.
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        self._base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self._query = parts.query
        # What locate() shows: without user info or query, which can carry credentials.
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        port = f":{parts.port}" if parts.port is not None else ""
        self._public_base = f"{parts.scheme}://{host}{port}{path}"
        # One client for the connector's lifetime (connection reuse), built by guarded_client
        # so that every connection passes the SSRF guard; the hook only classifies answers.
        self._client = guarded_client(policy)
        self._client.event_hooks = {"request": [], "response": [_raise_if_absent]}

    # ----------------------------------------------------------------------------------------

    def _url(self, key: str, public: bool = False) -> str:
        # Percent-encode every segment ('#', '?', '%', '+', spaces, non-ASCII); '/' stays a
        # separator. check_relative has already folded '.', empty segments and refused '..'.
        path = urllib.parse.quote(key, safe="/")
        if public:
            return self._public_base + path
        return self._base + path + (f"?{self._query}" if self._query else "")

    def read(self, key: str) -> bytes:
        rel = check_relative(key)
        if not rel or rel.endswith("/"):
            raise StorageError(f"storage://{self.name}/{key} is a folder, not a file.")
        try:
            return fetch(self._url(rel), self.policy, client=self._client).data
        except _Absent:
            raise ObjectMissing(f"storage://{self.name}/{key} does not exist.") from None

    def write(self, key: str, data: bytes, content_type: str) -> None:
        raise StorageError(f"Cannot write storage://{self.name}/{key}: web_folder storages are read-only.")

    def exists(self, key: str) -> bool:
        rel = check_relative(key)
        if not rel or rel.endswith("/"):
            return False
        url = self._url(rel)
        try:
            response = self._client.head(url)
        except _Absent:
            return False
        except httpx.HTTPError as error:
            # (A connection refused by the SSRF guard is already a FetchError and passes through.)
            raise FetchError(
                f"Could not reach {self._url(rel, public=True)}: the request failed ({type(error).__name__})."
            ) from None
        if response.is_success:
            return True
        # Servers that refuse HEAD (405/501) or redirect (which the guarded client does not
        # follow): ask with a GET through fetch, which follows redirects under the guard.
        try:
            fetch(url, self.policy, client=self._client)
        except _Absent:
            return False
        return True

    def list(self, prefix: str, recursive: bool) -> Iterator[ObjectInfo]:
        folder = check_relative(prefix)
        folder = folder + "/" if folder and not folder.endswith("/") else folder
        return self._walk(folder, recursive, 0)

    def _walk(self, folder: str, recursive: bool, depth: int) -> Iterator[ObjectInfo]:
        # One index page per folder, fetched only when the walk reaches it. Entries are sorted
        # with subfolders as "name/" and walked depth-first, so keys come out in the order of a
        # sorted listing of the whole tree ("a.jpg" < "a/x.jpg"), as S3 and GCS list them.
        for entry in sorted(self._index(folder)):
            if not entry.endswith("/"):
                yield ObjectInfo(join_key(folder, entry))
            elif recursive and depth < _MAX_DEPTH:
                yield from self._walk(join_key(folder, entry), recursive, depth + 1)

    def locate(self, key: str) -> tuple[str | None, str, str]:
        rel = check_relative(key)
        return None, rel, self._url(rel, public=True)

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()

    # ----------------------------------------------------------------------------------------

    def _index(self, folder: str) -> set[str]:
        """The names ("a.jpg", "sub/") of the folder's direct, visible children."""
        url = self._url(folder)
        try:
            page = fetch(url, self.policy, client=self._client)
        except _Absent:
            return set()
        if page.content_type is not None and page.content_type not in _HTML_TYPES:
            raise StorageError(
                f"Cannot list storage://{self.name}/{folder}: {self._url(folder, public=True)} is not an HTML "
                f"directory index ({page.content_type})."
            )
        # Links are resolved against the URL the page came from (after redirects, if any).
        return _children(page.data.decode("utf-8", errors="replace"), page.url)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            for name, value in attrs:
                if name == "href" and value:
                    self.hrefs.append(value.strip())


def _children(html: str, page_url: str) -> set[str]:
    parser = _Links()
    parser.feed(html)
    parser.close()
    page = urllib.parse.urlsplit(page_url)
    folder = urllib.parse.unquote(page.path if page.path.endswith("/") else page.path + "/")
    names: set[str] = set()
    for href in parser.hrefs:
        target = urllib.parse.urlsplit(urllib.parse.urljoin(page_url, href))
        if target.query or (target.scheme, target.netloc.lower()) != (page.scheme, page.netloc.lower()):
            continue  # sort links (?C=N;O=D), other hosts, mailto:, javascript:, ...
        # Compared decoded: servers differ in what they percent-encode ("é" raw or as %C3%A9).
        path = urllib.parse.unquote(target.path)
        if not path.startswith(folder):
            continue  # "../", "/", links elsewhere on the site
        name = path[len(folder) :]
        is_folder = name.endswith("/")
        name = name.rstrip("/") if is_folder else name
        # Not a direct child ("a/b" or an encoded "%2F"), the folder itself, or hidden.
        if not name or "/" in name or name in (".", "..") or is_hidden(name):
            continue
        names.add(name + "/" if is_folder else name)
    return names
