"""A real GCS JSON-API server on loopback for the storage tests: gcp-storage-emulator, in a thread.

Not a mock of the google client: the connector's requests, uploads (multipart and resumable),
downloads with checksum validation, paging and error parsing all cross a real socket.

It runs in a thread of the test process, through the emulator's Python API, for one reason:
in in-memory mode the emulator re-serializes the metadata of *every* object to an in-memory
``.meta`` file after each write (a snapshot it only ever reads at start-up), so seeding n
objects costs O(n²) — about 55 s for the contract's 2,600 objects. In a thread we can turn that
snapshot off for the in-memory store (:func:`start_gcs_emulator`), which makes the same seeding
take a few seconds; every request is still served by the emulator's own HTTP handlers.

Use::

    from tests.servers.gcs import GCSEmulator, gcs_emulator  # noqa: F401   (the session fixture)

    def test_x(gcs_emulator: GCSEmulator) -> None:
        client = gcs_emulator.client()
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

__all__ = ["GCSEmulator", "gcs_emulator", "start_gcs_emulator"]

PROJECT = "retouch-tests"


@dataclass
class GCSEmulator:
    endpoint: str
    server: Any = field(repr=False)

    def client(self) -> storage.Client:
        """A google client talking to this emulator (anonymous credentials, as the emulator wants)."""
        return storage.Client(
            project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": self.endpoint}
        )

    def wipe(self) -> None:
        """Drop every bucket and object (the emulator's own /wipe endpoint), e.g. between tests."""
        with urllib.request.urlopen(f"{self.endpoint}/wipe", timeout=30) as answer:
            answer.read()

    def stop(self) -> None:
        self.server.stop()


def start_gcs_emulator() -> GCSEmulator:
    """Start an in-memory emulator on 127.0.0.1 and a free port; call ``.stop()`` when done."""
    # Port 0: the OS picks a free port when the server binds, so there is no race with another
    # process grabbing a port we picked beforehand.
    server = create_server("127.0.0.1", 0, in_memory=True)
    # See the module docstring: the in-memory store never reads this snapshot back after
    # start-up (``wipe`` only deletes it), so skipping it changes nothing the API can observe.
    server._storage._write_config_to_file = lambda: None
    server.start()
    port = server._api._httpd.server_address[1]
    return GCSEmulator(endpoint=f"http://127.0.0.1:{port}", server=server)


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GCSEmulator]:
    emulator = start_gcs_emulator()
    yield emulator
    emulator.stop()
