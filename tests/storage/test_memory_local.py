"""The contract suite on the memory and local connectors, plus the local folder's confinement."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from retouch.errors import StorageError
from retouch.storage.local import LocalConnector, check_local_root
from retouch.storage.memory import MemoryConnector
from tests.storage.contract import Seed, WritableContract


class TestMemory(WritableContract):
    @pytest.fixture
    def connector(self) -> MemoryConnector:
        return MemoryConnector("mem", path="prefix/in/bucket")

    @pytest.fixture
    def seed(self, connector: MemoryConnector) -> Seed:
        return lambda key, data: connector.write(key, data, "application/octet-stream")

    @pytest.fixture
    def marker(self, connector: MemoryConnector) -> Seed:
        def put_marker(key: str) -> None:
            connector.objects["prefix/in/bucket/" + key] = (b"", "")

        return put_marker  # type: ignore[return-value]


class TestLocal(WritableContract):
    many = 2_600
    large = 50 * 1024 * 1024

    @pytest.fixture
    def connector(self, tmp_path: Path) -> LocalConnector:
        return LocalConnector("disk", tmp_path / "root")

    @pytest.fixture
    def seed(self, tmp_path: Path) -> Seed:
        def put(key: str, data: bytes) -> None:
            path = tmp_path / "root" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        return put


def test_symlink_out_of_root_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.jpg", root / "link.jpg")
    os.symlink(tmp_path, root / "linkdir")
    connector = LocalConnector("disk", root)
    with pytest.raises(StorageError, match="outside"):
        connector.read("link.jpg")
    with pytest.raises(StorageError, match="outside"):
        connector.write("linkdir/x.jpg", b"x", "image/jpeg")
    assert [i.key for i in connector.list("", True)] == []


def test_local_root_must_be_allowed(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    (allowed / "photos").mkdir(parents=True)
    assert check_local_root(str(allowed / "photos"), [allowed]) == (allowed / "photos").resolve()
    for bad in ("relative/path", str(tmp_path / "elsewhere"), str(allowed / ".." / "elsewhere")):
        with pytest.raises(StorageError):
            check_local_root(bad, [allowed])


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    connector = LocalConnector("disk", tmp_path)
    connector.write("a/b.jpg", b"x" * 1000, "image/jpeg")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.jpg"]
