"""The guarded transport: resolve the host, check every address, connect to a checked one.

Like imgproxy, the SSRF check runs *inside the transport*, on the address the socket is about to
connect to: :class:`_GuardedBackend` resolves the host itself, checks every address with the
policy of :mod:`retouch.net.guard`, and connects to one of the checked addresses. A check made
before the request would be bypassed by a redirect to an internal host, or by a DNS name that
answers a public address to the check and a private one to the connection (DNS rebinding).
TLS SNI, certificate verification and the ``Host`` header still use the host name, because
httpcore takes them from the URL, not from the address we hand to the socket.

Public API: :func:`guarded_client`, for anything that sends requests to user-chosen URLs
(:func:`retouch.net.fetch.fetch`, webhooks, web folders).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
import typing
from contextvars import ContextVar
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpcore
import httpx

from retouch.net.guard import (
    FetchPolicy,
    IPAddress,
    _AllowList,
    _as_address,
    _check_address,
    _GuardError,
    _normalize_host,
)

__all__ = ["guarded_client"]

# Both pools keep httpx's default limits; they are passed explicitly because httpx's own
# constant is private.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)

# The deadline of the fetch running in this thread/context (a ``time.monotonic()`` value), or
# None outside :func:`retouch.net.fetch.fetch`, which sets it. The transport reads it to cap
# every connect, TLS handshake, read and write, so that a server dripping one byte per second
# (headers included, where no caller code runs between reads) cannot hold a worker for longer
# than the policy allows.
_DEADLINE: ContextVar[float | None] = ContextVar("retouch_fetch_deadline", default=None)


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
