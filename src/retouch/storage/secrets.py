"""Connector credentials encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from ``RETOUCH_SECRET_KEY`` or, for the embedded default, a file generated on first
start under ``RETOUCH_HOME`` (mode 0600). A copy of the database alone does not reveal credentials.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["SecretBox", "load_or_create_key"]


def load_or_create_key(configured: str | None, home: Path) -> bytes:
    if configured:
        return configured.encode()
    path = home / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, secrets: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def open(self, token: str | None) -> dict[str, Any]:
        if not token:
            return {}
        try:
            value: dict[str, Any] = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise RuntimeError(
                "Stored storage credentials cannot be decrypted: RETOUCH_SECRET_KEY differs from the key they were "
                "saved with."
            ) from None
        return value
