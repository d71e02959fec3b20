"""Key lifecycle in the store: expiry, revocation, last use, listing (never the key)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from retouch.stores.accounts import KeyStore
from retouch.stores.db import make_engine
from retouch.stores.tables import ApiKey, utcnow


def test_expired_and_revoked_keys_are_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/keys.sqlite")
    store = KeyStore(engine, cache_seconds=0)
    lasting = store.create("acme")
    brief = store.create("acme", ("image_editing",), expires_in=timedelta(days=30))
    assert store.authenticate(lasting) is not None and store.authenticate(brief) is not None
    listed = {k.prefix: k for k in store.list_keys("acme")}
    assert set(listed) == {lasting[:10], brief[:10]}
    assert listed[brief[:10]].expires_at is not None and listed[brief[:10]].state == "active"
    assert all(k.last_used_at is not None for k in listed.values())  # both just authenticated
    # Thirty days later:
    with engine.begin() as conn:
        conn.execute(update(ApiKey).where(ApiKey.prefix == brief[:10]).values(expires_at=utcnow() - timedelta(1)))
    assert store.authenticate(brief) is None
    assert {k.prefix: k.state for k in store.list_keys()}[brief[:10]] == "expired"
    assert store.revoke(listed[lasting[:10]].id) and store.authenticate(lasting) is None
    assert not store.revoke(999)
    assert store.accounts()[0][:2] == ("acme", 0)
    engine.dispose()


def test_a_cached_answer_lasts_only_the_cache_time(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/keys.sqlite")
    replica_a, replica_b = KeyStore(engine, cache_seconds=0.3), KeyStore(engine, cache_seconds=0.3)
    key = replica_a.create("acme")
    assert replica_b.authenticate(key) is not None  # cached on b
    key_id = replica_a.list_keys()[0].id
    assert replica_a.revoke(key_id)
    assert replica_a.authenticate(key) is None  # at once where it was revoked
    time.sleep(0.35)
    assert replica_b.authenticate(key) is None  # after the cache time on the other
    engine.dispose()
