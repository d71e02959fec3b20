"""Accounts and API keys: keys are stored hashed, looked up by hash, cached briefly in memory.

A key can expire and be revoked. The cache keeps an answer for ``cache_seconds`` (RETOUCH_KEY_CACHE_SECONDS,
default 1 s), so a revocation takes effect on every API replica within that time, while a busy key still costs
at most one database read per replica per second."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from retouch.stores.tables import Account, ApiKey, utcnow

__all__ = ["SCOPES", "KeyInfo", "KeyStore", "Principal"]

SCOPES = ("image_editing", "storage")
_KEY_PREFIX = "rt_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the account and the scopes of the key used."""

    account_id: int
    account_name: str
    key_id: int
    scopes: frozenset[str]


@dataclass(frozen=True)
class KeyInfo:
    """A key as `retouch keys list` shows it: never the key itself, only its first characters."""

    id: int
    account: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and _aware(self.expires_at) <= utcnow():
            return "expired"
        return "active"


#: A key's last use is written when the stored one is older than this.
LAST_USED_EVERY = timedelta(minutes=1)


def _aware(value: datetime) -> datetime:
    """SQLite gives times back without their zone; every stored time is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=utcnow().tzinfo)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    def __init__(self, engine: Engine, cache_seconds: float = 1.0) -> None:
        self._engine = engine
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()

    def create(self, account: str, scopes: tuple[str, ...] = SCOPES, expires_in: timedelta | None = None) -> str:
        """Create a key (and the account if new); returns the key, which is never stored in clear."""
        unknown = set(scopes) - set(SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}; known: {', '.join(SCOPES)}")
        key = _KEY_PREFIX + secrets.token_urlsafe(32)
        with Session(self._engine) as session, session.begin():
            acct = self._account(session, account)
            expires = utcnow() + expires_in if expires_in is not None else None
            session.add(
                ApiKey(
                    account_id=acct.id,
                    key_hash=_hash(key),
                    prefix=key[:10],
                    scopes=",".join(scopes),
                    expires_at=expires,
                )
            )
        return key

    @staticmethod
    def _account(session: Session, name: str) -> Account:
        acct = session.scalar(select(Account).where(Account.name == name))
        if acct is None:
            acct = Account(name=name)
            session.add(acct)
            session.flush()
        return acct

    def account_id(self, name: str) -> int:
        """The account's id, created if new (the CLI's `storages create` for a fresh deployment)."""
        with Session(self._engine) as session, session.begin():
            return self._account(session, name).id

    def list_keys(self, account: str | None = None) -> list[KeyInfo]:
        """Every key (of one account), oldest first."""
        query = select(ApiKey, Account.name).join(Account, Account.id == ApiKey.account_id).order_by(ApiKey.id)
        if account is not None:
            query = query.where(Account.name == account)
        with Session(self._engine) as session:
            return [
                KeyInfo(
                    row.id,
                    name,
                    row.prefix,
                    tuple(filter(None, row.scopes.split(","))),
                    row.created_at,
                    row.last_used_at,
                    row.expires_at,
                    row.revoked_at,
                )
                for row, name in session.execute(query)
            ]

    def revoke(self, key_id: int) -> bool:
        """Revoke a key: refused by every replica within the cache time. False when there is no such key."""
        with Session(self._engine) as session, session.begin():
            row = session.get(ApiKey, key_id)
            if row is None:
                return False
            if row.revoked_at is None:
                row.revoked_at = utcnow()
        with self._lock:
            self._cache.clear()  # this replica: at once
        return True

    def accounts(self) -> list[tuple[str, int, datetime]]:
        """(name, number of active keys, created) of every account."""
        with Session(self._engine) as session:
            accounts = session.execute(select(Account.id, Account.name, Account.created_at).order_by(Account.id)).all()
            keys = session.execute(select(ApiKey.account_id, ApiKey.revoked_at, ApiKey.expires_at)).all()
        now = utcnow()
        active: dict[int, int] = {}
        for account_id, revoked, expires in keys:
            if revoked is None and (expires is None or _aware(expires) > now):
                active[account_id] = active.get(account_id, 0) + 1
        return [(name, active.get(account_id, 0), created) for account_id, name, created in accounts]

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
            wall = utcnow()
            usable = key_row.revoked_at is None and (key_row.expires_at is None or _aware(key_row.expires_at) > wall)
            if usable:
                principal = Principal(
                    acct.id, acct.name, key_row.id, frozenset(filter(None, key_row.scopes.split(",")))
                )
                last = key_row.last_used_at
                if last is None or wall - _aware(last) >= LAST_USED_EVERY:
                    with Session(self._engine) as session, session.begin():
                        session.execute(update(ApiKey).where(ApiKey.id == key_row.id).values(last_used_at=wall))
        with self._lock:
            if len(self._cache) > 10_000:  # bounded: a flood of random keys must not grow memory
                self._cache.clear()
            self._cache[digest] = (now + self._cache_seconds, principal)
        return principal
