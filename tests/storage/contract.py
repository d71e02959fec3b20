"""The one contract test suite every connector passes (memory, local, s3, gcs, web_folder).

A backend's test module subclasses :class:`ConnectorContract` and provides two fixtures:
``connector`` (a fresh, empty storage for each test) and ``seed`` (a callable ``seed(key, data)``
that puts an object there by the backend's own means, so read-only connectors are tested too).
Optionally ``marker`` (``marker(key)``: create a directory-marker object such as ``folder/``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from retouch.errors import StorageError
from retouch.storage.base import Connector, ObjectMissing

Seed = Callable[[str, bytes], None]


def keys(connector: Connector, prefix: str = "", recursive: bool = False) -> list[str]:
    return sorted(info.key for info in connector.list(prefix, recursive))


class ConnectorContract:
    many = 2_600  # more than two S3/GCS pages of 1,000
    large = 50 * 1024 * 1024

    def test_is_a_connector(self, connector: Connector) -> None:
        assert isinstance(connector, Connector)

    def test_read_what_was_seeded(self, connector: Connector, seed: Seed) -> None:
        seed("a.jpg", b"hello")
        assert connector.read("a.jpg") == b"hello"
        assert connector.exists("a.jpg")
        assert not connector.exists("b.jpg")

    def test_missing_key(self, connector: Connector) -> None:
        with pytest.raises(ObjectMissing) as info:
            connector.read("nope/missing.jpg")
        assert "missing.jpg" in info.value.public_message

    def test_root_vs_recursive_listing(self, connector: Connector, seed: Seed) -> None:
        for key in ("top.jpg", "b.png", "sub/inner.jpg", "sub/deeper/x.webp", "other/y.jpg"):
            seed(key, b"x")
        assert keys(connector) == ["b.png", "top.jpg"]
        assert keys(connector, recursive=True) == [
            "b.png",
            "other/y.jpg",
            "sub/deeper/x.webp",
            "sub/inner.jpg",
            "top.jpg",
        ]
        assert keys(connector, "sub/") == ["sub/inner.jpg"]
        assert keys(connector, "sub", recursive=True) == ["sub/deeper/x.webp", "sub/inner.jpg"]
        assert keys(connector, "absent/") == []

    def test_hidden_files_skipped(self, connector: Connector, seed: Seed) -> None:
        seed(".DS_Store", b"x")
        seed("a.jpg", b"x")
        seed(".hidden/b.jpg", b"x")
        assert keys(connector, recursive=True) == ["a.jpg"]

    def test_directory_markers_skipped(self, connector: Connector, seed: Seed, request: pytest.FixtureRequest) -> None:
        try:
            marker = request.getfixturevalue("marker")
        except pytest.FixtureLookupError:
            pytest.skip("this backend has no directory-marker objects")
        marker("folder/")
        seed("folder/a.jpg", b"x")
        assert keys(connector, recursive=True) == ["folder/a.jpg"]

    def test_unicode_and_spaces(self, connector: Connector, seed: Seed) -> None:
        key = "Ordner mit Leerzeichen/café été 写真 #1+2%.jpg"
        seed(key, b"\xff\xd8\xffdata")
        assert connector.read(key) == b"\xff\xd8\xffdata"
        assert keys(connector, "Ordner mit Leerzeichen/") == [key]

    def test_many_objects_are_paged(self, connector: Connector, seed: Seed) -> None:
        for i in range(self.many):
            seed(f"many/{i:05d}.jpg", b"x")
        listed = connector.list("many/", False)
        first = next(iter(listed))
        assert first.key == "many/00000.jpg"  # the listing is lazy: the first item comes before the rest
        assert len(keys(connector, "many/")) == self.many

    def test_large_object(self, connector: Connector, seed: Seed) -> None:
        data = os.urandom(1024) * (self.large // 1024)
        seed("big.bin", data)
        assert connector.read("big.bin") == data

    def test_parent_segments_refused(self, connector: Connector) -> None:
        with pytest.raises(StorageError):
            connector.read("../outside.jpg")
        with pytest.raises(StorageError):
            list(connector.list("a/../../", True))


class WritableContract(ConnectorContract):
    def test_write_then_read_and_overwrite(self, connector: Connector) -> None:
        connector.write("out/a.jpg", b"one", "image/jpeg")
        assert connector.read("out/a.jpg") == b"one"
        connector.write("out/a.jpg", b"two", "image/jpeg")
        assert connector.read("out/a.jpg") == b"two"
        assert keys(connector, "out/") == ["out/a.jpg"]

    def test_locate(self, connector: Connector) -> None:
        connector.write("x/y.png", b"1", "image/png")
        _bucket, key, uri = connector.locate("x/y.png")
        assert key.endswith("x/y.png") and "y.png" in uri
