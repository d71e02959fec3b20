"""Accounts and API keys: keys are stored hashed, looked up by hash, cached briefly in memory."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from retouch.stores.tables import Account, ApiKey

__all__ = ["SCOPES", "KeyStore", "Principal"]

SCOPES = ("image_editing", "storage")
_KEY_PREFIX = "rt_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the account and the scopes of the key used."""

    account_id: int
    account_name: str
    key_id: int
    scopes: frozenset[str]


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    def __init__(self, engine: Engine, cache_seconds: float = 30.0) -> None:
        self._engine = engine
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()

    def create(self, account: str, scopes: tuple[str, ...] = SCOPES) -> str:
        """Create a key (and the account if new); returns the key, which is never stored in clear."""
        unknown = set(scopes) - set(SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}; known: {', '.join(SCOPES)}")
        key = _KEY_PREFIX + secrets.token_urlsafe(32)
        with Session(self._engine) as session, session.begin():
            acct = session.scalar(select(Account).where(Account.name == account))
            if acct is None:
                acct = Account(name=account)
                session.add(acct)
                session.flush()
            session.add(ApiKey(account_id=acct.id, key_hash=_hash(key), prefix=key[:10], scopes=",".join(scopes)))
        return key

    def count(self) -> int:
        with Session(self._engine) as session:
            return len(session.scalars(select(ApiKey.id)).all())

    def cached(self, key: str) -> tuple[bool, Principal | None]:
        """``(True, answer)`` when this key's answer is cached and fresh: the API's auth dependency then
        needs neither the database nor a thread hop; ``(False, None)`` means call :meth:`authenticate`."""
        digest = _hash(key)
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def authenticate(self, key: str) -> Principal | None:
        digest = _hash(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None and hit[0] > now:
                return hit[1]
        with Session(self._engine) as session:
            row = session.execute(
                select(ApiKey, Account).join(Account, Account.id == ApiKey.account_id).where(ApiKey.key_hash == digest)
            ).first()
        principal = None
        if row is not None:
            key_row, acct = row
            principal = Principal(acct.id, acct.name, key_row.id, frozenset(filter(None, key_row.scopes.split(","))))
        with self._lock:
            if len(self._cache) > 10_000:  # bounded: a flood of random keys must not grow memory
                self._cache.clear()
            self._cache[digest] = (now + self._cache_seconds, principal)
        return principal
