"""A real S3 server on loopback for the storage tests: moto's standalone server, in a child process.

Not moto's in-process mocks: those patch botocore itself, so the connector's HTTP, signing,
retries, timeouts and error parsing would never run. Here every request crosses a real socket.

moto runs in a child process so that its switches (environment variables) and its global state
stay out of the test process. It runs with request authentication on: the first three actions
are allowed unsigned (moto's ``INITIAL_NO_AUTH_ACTION_COUNT``) and create an IAM user with an
allow-all policy and an access key; from then on every request must be signed with a known key
and a matching secret, as on AWS, so wrong credentials are really refused (403).

Use::

    from tests.servers.moto import moto_server  # noqa: F401   (the session fixture)

    def test_x(moto_server: MotoServer) -> None:
        s3 = moto_server.client("s3")
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import boto3
import pytest
from botocore.config import Config

__all__ = ["MotoServer", "moto_server", "start_moto"]

#: Actions allowed before authentication is enforced: CreateUser, PutUserPolicy, CreateAccessKey.
_BOOTSTRAP_ACTIONS = 3
_REGION = "us-east-1"


@dataclass
class MotoServer:
    endpoint_url: str
    #: A valid key pair (an IAM user allowed everything).
    access_key: str
    secret_key: str = field(repr=False)
    region: str = _REGION
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log: IO[bytes] | None = field(default=None, repr=False)

    def client(self, service: str = "s3", **kwargs: Any) -> Any:
        """A boto3 client for this server with the valid keys (or those given), path-style, no retries."""
        params: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "config": Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "total_max_attempts": 1}),
        }
        params.update(kwargs)
        # A session of its own: keys are given here, never read from (or written to) the environment.
        return boto3.session.Session().client(service, **params)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.log is not None:
            self.log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(process: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    """True once the port accepts connections; False if the server exited (e.g. the port was taken).

    Only a TCP connect, no HTTP request: a request would use up one of the unauthenticated actions.
    """
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _log_tail(log: IO[bytes]) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-2000:].decode(errors="replace")


def start_moto(*, timeout: float = 30) -> MotoServer:
    """Start ``python -m moto.server`` on 127.0.0.1 and a free port, with authentication on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(_BOOTSTRAP_ACTIONS)
    last_log = ""
    for _ in range(3):  # the free port may be taken between choosing and binding it: try another
        port = _free_port()
        log = tempfile.TemporaryFile()  # noqa: SIM115 - outlives this function: MotoServer.stop() closes it
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if _wait_listening(process, port, time.monotonic() + timeout):
            server = MotoServer(f"http://127.0.0.1:{port}", "unused", "unused", process=process, log=log)
            try:
                _bootstrap(server)
            except BaseException:
                server.stop()
                raise
            return server
        process.kill()
        process.wait(timeout=10)
        last_log = _log_tail(log)
        log.close()
    raise RuntimeError(f"moto server did not start:\n{last_log}")


def _bootstrap(server: MotoServer) -> None:
    """Create the IAM user whose keys the tests use (the only unauthenticated requests)."""
    iam = server.client("iam", aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="retouch-tests")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="retouch-tests", PolicyName="all", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="retouch-tests")["AccessKey"]
    server.access_key, server.secret_key = key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()
