"""run_item in this process, with the overlapped write the local pool uses: the item is recorded only
after its output is written, a write failure is recorded as the item's error, and drain_commits()
leaves nothing in flight (what the pool calls before a worker exits)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from retouch.contracts.storages import StorageIn
from retouch.stores.accounts import KeyStore
from retouch.stores.tables import Item, ItemStatus, Task, TaskStatus
from retouch.stores.tasks import ItemSpec
from retouch.work import context, item, runner
from tests.conftest import fixture_bytes, make_settings


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Any]:
    context.init_worker(make_settings(tmp_path))
    service = context.current()
    assert service.engine is not None and service.storages is not None
    keys = KeyStore(service.engine)
    key = keys.create("acme")
    principal = keys.authenticate(key)
    assert principal is not None
    folder = service.settings.storage_roots[0] / "photos"
    (folder / "in").mkdir(parents=True)
    (folder / "in" / "a.jpg").write_bytes(fixture_bytes("coffee.jpg"))
    (folder / "in" / "b.jpg").write_bytes(fixture_bytes("chelsea.jpg"))
    spec = StorageIn.model_validate({"name": "photos", "type": "local", "parameters": {"path": str(folder)}})
    service.storages.create(principal.account_id, spec)
    yield service, principal.account_id, folder
    item.drain_commits()
    service.close()
    context._context = None  # the next test builds its own


def _batch(service: Any, account_id: int, names: list[str]) -> tuple[int, list[int]]:
    request = {
        "input": "storage://photos/in/",
        "operations": {"resizing": {"width": 100}},
        "output": {"destination": "storage://photos/out/", "format": "jpeg"},
    }
    task = service.tasks.create(account_id, "batch", request)
    ids = service.tasks.add_items(task.id, [ItemSpec(f"storage://photos/in/{n}", n) for n in names], 0)
    with service.engine.begin() as conn:
        conn.execute(update(Task).where(Task.id == task.id).values(total=len(names), listed=True))
    return task.id, ids


def test_deferred_commit_records_the_item_after_its_output_is_written(worker: Any) -> None:
    service, account_id, folder = worker
    task_id, ids = _batch(service, account_id, ["a.jpg", "b.jpg"])
    assert runner.run_item(ids[0], "batch", overlap_write=True) == "deferred"
    # the second item's run first waits for the first one's commit: at most one in flight
    assert runner.run_item(ids[1], "batch", overlap_write=True) == "deferred"
    assert service.tasks.get(account_id, task_id, "batch").done >= 1
    item.drain_commits()
    task = service.tasks.get(account_id, task_id, "batch")
    assert (task.status, task.done, task.failed) == (TaskStatus.DONE, 2, 0)
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["a.jpg", "b.jpg"]


def test_a_failed_deferred_write_is_the_items_error(worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    service, account_id, folder = worker
    task_id, ids = _batch(service, account_id, ["a.jpg"])
    (folder / "out").write_text("a file where the output folder should be")
    assert runner.run_item(ids[0], "batch", overlap_write=True) == "deferred"
    item.drain_commits()
    task = service.tasks.get(account_id, task_id, "batch")
    assert (task.status, task.failed) == (TaskStatus.ERROR, 1)
    with service.engine.connect() as conn:
        status, error = conn.execute(
            Item.__table__.select().with_only_columns(Item.status, Item.error).where(Item.id == ids[0])
        ).one()
    assert status == ItemStatus.ERROR and error.startswith("storage://photos/in/a.jpg: ")


def test_without_deferral_run_item_returns_after_recording(worker: Any) -> None:
    service, account_id, _folder = worker
    task_id, ids = _batch(service, account_id, ["a.jpg"])
    assert runner.run_item(ids[0], "batch") == "done"
    assert service.tasks.get(account_id, task_id, "batch").status == TaskStatus.DONE
