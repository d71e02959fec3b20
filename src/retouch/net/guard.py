"""The SSRF guard's address policy: which URLs and addresses an outgoing request may reach.

A service that fetches URLs chosen by its users can be turned into a proxy into its own network
("fetch http://169.254.169.254/ for me"). The guard therefore refuses every address that is not
public unicast: loopback, private (RFC 1918, fc00::/7), link-local, multicast, reserved,
unspecified, shared/CGNAT (100.64.0.0/10), and IPv6 forms that embed such an IPv4 address.

This module decides; it does not connect. The decision that counts is made on the address the
socket is about to connect to, inside the transport (:mod:`retouch.net.transport`): a check made
only before the request would be bypassed by a redirect to an internal host, or by DNS rebinding.
:func:`check_url` is the early, network-free part (syntax, scheme, IP literals), which gives a clear
message before any connection; :func:`check_endpoint` is for connections a client library other
than ours makes (S3, GCS), which our transport cannot guard.

:class:`FetchPolicy` lives here because the guard is the bottom of :mod:`retouch.net` and the
allow list is the part of the policy that is compiled; its limits are applied by the transport and
:func:`retouch.net.fetch.fetch`. Every refusal is a :class:`~retouch.errors.FetchError` whose message
names the URL as ``scheme://host[:port]/path`` only: user info and query strings can carry
credentials or signed tokens, so they never appear in a message.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from dataclasses import dataclass, field

import httpx

from retouch.errors import FetchError

__all__ = ["FetchPolicy", "check_endpoint", "check_url"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = {"http": 80, "https": 443}
# What an allow-list host name may look like once IDNA-encoded (httpx would percent-encode a
# space, say, and the entry would silently never match).
_HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?\.?", re.IGNORECASE)
# Messages quote the URL; a pathological path would drown the message, so it is cut.
_MAX_SHOWN_PATH = 200

# Shared address space (RFC 6598). ``ipaddress`` reports it as not global but also not private,
# so it gets its own name in messages.
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
# NAT64 well-known prefix (RFC 6052): on a network with a NAT64 gateway, 64:ff9b::a00:1 reaches
# 10.0.0.1, yet ``ipaddress`` calls it global. The embedded IPv4 address is checked instead.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


# --------------------------------------------------------------------------------------------
# Policy
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
# Syntactic check
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


# --------------------------------------------------------------------------------------------
# Endpoints of other client libraries
# --------------------------------------------------------------------------------------------


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
