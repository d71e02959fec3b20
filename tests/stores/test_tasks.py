"""The task store's item lifecycle, one suite on both databases it runs on: the embedded SQLite
and PostgreSQL (a real server on loopback). What it guards: an item's outcome is recorded once,
a redelivered copy stands down while the first runs, poison inputs end after max_attempts, a
cancelled task starts nothing, and exactly one finish moves the task to its terminal state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from retouch.stores.db import make_engine, upgrade
from retouch.stores.tables import Account, Item, ItemStatus, Task, TaskStatus, utcnow
from retouch.stores.tasks import ItemSpec, TaskStore
from tests.servers.services import PostgresServer

REQUEST = {"input": "storage://s/in/", "operations": {}, "output": {"destination": "storage://s/out/"}}
OUTCOME = {"input_object": {"ext": "jpeg"}, "output_object": {"ext": "jpeg", "object_key": "out/a.jpg"}}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        made = make_engine(f"sqlite:///{tmp_path}/retouch.sqlite")
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        made = make_engine(server.create_database(f"store_{os.getpid()}_{tmp_path.name[-20:].lower()}"))
        upgrade(made)
    with Session(made) as session, session.begin():
        session.add(Account(name="acme"))
    yield made
    made.dispose()


def _batch(store: TaskStore, count: int, listed: bool = True) -> tuple[int, list[int]]:
    task = store.create(1, "batch", REQUEST)
    ids = store.add_items(task.id, [ItemSpec(f"storage://s/in/{i}.jpg", f"{i}.jpg") for i in range(count)], 0)
    with store.engine.begin() as conn:
        conn.execute(update(Task).where(Task.id == task.id).values(total=count, listed=listed))
    return task.id, ids


def _item(store: TaskStore, item_id: int) -> Item:
    with Session(store.engine, expire_on_commit=False) as session:
        item = session.get(Item, item_id)
        assert item is not None
        return item


def test_items_run_once_and_the_last_finish_ends_the_task(engine: Engine) -> None:
    store = TaskStore(engine)
    task_id, ids = _batch(store, 3)
    assert store.get(1, task_id, "batch").status == TaskStatus.ACCEPTED
    work = store.start_item(ids[0], lease_seconds=60)
    assert work is not None
    assert (work.task_id, work.account_id, work.source, work.output_rel) == (
        task_id,
        1,
        "storage://s/in/0.jpg",
        "0.jpg",
    )
    assert work.request == REQUEST
    assert store.get(1, task_id, "batch").status == TaskStatus.PROCESSING
    assert _item(store, ids[0]).attempts == 1

    assert store.finish_item(ids[0], OUTCOME, None, None) == task_id
    assert store.finish_item(ids[0], OUTCOME, None, None) is None  # recorded once, counted once
    assert store.start_item(ids[0], lease_seconds=60) is None  # a finished item is never redone
    for item_id in ids[1:2]:
        assert store.start_item(item_id, lease_seconds=60) is not None
        store.finish_item(item_id, None, "storage://s/in/1.jpg: not an image.", {"ext": "txt"})
    task = store.get(1, task_id, "batch")
    assert (task.done, task.failed, task.status) == (1, 1, TaskStatus.PROCESSING)

    assert store.start_item(ids[2], lease_seconds=60) is not None
    assert store.finish_item(ids[2], OUTCOME, None, None) == task_id
    task = store.get(1, task_id, "batch")
    assert (task.done, task.failed, task.status) == (2, 1, TaskStatus.ERROR)  # one failed item: ERROR
    assert task.finished_at is not None
    failed = _item(store, ids[1])
    assert (failed.status, failed.error, failed.error_input) == (
        ItemStatus.ERROR,
        "storage://s/in/1.jpg: not an image.",
        {"ext": "txt"},
    )
    assert _item(store, ids[0]).result == OUTCOME


def test_a_task_still_listing_does_not_end_when_its_items_so_far_are_done(engine: Engine) -> None:
    store = TaskStore(engine)
    task_id, ids = _batch(store, 1, listed=False)
    assert store.start_item(ids[0], lease_seconds=60) is not None
    store.finish_item(ids[0], OUTCOME, None, None)
    assert store.get(1, task_id, "batch").status == TaskStatus.PROCESSING
    store.mark_listed(task_id)
    assert store.maybe_finish(task_id) == TaskStatus.DONE
    assert store.maybe_finish(task_id) is None  # exactly one caller makes the move


def test_a_redelivered_copy_stands_down_while_the_first_runs(engine: Engine) -> None:
    store = TaskStore(engine)
    _task_id, ids = _batch(store, 1)
    assert store.start_item(ids[0], lease_seconds=60) is not None
    assert store.start_item(ids[0], lease_seconds=60) is None  # the lease is alive: someone runs it
    # The first worker died silently: once its lease ran out, a copy may take over.
    with engine.begin() as conn:
        conn.execute(update(Item).where(Item.id == ids[0]).values(lease_until=utcnow() - timedelta(seconds=1)))
    assert store.start_item(ids[0], lease_seconds=60) is not None
    assert _item(store, ids[0]).attempts == 2


def test_an_input_that_killed_max_attempts_workers_fails_with_a_message(engine: Engine) -> None:
    store = TaskStore(engine)
    task_id, ids = _batch(store, 1)
    for _ in range(3):
        assert store.start_item(ids[0], lease_seconds=60, max_attempts=3) is not None
        store.requeue(ids[0], max_attempts=5, error="worker died")  # the worker crashed; try again
    assert store.start_item(ids[0], lease_seconds=60, max_attempts=3) is None
    item = _item(store, ids[0])
    assert item.status == ItemStatus.ERROR
    assert item.error == "storage://s/in/0.jpg: the image worker died on this input 3 times."
    assert store.get(1, task_id, "batch").status == TaskStatus.ERROR


def test_items_cut_by_a_stop_go_back_without_counting_an_attempt(engine: Engine) -> None:
    """A stopping worker gives back what it began (PoolShutDown): restarts during one long item must never add up
    to a poison input, and an item only claimed (sent ahead, never begun) keeps its count too."""
    store = TaskStore(engine)
    _task_id, ids = _batch(store, 3)
    for _ in range(5):  # five stops in the middle of the same item
        assert store.start_item(ids[0], lease_seconds=60, max_attempts=3) is not None
        store.give_back(ids[0])
        item = _item(store, ids[0])
        assert (item.status, item.attempts, item.started_at, item.lease_until) == (ItemStatus.PENDING, 0, None, None)
    store.start_item(ids[1], lease_seconds=60)
    store.requeue(ids[1], max_attempts=5, error="worker died")  # a real crash counts
    store.claim(10, lease_seconds=60)  # claimed again (RUNNING, not begun): given back, still one attempt
    store.give_back(ids[1])
    assert (_item(store, ids[1]).status, _item(store, ids[1]).attempts) == (ItemStatus.PENDING, 1)
    store.start_item(ids[2], lease_seconds=60)
    store.finish_item(ids[2], OUTCOME, None, None)
    store.give_back(ids[2])  # finished meanwhile: left alone
    assert (_item(store, ids[2]).status, _item(store, ids[2]).attempts) == (ItemStatus.DONE, 1)


def test_a_cancelled_task_starts_nothing(engine: Engine) -> None:
    store = TaskStore(engine)
    task_id, ids = _batch(store, 2)
    assert store.start_item(ids[0], lease_seconds=60) is not None
    store.cancel(1, task_id, "batch")
    assert store.start_item(ids[1], lease_seconds=60) is None
    assert _item(store, ids[1]).status == ItemStatus.CANCELLED
    # the item already running may still report; the task stays cancelled
    store.finish_item(ids[0], OUTCOME, None, None)
    assert store.get(1, task_id, "batch").status == TaskStatus.CANCELLED


def test_claim_hands_each_item_out_once(engine: Engine) -> None:
    store = TaskStore(engine)
    _task_id, ids = _batch(store, 5)
    first = store.claim(3, lease_seconds=60)
    second = store.claim(10, lease_seconds=60)
    got = [c.item_id for c in first + second]
    assert sorted(got) == sorted(ids) and len(set(got)) == 5
    assert store.claim(10, lease_seconds=60) == []
    with Session(engine) as session:
        assert set(session.scalars(select(Item.status))) == {ItemStatus.RUNNING}


def test_fair_window_keeps_each_account_to_its_share(engine: Engine) -> None:
    """Celery's window of 6: an account alone may fill it (its items may all be stuck on a hanging origin); when
    another account has work, that one gets its share at once and the first gets nothing until it is under its own."""
    store = TaskStore(engine)
    with Session(engine) as session, session.begin():
        session.add(Account(name="globex"))
    _stuck_id, stuck = _batch(store, 12)
    first = store.claim(200, lease_seconds=60, fair_window=6)
    assert [c.item_id for c in first] == stuck[:6]  # alone: the whole window
    assert store.claim(200, lease_seconds=60, fair_window=6) == []  # full
    other = store.create(2, "batch", REQUEST)
    theirs = store.add_items(other.id, [ItemSpec(f"storage://s/in/o{i}.jpg", f"o{i}.jpg") for i in range(5)], 0)
    assert [c.item_id for c in store.claim(200, lease_seconds=60, fair_window=6)] == theirs[:3]  # its share, now
    for item_id in stuck[:3]:
        store.finish_item(item_id, OUTCOME, None, None)
    assert store.claim(200, lease_seconds=60, fair_window=6) == []  # 3 + 3 running: both at their share
    store.finish_item(stuck[3], OUTCOME, None, None)
    assert [c.item_id for c in store.claim(200, lease_seconds=60, fair_window=6)] == [stuck[6]]
    assert store.claim(6, lease_seconds=60) != []  # without a window (the local executor) no share applies


def test_claim_takes_expired_leases_first_then_async_then_accounts_in_turn(engine: Engine) -> None:
    store = TaskStore(engine)
    with Session(engine) as session, session.begin():
        session.add(Account(name="globex"))
    big_id, big = _batch(store, 6)  # account 1's large batch, created first
    other = store.create(2, "batch", REQUEST)
    theirs = store.add_items(other.id, [ItemSpec(f"storage://s/in/o{i}.jpg", f"o{i}.jpg") for i in range(2)], 0)
    single = store.create(1, "async", REQUEST)
    (lone,) = store.add_items(single.id, [ItemSpec("https://example.com/a.jpg", "a.jpg")], 0)
    # An item whose worker was lost: RUNNING with a lease in the past.
    with engine.begin() as conn:
        conn.execute(
            update(Item)
            .where(Item.id == big[5])
            .values(status=ItemStatus.RUNNING, lease_until=utcnow() - timedelta(seconds=5))
        )
    claimed = store.claim(4, lease_seconds=60)
    assert [c.item_id for c in claimed] == [big[5], lone, theirs[0], big[0]]
    assert [c.kind for c in claimed] == ["batch", "async", "batch", "batch"]
    rest = store.claim(100, lease_seconds=60)
    assert sorted(c.item_id for c in rest) == sorted([*big[1:5], theirs[1]])
    assert store.claim(100, lease_seconds=60) == []
    assert big_id != other.id
