"""http(s) inputs: download a URL behind an SSRF guard, a byte cap and a deadline.

A service that fetches URLs chosen by its users can be turned into a proxy into its own network
("fetch http://169.254.169.254/ for me"). The guard therefore refuses every address that is not
public unicast: loopback, private (RFC 1918, fc00::/7), link-local, multicast, reserved,
unspecified, shared/CGNAT (100.64.0.0/10), and IPv6 forms that embed such an IPv4 address.

Where the check runs matters more than what it checks. Like imgproxy, it runs *inside the
transport*, on the address the socket is about to connect to: :class:`_GuardedBackend` resolves
the host itself, checks every address, and connects to one of the checked addresses. A check
made before the request would be bypassed by a redirect to an internal host, or by a DNS name
that answers a public address to the check and a private one to the connection (DNS rebinding).
TLS SNI, certificate verification and the ``Host`` header still use the host name, because
httpcore takes them from the URL, not from the address we hand to the socket.

Public API: :class:`FetchPolicy`, :class:`Fetched`, :func:`fetch`, :func:`guarded_client` and
:func:`check_url`. Every failure is a :class:`~retouch.errors.FetchError` whose message names
the URL as ``scheme://host[:port]/path`` only: user info and query strings can carry credentials
or signed tokens, so they never appear in a message.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time
import typing
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpcore
import httpx

from retouch.errors import FetchError, LimitExceeded

__all__ = ["FetchPolicy", "Fetched", "check_url", "fetch", "guarded_client"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = {"http": 80, "https": 443}
# What an allow-list host name may look like once IDNA-encoded (httpx would percent-encode a
# space, say, and the entry would silently never match).
_HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?\.?", re.IGNORECASE)
_DEFAULT_NAME = "image"
# Messages quote the URL; a pathological path would drown the message, so it is cut.
_MAX_SHOWN_PATH = 200

# Shared address space (RFC 6598). ``ipaddress`` reports it as not global but also not private,
# so it gets its own name in messages.
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
# NAT64 well-known prefix (RFC 6052): on a network with a NAT64 gateway, 64:ff9b::a00:1 reaches
# 10.0.0.1, yet ``ipaddress`` calls it global. The embedded IPv4 address is checked instead.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# Both pools keep httpx's default limits; they are passed explicitly because httpx's own
# constant is private.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)

# The deadline of the fetch running in this thread/context (a ``time.monotonic()`` value), or
# None outside :func:`fetch`. The transport reads it to cap every connect, TLS handshake, read
# and write, so that a server dripping one byte per second (headers included, where no caller
# code runs between reads) cannot hold a worker for longer than the policy allows.
_DEADLINE: ContextVar[float | None] = ContextVar("retouch_fetch_deadline", default=None)


# --------------------------------------------------------------------------------------------
# Policy and result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AllowList:
    """The compiled ``allow_hosts`` of a policy.

    Host-name entries admit a name whatever it resolves to (the operator trusts the name);
    address entries (a bare IP or a CIDR) admit resolved addresses, whatever name led there.
    An entry without a port admits every port.
    """

    names: frozenset[tuple[str, int | None]] = frozenset()
    networks: tuple[tuple[IPNetwork, int | None], ...] = ()

    @classmethod
    def parse(cls, entries: tuple[str, ...]) -> _AllowList:
        """Compile the entries; raise ValueError naming the first one that cannot be read."""
        names: set[tuple[str, int | None]] = set()
        networks: list[tuple[IPNetwork, int | None]] = []
        for entry in entries:
            text = entry.strip()
            try:
                # A bare address or a CIDR. strict=False admits "10.1.2.3/8" as 10.0.0.0/8,
                # which is what anybody writing it means.
                networks.append((ipaddress.ip_network(text, strict=False), None))
                continue
            except ValueError:
                pass
            host, port = _parse_host_port(text)
            address = _as_address(host)
            if address is not None:
                networks.append((ipaddress.ip_network(address), port))
            else:
                names.add((host, port))
        return cls(frozenset(names), tuple(networks))

    def admits_name(self, host: str, port: int) -> bool:
        """Whether the host name (normalized) is admitted on this port."""
        return (host, None) in self.names or (host, port) in self.names

    def admits_address(self, address: IPAddress, port: int) -> bool:
        """Whether the resolved address is admitted on this port."""
        candidates: list[IPAddress] = [address]
        # A resolver may answer ::ffff:127.0.0.1 for 127.0.0.1; an IPv4 entry should cover it.
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(
            candidate in network and (allowed_port is None or allowed_port == port)
            for network, allowed_port in self.networks
            for candidate in candidates
        )


def _parse_host_port(text: str) -> tuple[str, int | None]:
    """Split an allow entry "host", "host:port" or "[v6]:port" into a normalized host and port."""
    try:
        parts = urllib.parse.urlsplit("//" + text)
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        raise ValueError(f"allow_hosts entry {text!r} is not a host, host:port or CIDR") from None
    host = parts.hostname
    if not host or parts.path or parts.query or parts.fragment or parts.username is not None:
        raise ValueError(f"allow_hosts entry {text!r} is not a host, host:port or CIDR")
    if _as_address(host) is None:
        # Normalize the name exactly as httpx will (IDNA, lower case), so that the entry compares
        # equal to the host the transport sees.
        try:
            host = httpx.URL(f"http://{host}/").raw_host.decode("ascii")
        except httpx.InvalidURL:
            host = ""
        if not _HOST_NAME.fullmatch(host):
            raise ValueError(f"allow_hosts entry {text!r} is not a valid host name")
    return _normalize_host(host), port


@dataclass(frozen=True)
class FetchPolicy:
    """What an http(s) fetch may do.

    ``allow_hosts`` admits hosts although their address is private or loopback (tests,
    intranets). Entries are ``"host"``, ``"host:port"`` (``"[::1]:8080"`` for IPv6) or an
    address or CIDR such as ``"127.0.0.1"`` or ``"10.0.0.0/8"``. A name entry admits that name
    whatever it resolves to; an address entry admits the resolved addresses it contains,
    whatever name led there. An invalid entry raises ``ValueError`` when the policy is built.

    ``timeout_seconds`` is the budget of the whole fetch, redirects included: every connect
    and every read waits at most that long, and never past the overall deadline.
    ``max_bytes`` caps the (decoded) body; ``max_redirects`` caps the hops :func:`fetch` follows.
    """

    allow_hosts: tuple[str, ...] = ()
    max_bytes: int = 100 * 1024 * 1024
    timeout_seconds: float = 30.0
    max_redirects: int = 5
    _allow: _AllowList = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.allow_hosts, str):
            # ("a.example") without the comma is a str: iterating it would allow single letters.
            raise TypeError("allow_hosts must be a tuple of strings, not a string")
        if self.max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if not self.timeout_seconds > 0:
            raise ValueError("timeout_seconds must be positive")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must not be negative")
        # Compiled once here, so a bad entry fails at configuration time, not on some request.
        object.__setattr__(self, "_allow", _AllowList.parse(self.allow_hosts))


@dataclass(frozen=True)
class Fetched:
    """A downloaded http(s) input.

    ``url`` is the final URL after redirects, without user info (credentials are never handed
    back); it keeps its query. ``name`` is the last segment of the final URL's path,
    percent-decoded, or ``"image"`` when there is none. ``content_type`` is the media type the
    server declared, lower-cased and without parameters (``"image/jpeg"``), or None: a claim to
    check, not a fact.
    """

    data: bytes
    url: str
    name: str
    content_type: str | None


# --------------------------------------------------------------------------------------------
# Address checks
# --------------------------------------------------------------------------------------------


def _normalize_host(host: str) -> str:
    """Lower-case, unbracket and strip the trailing dot, so "Example.COM." equals "example.com"."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def _as_address(host: str) -> IPAddress | None:
    """The host as an IP address, or None when it is a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and may be routed to, if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _refusal(address: IPAddress) -> str | None:
    """Why the address is not a public unicast address (e.g. "a loopback"), or None if it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:a.b.c.d *is* a.b.c.d on a dual-stack socket; the IPv6 form itself would only
        # add a spurious "reserved" (it lies in ::/8).
        return _refusal(address.ipv4_mapped)
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        reason = _refusal(embedded)
        if reason is not None:
            return reason
    # The specific categories come first only for a clearer message; the final `is_global`
    # test is the rule, the others close its gaps (multicast counts as global for ipaddress).
    if address.is_unspecified:
        return "an unspecified"
    if address.is_loopback:
        return "a loopback"
    if address.is_link_local:
        return "a link-local"
    if address.is_multicast:
        return "a multicast"
    if address in _SHARED:
        return "a shared (carrier-grade NAT)"
    if address.is_private:
        return "a private"
    if address.is_reserved:
        return "a reserved"
    if not address.is_global:
        return "a non-public"
    return None


def _check_address(host: str, port: int, address: IPAddress, allow: _AllowList, *, literal: bool) -> str | None:
    """Why connecting to ``address`` for ``host:port`` is refused, or None when it is admitted."""
    reason = _refusal(address)
    if reason is None or allow.admits_address(address, port):
        return None
    if literal:
        return f"{host} is {reason} address, which is not allowed"
    # The resolved address is deliberately not quoted: telling a caller what an internal name
    # resolves to would help them map the network.
    return f"the host {host} resolves to {reason} address, which is not allowed"


class _GuardError(FetchError):
    """The transport refused a connection; ``reason`` is the part :func:`fetch` re-quotes."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"Could not connect to {_bracket(host)}:{port}: {reason}.")
        self.reason = reason


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --------------------------------------------------------------------------------------------
# The transport: resolve, check, connect to the checked address
# --------------------------------------------------------------------------------------------


def _capped(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the running fetch's deadline.

    Raises ``expired`` (an httpcore timeout, so httpx maps it to its own) once the deadline has
    passed.
    """
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise expired("the overall deadline of the fetch has passed")
    return remaining if timeout is None else min(timeout, remaining)


_READ_BYTES = 1 << 20


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation also respects the fetch deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # httpcore asks for 64 KB at a time; every read then passes h11's event machinery, ~45 rounds
        # for a 3 MB photo. Reading up to 1 MiB takes what the socket holds in a few rounds: a 3 MB
        # fetch went from ~3.5 to ~2 ms of worker CPU (larger reads cost more in fresh-memory faults).
        return self._inner.read(max(max_bytes, _READ_BYTES), _capped(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _capped(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.start_tls(ssl_context, server_hostname, _capped(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(stream)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, connecting only to addresses the guard admitted.

    httpcore calls ``connect_tcp(host, port)`` with the URL's host; the default backend would
    let ``socket.create_connection`` resolve it, out of our sight. Here we resolve it, check
    every address (one bad address refuses the host, so a mixed DNS answer cannot be used to
    reach an internal address by retrying), and hand the inner backend a checked IP literal, so
    nothing is resolved again between the check and the connection.
    """

    def __init__(self, allow: _AllowList) -> None:
        self._allow = allow
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        name = _normalize_host(host)
        literal = _as_address(name) is not None
        addresses = self._resolve(name, port)
        if not self._allow.admits_name(name, port):
            for address in addresses:
                reason = _check_address(name, port, address, self._allow, literal=literal)
                if reason is not None:
                    raise _GuardError(name, port, reason)
        # Try each admitted address in the resolver's order, like socket.create_connection
        # does (e.g. "localhost" -> ::1 first, then 127.0.0.1).
        last_error: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=_capped(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last_error = error
                continue
            return _DeadlineStream(stream)
        assert last_error is not None  # _resolve never returns an empty list
        raise last_error

    def _resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address of ``host`` (an IP literal resolves to itself), in resolver order."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            raise _GuardError(host, port, f"the host name {host} could not be resolved") from None
        addresses: list[IPAddress] = []
        for _family, _type, _proto, _canonname, sockaddr in infos:
            # sockaddr[0] keeps an IPv6 scope ("fe80::1%eth0"), which ipaddress accepts.
            address = ipaddress.ip_address(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise _GuardError(host, port, f"the host name {host} could not be resolved")
        return addresses

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        # Never configured by guarded_client; refused rather than delegated so that a future
        # change cannot open a path around the guard.
        raise _GuardError("unix socket", 0, "connections to unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with its connection pool rebuilt on :class:`_GuardedBackend`.

    ``HTTPTransport`` has no parameter for the network backend, but it does all its work through
    ``self._pool``, so swapping the pool keeps httpx's request/response mapping and error
    translation untouched. No proxy is ever configured: a proxy would resolve and connect on our
    behalf, and the guard would only ever see the proxy's address.
    """

    def __init__(self, allow: _AllowList) -> None:
        # One SSL context for both pools (certifi's bundle, or SSL_CERT_FILE/SSL_CERT_DIR).
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context, limits=_LIMITS)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=_LIMITS.max_connections,
            max_keepalive_connections=_LIMITS.max_keepalive_connections,
            keepalive_expiry=_LIMITS.keepalive_expiry,
            network_backend=_GuardedBackend(allow),
        )


def guarded_client(policy: FetchPolicy) -> httpx.Client:
    """An ``httpx.Client`` whose every connection passes the SSRF guard of ``policy``.

    Reusable for anything that sends requests to user-chosen URLs (webhooks POST with it). A
    refused connection raises :class:`~retouch.errors.FetchError` (not an ``httpx`` error), so
    callers that catch ``httpx.HTTPError`` for retries must catch it too, and should not retry it.

    The client does not follow redirects (:func:`fetch` follows them itself and counts them; if
    a caller turns following on, every hop still goes through the guard), ignores proxy and
    ``.netrc`` settings from the environment, asks for uncompressed bodies, and keeps no cookies
    so that a client shared between requests of different users does not carry state between
    them. The caller closes it.
    """
    return httpx.Client(
        transport=_GuardedTransport(policy._allow),
        timeout=httpx.Timeout(policy.timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        # An empty allowed_domains list makes the policy refuse every cookie.
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        # Compressed bodies would let a small response expand in memory before the byte cap
        # sees it; images gain nothing from transfer compression anyway.
        headers={"Accept-Encoding": "identity", "User-Agent": "retouch"},
    )


# --------------------------------------------------------------------------------------------
# Syntactic check and fetch
# --------------------------------------------------------------------------------------------


def _shown(url: httpx.URL) -> str:
    """``scheme://host[:port]/path`` of a URL: what messages may quote (no user info, no query)."""
    host = _bracket(url.host) if url.host else ""
    port = f":{url.port}" if url.port is not None else ""
    path = url.raw_path.split(b"?", 1)[0].decode("ascii", errors="replace")
    if len(path) > _MAX_SHOWN_PATH:
        path = path[:_MAX_SHOWN_PATH] + "..."
    return f"{url.scheme}://{host}{port}{path}"


def _shown_raw(url: str) -> str:
    """Like :func:`_shown` for a string httpx could not parse, as far as it can be shown safely."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "the given URL"
    if not parts.scheme or not host:
        return "the given URL"
    netloc = _bracket(host) + (f":{port}" if port is not None else "")
    path = parts.path[:_MAX_SHOWN_PATH]
    return f"{parts.scheme}://{netloc}{path}"


def _parse(url: str) -> httpx.URL:
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise FetchError(f"Could not fetch {_shown_raw(url)}: it is not a valid URL.") from None


def _check_parsed(url: httpx.URL, policy: FetchPolicy, *, where: str | None = None) -> None:
    """:func:`check_url` on a parsed URL; ``where`` overrides how messages name it."""
    if url.scheme not in _SCHEMES:
        # Also catches relative input such as "example.com/a.jpg" (no scheme at all).
        if where is None:
            where = _shown(url) if url.scheme and url.host else "the given URL"
        raise FetchError(f"Could not fetch {where}: only http:// and https:// URLs can be fetched.")
    where = where or _shown(url)
    if not url.host:
        raise FetchError(f"Could not fetch {where}: the URL has no host.")
    if url.port is not None and not 0 < url.port < 65536:
        # httpx accepts any number here; the socket would fail later with a vaguer error.
        raise FetchError(f"Could not fetch {where}: port {url.port} is out of range.")
    # An IP literal can be judged without DNS, so it is refused here with a clear message and
    # without a connection attempt. Names are left to the transport, which resolves them.
    host = _normalize_host(url.raw_host.decode("ascii"))
    address = _as_address(host)
    port = url.port if url.port is not None else _SCHEMES[url.scheme]
    if address is not None and not policy._allow.admits_name(host, port):
        reason = _check_address(host, port, address, policy._allow, literal=True)
        if reason is not None:
            raise FetchError(f"Could not fetch {where}: {reason}.")


def check_url(url: str, policy: FetchPolicy) -> None:
    """Refuse, without any network access, a URL that can never be fetched.

    Checks that it parses, is http or https and has a host; an IP-literal host must also pass
    the address rules of ``policy``. User info is accepted (it becomes Basic auth) but never
    quoted. Host names are *not* resolved here: the transport checks the addresses it actually
    connects to. Raises :class:`~retouch.errors.FetchError`.
    """
    _check_parsed(_parse(url), policy)


def _file_name(url: httpx.URL) -> str:
    """The percent-decoded last path segment of ``url``, or "image" when there is none.

    The segment is split before decoding ("a%2Fb.jpg" is one segment), then cut again at any
    slash or backslash the decoding produced and stripped of control characters, so the result
    is always a plain file name and never a path.
    """
    raw_path = url.raw_path.split(b"?", 1)[0].decode("ascii", errors="replace")
    segment = urllib.parse.unquote(raw_path.rsplit("/", 1)[-1], errors="replace")
    segment = segment.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in segment if ch.isprintable()).strip()
    return name if name not in ("", ".", "..") else _DEFAULT_NAME


def _media_type(value: str | None) -> str | None:
    if value is None:
        return None
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type or None


@contextmanager
def _fetch_errors(shown: str, policy: FetchPolicy, deadline: float) -> Iterator[None]:
    """Turn what can go wrong on the wire into a FetchError that names the URL."""
    try:
        yield
    except _GuardError as error:
        raise FetchError(f"Could not fetch {shown}: {error.reason}.") from None
    except FetchError:
        raise
    except httpx.TimeoutException:
        if time.monotonic() >= deadline:
            message = f"the download did not finish within {policy.timeout_seconds:g} seconds"
        else:
            message = f"the server did not respond within {policy.timeout_seconds:g} seconds"
        raise FetchError(f"Could not fetch {shown}: {message}.") from None
    except httpx.HTTPError as error:
        # ConnectError, RemoteProtocolError (e.g. an unreadable Location header), ... The
        # exception text is left out: it can quote the full URL or server-controlled text.
        kind = (
            "the connection failed"
            if isinstance(error, httpx.ConnectError)
            else "the server's answer could not be read"
        )
        raise FetchError(f"Could not fetch {shown}: {kind} ({type(error).__name__}).") from None


def _read_body(
    response: httpx.Response, policy: FetchPolicy, shown: str, deadline: float, sink: typing.BinaryIO | None = None
) -> bytes:
    # A limit, like every other: 422 `image` (LimitExceeded), not a failed fetch.
    too_large = f"The input at {shown} exceeds the input size limit of {policy.max_bytes} bytes."
    declared = response.headers.get("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > policy.max_bytes:
        # Refused before reading a byte of the body.
        raise LimitExceeded(too_large)
    # Chunks joined once at the end: growing one bytearray re-copied the body as it grew, and with
    # the final bytes() copy that was 1.5 of the 5.4 ms of CPU a 3 MB fetch cost a worker.
    # With a sink (a handoff file), each chunk goes straight to it: the body is never whole in memory.
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        if sink is not None:
            sink.write(chunk)
        else:
            chunks.append(chunk)
        size += len(chunk)
        if size > policy.max_bytes:
            # A missing or lying Content-Length: stop as soon as the cap is passed.
            raise LimitExceeded(too_large)
        if time.monotonic() >= deadline:
            raise httpx.ReadTimeout("the overall deadline of the fetch has passed")
    return b"".join(chunks)


def _result(
    response: httpx.Response, policy: FetchPolicy, shown: str, deadline: float, sink: typing.BinaryIO | None
) -> Fetched:
    """The Fetched of a final (non-redirect) answer, or FetchError for a non-2xx one."""
    if not 200 <= response.status_code < 300:
        raise FetchError(f"Could not fetch {shown}: the server answered {response.status_code}.")
    data = _read_body(response, policy, shown, deadline, sink)
    final = response.url
    return Fetched(
        data=data,
        url=str(final.copy_with(username=None, password=None)),
        name=_file_name(final),
        content_type=_media_type(response.headers.get("Content-Type")),
    )


def fetch(
    url: str, policy: FetchPolicy, *, client: httpx.Client | None = None, sink: typing.BinaryIO | None = None
) -> Fetched:
    """Download an http(s) URL under ``policy``; raise :class:`~retouch.errors.FetchError`.

    Redirects are followed here, at most ``policy.max_redirects`` of them, each hop checked by
    :func:`check_url` and, on connection, by the transport's address guard. The whole fetch,
    redirects included, must finish within ``policy.timeout_seconds``. The final answer must be
    2xx; its body may not exceed ``policy.max_bytes``.

    ``client`` lets a caller reuse connections; it must come from :func:`guarded_client` with
    the same allow list, since the address guard lives in that client's transport (any other
    client - e.g. one on ``httpx.MockTransport`` in a test - gets only the syntactic checks).
    Without it, a guarded client is created and closed for this call.

    ``sink``: a file the body is written to as it arrives (``Fetched.data`` is then empty).
    """
    request_url = _parse(url)
    _check_parsed(request_url, policy)
    original = _shown(request_url)
    http = client if client is not None else guarded_client(policy)
    deadline = time.monotonic() + policy.timeout_seconds
    token = _DEADLINE.set(deadline)
    try:
        request = http.build_request("GET", request_url, timeout=policy.timeout_seconds)
        redirects = 0
        while True:
            shown = _shown(request.url)
            if redirects:
                shown += f" (redirected from {original})"
            with _fetch_errors(shown, policy, deadline):
                response = http.send(request, stream=True, follow_redirects=False)
                try:
                    next_request = response.next_request
                    if next_request is None:
                        return _result(response, policy, shown, deadline, sink)
                finally:
                    # Also releases the connection of a redirect answer whose body we skip.
                    response.close()
                redirects += 1
                if redirects > policy.max_redirects:
                    raise FetchError(
                        f"Could not fetch {original}: too many redirects (more than {policy.max_redirects})."
                    )
                next_shown = f"{_shown(next_request.url)} (redirected from {original})"
                _check_parsed(next_request.url, policy, where=next_shown)
                request = next_request
    finally:
        _DEADLINE.reset(token)
        if client is None:
            http.close()


def check_endpoint(url: str, policy: FetchPolicy) -> None:
    """Check a service endpoint that a client library other than ours will connect to (an S3- or
    GCS-compatible ``endpoint_url``): its host must resolve only to admitted addresses now.

    Our transport cannot guard those libraries' connections, so this is checked when a storage is
    saved and when its connector is built; together with the allow list it keeps user-supplied
    endpoints off loopback, private and metadata addresses.
    """
    check_url(url, policy)
    parsed = _parse(url)
    host = _normalize_host(parsed.host)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if policy._allow.admits_name(host, port):
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise FetchError(f"The endpoint host {host} could not be resolved.") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        reason = _check_address(host, port, address, policy._allow, literal=False)
        if reason is not None:
            raise FetchError(f"The endpoint {_shown_raw(url)} is refused: {reason}.")
