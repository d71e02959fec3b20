"""The guard's network-free checks: check_url on URLs and IP literals, and the policy's validation.

What the guard decides on resolved addresses is shown through real connections in test_fetch.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from retouch.errors import FetchError
from retouch.net import FetchPolicy, check_url

# --- check_url ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "100.64.0.1",  # CGNAT
        "224.0.0.1",  # multicast (which `ipaddress` calls global)
        "240.0.0.1",
        "255.255.255.255",
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[ff02::1]",
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "[::ffff:10.0.0.1]",
        "[2002:a00:1::]",  # 6to4 of 10.0.0.1
        "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    ],
)
def test_check_url_refuses_non_public_ip_literals(host: str) -> None:
    with pytest.raises(FetchError, match="address, which is not allowed"):
        check_url(f"https://{host}/a.jpg", FetchPolicy())


@pytest.mark.parametrize("host", ["8.8.8.8", "1.1.1.1", "[2606:4700:4700::1111]", "[::ffff:8.8.8.8]"])
def test_check_url_admits_public_ip_literals(host: str) -> None:
    check_url(f"https://{host}/a.jpg", FetchPolicy())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/a.jpg", "only http:// and https:// URLs can be fetched"),
        ("file:///etc/passwd", "only http:// and https:// URLs can be fetched"),
        ("example.com/a.jpg", "only http:// and https:// URLs can be fetched"),
        ("http:///a.jpg", "the URL has no host"),
        ("http://[::1/", "not a valid URL"),
        ("http://example.com:99999/", "port 99999 is out of range"),
    ],
)
def test_check_url_syntax(url: str, message: str) -> None:
    with pytest.raises(FetchError, match=message):
        check_url(url, FetchPolicy())


def test_check_url_does_no_dns(fake_dns: Callable[[dict[str, list[str]]], list[str]]) -> None:
    lookups = fake_dns({"internal.test": ["10.0.0.1"]})
    check_url("https://internal.test/a.jpg", FetchPolicy())
    assert lookups == []


# --- policy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["http://example.com/", "example.com:http", "a b", "user@host", ""])
def test_invalid_allow_entries(entry: str) -> None:
    with pytest.raises(ValueError, match="allow_hosts entry"):
        FetchPolicy(allow_hosts=(entry,))


def test_policy_validation() -> None:
    with pytest.raises(TypeError):
        FetchPolicy(allow_hosts="localhost")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FetchPolicy(max_bytes=0)
    with pytest.raises(ValueError):
        FetchPolicy(timeout_seconds=0)
    with pytest.raises(ValueError):
        FetchPolicy(max_redirects=-1)
