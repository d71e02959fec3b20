"""The task store: every state change of tasks and items, in short transactions.

Designed so that any process may die at any moment: items are claimed with a lease, finished
idempotently (a finished item is never redone or counted twice), and a task moves to its terminal
state through one conditional update, so exactly one caller wins and schedules the webhook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Engine, and_, bindparam, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from retouch.errors import NotFound
from retouch.formats import unique_name
from retouch.stores.tables import Account, Item, ItemStatus, Task, TaskStatus, WebhookRow, rfc3339, utcnow


def rowcount(result: Any) -> int:
    """Rows an UPDATE changed (typed: SQLAlchemy's Result lacks rowcount in its stubs)."""
    return int(result.rowcount)


__all__ = ["Claimed", "ItemSpec", "ItemWork", "TaskStore", "rowcount"]

NOT_FOUND = "Batch image edit pipeline not found."


class Claimed(NamedTuple):
    item_id: int
    kind: str  # async | batch
    queue: str  # fast | ai
    account_id: int
    source: str


@dataclass(frozen=True)
class ItemSpec:
    source: str  # URL or storage:// URI
    output_rel: str  # wished output path relative to the destination folder (made unique on insert)


@dataclass(frozen=True)
class ItemWork:
    """What a worker needs to run one item."""

    item_id: int
    task_id: int
    account_id: int
    source: str
    output_rel: str
    request: dict[str, Any]
    request_id: str | None = None  # of the request that created the task, for the worker's log lines
    account: str | None = None  # the account's name, for the same lines


def _iso(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


# The per-item statements, built once: constructing a Core statement costs Python time on every call
# (~0.3 ms each), and these run twice per image. Bind names differ from the column names, which
# SQLAlchemy reserves for the SET clause.
_ITEM_TO_RUN = (
    select(
        Item.status,
        Item.attempts,
        Item.started_at,
        Item.lease_until,
        Item.source,
        Item.output_rel,
        Task.id,
        Task.account_id,
        Task.status,
        Task.request,
        Task.request_id,
        Account.name,
    )
    .join(Task, Task.id == Item.task_id)
    .join(Account, Account.id == Task.account_id)
    .where(Item.id == bindparam("b_item"))
)
_BEGIN_ITEM = (
    update(Item)
    # Only from the state just read: of two copies starting at once, one wins.
    .where(Item.id == bindparam("b_item"), Item.attempts == bindparam("b_attempts"), Item.status == bindparam("b_was"))
    .values(
        status=ItemStatus.RUNNING,
        attempts=bindparam("b_next"),
        started_at=bindparam("b_now"),
        lease_until=bindparam("b_lease"),
    )
)
_TASK_PROCESSING = (
    update(Task)
    .where(Task.id == bindparam("b_task"), Task.status == TaskStatus.ACCEPTED)
    .values(status=TaskStatus.PROCESSING)
)
_FINISH_ITEM = (
    update(Item)
    .where(Item.id == bindparam("b_item"), Item.status.in_((ItemStatus.PENDING, ItemStatus.RUNNING)))
    .values(
        status=bindparam("b_status"),
        result=bindparam("b_result", type_=Item.__table__.c.result.type),
        error=bindparam("b_error"),
        error_input=bindparam("b_error_input", type_=Item.__table__.c.error_input.type),
        finished_at=bindparam("b_now"),
    )
    .returning(Item.task_id)
)
_COUNT = {
    kind: update(Task)
    .where(Task.id == bindparam("b_task"))
    .values({kind: column + 1})
    .returning(Task.done, Task.failed, Task.total, Task.listed)
    for kind, column in (("done", Task.done), ("failed", Task.failed))
}


# The claim's statements (the dispatcher runs one claim per few items).
_OPEN_TASKS = (
    select(Task.id, Task.account_id, Task.kind)
    .where(Task.status.not_in(TaskStatus.TERMINAL))
    .order_by(case((Task.kind == "async", 0), else_=1), Task.id)
)
_EXPIRED = (
    select(Item.id, Item.task_id, Item.queue, Item.source)
    .where(Item.status == ItemStatus.RUNNING, Item.lease_until < bindparam("b_now"))
    .order_by(Item.lease_until)
    .limit(bindparam("b_limit"))
)
_RUNNING_BY_ACCOUNT = (
    select(Task.account_id, func.count())
    .select_from(Item)
    .join(Task, Task.id == Item.task_id)
    .where(Item.status == ItemStatus.RUNNING)
    .group_by(Task.account_id)
)
_PENDING = (
    select(Item.id, Item.queue, Item.source)
    .where(Item.task_id == bindparam("b_task"), Item.status == ItemStatus.PENDING)
    .order_by(Item.seq)
    .limit(bindparam("b_limit"))
)
_RUNNABLE = and_(
    Item.id.in_(bindparam("b_ids", expanding=True)),
    or_(
        Item.status == ItemStatus.PENDING,
        and_(Item.status == ItemStatus.RUNNING, Item.lease_until < bindparam("b_now")),
    ),
)
# PostgreSQL: lock the rows first, skipping those another replica is claiming right now.
_LOCK = select(Item.id).where(_RUNNABLE).with_for_update(skip_locked=True)
_TAKE = (
    update(Item)
    .where(_RUNNABLE)
    .values(status=ItemStatus.RUNNING, lease_until=bindparam("b_lease"), started_at=None)
    .returning(Item.id)
)


class TaskStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ tasks

    def create(self, account_id: int, kind: str, request: dict[str, Any], request_id: str | None = None) -> Task:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            task = Task(
                account_id=account_id, kind=kind, request=request, status=TaskStatus.ACCEPTED, request_id=request_id
            )
            session.add(task)
        return task

    def get(self, account_id: int, task_id: int, kind: str) -> Task:
        with Session(self.engine, expire_on_commit=False) as session:
            task = session.get(Task, task_id)
            if task is None or task.account_id != account_id or task.kind != kind:
                raise NotFound(NOT_FOUND)
            return task

    def add_items(self, task_id: int, specs: list[ItemSpec], first_seq: int, queue: str = "fast") -> list[int]:
        """Insert items not already there (listing may run again after a crash); returns new ids."""
        if not specs:
            return []
        with Session(self.engine) as session, session.begin():
            sources = [s.source for s in specs]
            existing = set(
                session.scalars(select(Item.source).where(Item.task_id == task_id, Item.source.in_(sources)))
            )
            wanted = {s.output_rel for s in specs}
            taken = set(
                session.scalars(select(Item.output_rel).where(Item.task_id == task_id, Item.output_rel.in_(wanted)))
            )

            def is_taken(name: str) -> bool:
                if name in taken:
                    return True
                if name in wanted:  # its row, if any, was loaded into `taken` above
                    return False
                hit = session.scalar(select(Item.id).where(Item.task_id == task_id, Item.output_rel == name))
                return hit is not None

            new: list[Item] = []
            for offset, spec in enumerate(specs):
                if spec.source in existing:
                    continue
                existing.add(spec.source)
                rel = unique_name(spec.output_rel, is_taken)
                taken.add(rel)
                new.append(
                    Item(task_id=task_id, seq=first_seq + offset, source=spec.source, output_rel=rel, queue=queue)
                )
            session.add_all(new)
            session.flush()
            if new:
                session.execute(update(Task).where(Task.id == task_id).values(total=Task.total + len(new)))
            return [item.id for item in new]

    def mark_listed(self, task_id: int, error: str | None = None) -> None:
        with Session(self.engine) as session, session.begin():
            values: dict[str, Any] = {"listed": True, "listing_lease": None}
            if error is not None:
                values["error"] = error
            session.execute(update(Task).where(Task.id == task_id).values(**values))

    def take_listing(self, task_id: int, lease_seconds: float) -> bool:
        """Take (or take over, when its lease ran out) the listing of a task; False if someone has it."""
        now = utcnow()
        with Session(self.engine) as session, session.begin():
            result = rowcount(
                session.execute(
                    update(Task)
                    .where(
                        Task.id == task_id,
                        Task.listed.is_(False),
                        Task.status.not_in(TaskStatus.TERMINAL),
                        or_(Task.listing_lease.is_(None), Task.listing_lease < now),
                    )
                    .values(
                        listing_lease=now + timedelta(seconds=lease_seconds),
                        status=case((Task.status == TaskStatus.ACCEPTED, TaskStatus.PROCESSING), else_=Task.status),
                    )
                )
            )
            return bool(result)

    def extend_listing(self, task_id: int, lease_seconds: float) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(Task).where(Task.id == task_id).values(listing_lease=utcnow() + timedelta(seconds=lease_seconds))
            )

    def request_of(self, task_id: int) -> tuple[int, dict[str, Any]]:
        """The task's account and the request as it was accepted (the lister and the workers validate it)."""
        with Session(self.engine) as session:
            task = session.get(Task, task_id)
            if task is None:
                raise NotFound(NOT_FOUND)
            return task.account_id, dict(task.request)

    def unlisted_tasks(self) -> list[int]:
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(Task.id)
                    .where(Task.listed.is_(False), Task.status.not_in(TaskStatus.TERMINAL))
                    .order_by(Task.id)
                )
            )

    def cancel(self, account_id: int, task_id: int, kind: str) -> Task:
        self.get(account_id, task_id, kind)  # 404 across accounts
        with Session(self.engine) as session, session.begin():
            moved = rowcount(
                session.execute(
                    update(Task)
                    .where(Task.id == task_id, Task.status.not_in(TaskStatus.TERMINAL))
                    .values(status=TaskStatus.CANCELLED, finished_at=utcnow())
                )
            )
            session.execute(
                update(Item)
                .where(Item.task_id == task_id, Item.status == ItemStatus.PENDING)
                .values(status=ItemStatus.CANCELLED, finished_at=utcnow())
            )
            if moved:
                self._schedule_webhook(session, task_id, TaskStatus.CANCELLED)
        return self.get(account_id, task_id, kind)

    # ------------------------------------------------------------------ items

    def claim(
        self,
        limit: int,
        lease_seconds: float,
        skip_accounts: set[int] | frozenset[int] = frozenset(),
        fair_window: int | None = None,
    ) -> list[Claimed]:
        """Up to ``limit`` runnable items, marked RUNNING under a lease: id, task kind, queue, account and source
        (the executors route an item by its source without reading it again).

        Items whose lease ran out (their worker or the broker lost them) come first, then pending items
        round-robin across accounts — the n-th item of every account before the (n+1)-th of any — so one
        account's 100,000-item batch cannot hold back another account's small job; async tasks first.
        Every query reads at most ``limit`` rows per open task through an index, so a claim costs the
        same whatever the size of the batches. On PostgreSQL, rows another replica is claiming are skipped.
        ``skip_accounts``: accounts not served this time (their downloads are at their limit).
        ``fair_window`` (Celery: the items allowed in flight) replaces ``limit`` as the bound: each account gets up to
        its share of the window (the window over the accounts with work) counting what it runs already, and no
        more. An account alone may fill the window; when another one comes, the first is served nothing until it
        is under its share, while the newcomer gets its share at once - even though the window is full - so one
        account's items stuck on a hanging origin hold back nobody else (in flight stays under ~1.5 windows)."""
        if limit <= 0:
            return []
        now = utcnow()
        with self.engine.begin() as conn:
            open_tasks = conn.execute(_OPEN_TASKS).all()
            kinds = {row[0]: row[2] for row in open_tasks}
            owners = {row[0]: row[1] for row in open_tasks}
            share: int | None = None
            running: dict[int, int] = {}
            if fair_window is not None:
                running = {int(row[0]): int(row[1]) for row in conn.execute(_RUNNING_BY_ACCOUNT)}
                with_work = {row[1] for row in open_tasks} | set(running)
                share = max(1, -(-fair_window // max(1, len(with_work))))
                skip_accounts = set(skip_accounts) | {a for a, n in running.items() if n >= share}
            expired = conn.execute(_EXPIRED, {"b_now": now, "b_limit": limit}).all()
            picked = [
                Claimed(row[0], kinds[row[1]], row[2], owners[row[1]], row[3]) for row in expired if row[1] in kinds
            ]
            per_account: dict[int, list[Claimed]] = {}
            for task_id, account_id, kind in open_tasks:
                if len(picked) >= limit:
                    break
                if account_id in skip_accounts:
                    continue
                rows = conn.execute(_PENDING, {"b_task": task_id, "b_limit": limit}).all()
                per_account.setdefault(account_id, []).extend(
                    Claimed(row[0], kind, row[1], account_id, row[2]) for row in rows
                )
            if share is not None:  # each account up to its share, counting what it runs already
                for account_id, entries in per_account.items():
                    del entries[max(0, share - running.get(account_id, 0)) :]
            queues = list(per_account.values())
            turn = 0
            while len(picked) < limit and any(queues):
                queue = queues[turn % len(queues)]
                if queue:
                    picked.append(queue.pop(0))
                turn += 1
            if not picked:
                return []
            params = {"b_ids": [entry[0] for entry in picked], "b_now": now}
            if self.engine.dialect.name == "postgresql":
                params["b_ids"] = list(conn.scalars(_LOCK, params))
                if not params["b_ids"]:
                    return []
            # The update re-checks that each item is still runnable: a row taken in between is not returned.
            mine = set(conn.scalars(_TAKE, {**params, "b_lease": now + timedelta(seconds=lease_seconds)}))
            return [entry for entry in picked if entry[0] in mine]

    def release(self, item_ids: list[int]) -> None:
        """Give claimed items back (they could not be handed to a worker)."""
        if not item_ids:
            return
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(Item)
                .where(Item.id.in_(item_ids), Item.status == ItemStatus.RUNNING, Item.started_at.is_(None))
                .values(status=ItemStatus.PENDING, lease_until=None)
            )

    def give_back(self, item_id: int) -> None:
        """An item whose run our own stop cut short (``PoolShutDown``): back to PENDING for the next worker, and
        its attempt not counted - a stop is not the input's fault, and three restarts during one long item would
        otherwise fail it as a poison input. An item that finished meanwhile is left alone."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(Item)
                .where(Item.id == item_id, Item.status == ItemStatus.RUNNING)
                .values(
                    status=ItemStatus.PENDING,
                    lease_until=None,
                    started_at=None,
                    # started_at is set with the attempt it counts: an item sent ahead but never begun counted none
                    attempts=case((Item.started_at.is_not(None), Item.attempts - 1), else_=Item.attempts),
                )
            )

    def running_count(self) -> int:
        with Session(self.engine) as session:
            return int(
                session.scalar(select(func.count()).select_from(Item).where(Item.status == ItemStatus.RUNNING)) or 0
            )

    def item_counts(self) -> tuple[int, int]:
        """(pending, running) items of every task: the store's queue as /metrics shows it (one query on the
        status index per scrape)."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(Item.status, func.count())
                .where(Item.status.in_((ItemStatus.PENDING, ItemStatus.RUNNING)))
                .group_by(Item.status)
            ).all()
        counts = {status: int(n) for status, n in rows}
        return counts.get(ItemStatus.PENDING, 0), counts.get(ItemStatus.RUNNING, 0)

    def release_running(self) -> int:
        """Embedded mode start-up: every RUNNING item belonged to a worker of the previous process."""
        with Session(self.engine) as session, session.begin():
            return rowcount(
                session.execute(
                    update(Item)
                    .where(Item.status == ItemStatus.RUNNING)
                    .values(status=ItemStatus.PENDING, lease_until=None)
                )
            )

    def start_item(self, item_id: int, lease_seconds: float, max_attempts: int = 3) -> ItemWork | None:
        """In the worker: the item to run, or None when it is finished or its task was cancelled.

        Plain SQL rather than ORM objects: this and ``finish_item`` run once per image, and the ORM's
        unit of work cost ~4 of the ~6 ms of bookkeeping per item (10 % of a 12 MP resize)."""
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(_ITEM_TO_RUN, {"b_item": item_id}).first()
            if row is None:
                return None
            status, attempts, started_at, lease, source, output_rel, task_id, account_id, task_status = row[:9]
            request, request_id, account = row[9:]
            if status in (ItemStatus.DONE, ItemStatus.ERROR, ItemStatus.CANCELLED):
                return None
            if task_status == TaskStatus.CANCELLED:
                conn.execute(update(Item).where(Item.id == item_id).values(status=ItemStatus.CANCELLED))
                return None
            if lease is not None and lease.tzinfo is None:  # SQLite drops the zone; every stored time is UTC
                lease = lease.replace(tzinfo=now.tzinfo)
            if started_at is not None and lease is not None and lease > now:
                return None  # a redelivered copy: another worker runs this item right now
            poisoned = attempts >= max_attempts
            if not poisoned:
                began = conn.execute(
                    _BEGIN_ITEM,
                    {
                        "b_item": item_id,
                        "b_attempts": attempts,
                        "b_was": status,
                        "b_next": attempts + 1,
                        "b_now": now,
                        "b_lease": now + timedelta(seconds=lease_seconds),
                    },
                )
                if not rowcount(began):
                    return None
                if task_status == TaskStatus.ACCEPTED:
                    conn.execute(_TASK_PROCESSING, {"b_task": task_id})
        if poisoned:
            # Every earlier attempt died with its worker (crash, OOM, hard time limit): a poison input.
            self.fail_item(item_id, f"the image worker died on this input {max_attempts} times.")
            return None
        return ItemWork(item_id, task_id, account_id, source, output_rel, dict(request), request_id, account)

    def requeue(self, item_id: int, max_attempts: int, error: str) -> None:
        """A worker died on this item: try again, unless it already killed ``max_attempts`` workers."""
        with Session(self.engine) as session, session.begin():
            item = session.get(Item, item_id)
            if item is None or item.status != ItemStatus.RUNNING:
                return
            give_up = item.attempts >= max_attempts
            if not give_up:
                item.status, item.lease_until, item.started_at = ItemStatus.PENDING, None, None
        if give_up:
            self.fail_item(item_id, error)

    def fail_item(self, item_id: int, reason: str) -> None:
        """Fail an item from outside its worker (deadline, crashes); the message names the input."""
        with Session(self.engine) as session:
            source = session.scalar(select(Item.source).where(Item.id == item_id)) or "the input"
        self.finish_item(item_id, None, f"{source}: {reason}", None)

    def finish_item(
        self, item_id: int, result: dict[str, Any] | None, error: str | None, error_input: dict[str, Any] | None
    ) -> int | None:
        """Record an item's outcome once; returns its task id, or None when it was already finished."""
        status = ItemStatus.DONE if error is None else ItemStatus.ERROR
        with self.engine.begin() as conn:
            task_id = conn.scalar(
                _FINISH_ITEM,
                {
                    "b_item": item_id,
                    "b_status": status,
                    "b_result": result,
                    "b_error": error,
                    "b_error_input": error_input,
                    "b_now": utcnow(),
                },
            )
            if task_id is None:
                return None
            counted = conn.execute(_COUNT["done" if error is None else "failed"], {"b_task": task_id}).one()
            done, failed, total, listed = counted
            if listed and done + failed >= total:
                # The completion check rides on the same transaction: one commit per item fewer.
                with Session(bind=conn) as session:
                    self._finish_if_complete(session, task_id)
            return int(task_id)

    def maybe_finish(self, task_id: int) -> str | None:
        """Move the task to DONE or ERROR when listing is over and no item is left; returns the new
        status if this call made the move (exactly one caller does), else None."""
        with Session(self.engine) as session, session.begin():
            return self._finish_if_complete(session, task_id)

    def _finish_if_complete(self, session: Session, task_id: int) -> str | None:
        task = session.get(Task, task_id)
        if task is None or task.status in TaskStatus.TERMINAL or not task.listed:
            return None
        # Counters, not a count over the items: O(1) whatever the size of the batch.
        if task.done + task.failed < task.total:
            return None
        status = TaskStatus.ERROR if (task.failed or task.error or task.total == 0) else TaskStatus.DONE
        moved = rowcount(
            session.execute(
                update(Task)
                .where(Task.id == task_id, Task.status.not_in(TaskStatus.TERMINAL))
                .values(status=status, finished_at=utcnow())
            )
        )
        if not moved:
            return None
        self._schedule_webhook(session, task_id, status)
        return status

    # ------------------------------------------------------------------ webhooks

    def _schedule_webhook(self, session: Session, task_id: int, status: str) -> None:
        task = session.get(Task, task_id)
        assert task is not None
        hook = session.get(WebhookRow, task.account_id)
        event = {"DONE": "success", "ERROR": "failed"}.get(status)
        if hook is None or event is None or event not in hook.events:
            return
        session.execute(
            update(Task)
            .where(Task.id == task_id, Task.webhook_state.is_(None))
            .values(webhook_state="pending", webhook_next_at=utcnow())
        )

    # ------------------------------------------------------------------ views

    def view(self, task: Task, result_url: str, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        """The task as the contract's GET shows it (with the progress and webhook extensions)."""
        with Session(self.engine) as session:
            base = select(Item).where(Item.task_id == task.id).order_by(Item.seq)
            done_q = base.where(Item.status == ItemStatus.DONE).offset(offset)
            err_q = base.where(Item.status == ItemStatus.ERROR).offset(offset)
            if limit is not None:
                done_q, err_q = done_q.limit(limit), err_q.limit(limit)
            results = [item.result for item in session.scalars(done_q) if item.result]
            errors: list[dict[str, Any]] = []
            if task.error:
                errors.append({"error": task.error, "created_at": _iso(task.finished_at or task.updated_at)})
            for item in session.scalars(err_q):
                entry: dict[str, Any] = {"error": item.error, "created_at": _iso(item.finished_at)}
                if item.error_input:
                    entry["input_object"] = item.error_input
                errors.append(entry)
        data: dict[str, Any] = {
            "id": task.id,
            "status": task.status,
            "result_url": result_url,
            "created_at": _iso(task.created_at),
            "request": task.request,
            "errors": errors,
        }
        if task.kind == "async":
            data["result"] = results[0] if results else {}
        else:
            data["results"] = results
        data["progress"] = {"total": task.total, "done": task.done, "failed": task.failed}
        if task.webhook_state is not None:
            data["webhook"] = {
                "delivered": task.webhook_state == "delivered",
                "attempts": task.webhook_attempts,
                "last_status": _status(task.webhook_last_status),
            }
        return data

    # ------------------------------------------------------------------ listings

    def recent(self, account_id: int, limit: int, result_url: Callable[[str, int], str]) -> list[dict[str, Any]]:
        """The account's newest tasks, without their items (``GET /v1/tasks``)."""
        with Session(self.engine) as session:
            tasks = session.scalars(
                select(Task).where(Task.account_id == account_id).order_by(Task.id.desc()).limit(limit)
            ).all()
        out = []
        for task in tasks:
            summary: dict[str, Any] = {
                "id": task.id,
                "kind": task.kind,
                "status": task.status,
                "result_url": result_url(task.kind, task.id),
                "created_at": _iso(task.created_at),
                "progress": {"total": task.total, "done": task.done, "failed": task.failed},
            }
            if task.finished_at is not None:
                summary["finished_at"] = _iso(task.finished_at)
            out.append(summary)
        return out

    def usage(self, account_id: int) -> dict[str, Any]:
        """Tasks accepted and items finished in the last 24 hours and 30 days, and tasks still running."""
        now = utcnow()
        with Session(self.engine) as session:

            def window(days: float) -> dict[str, int]:
                since = now - timedelta(days=days)
                tasks = session.scalar(
                    select(func.count()).where(Task.account_id == account_id, Task.created_at >= since)
                )
                # Items by their finishing time, so a long batch counts in the window its images were made.
                counts: dict[str, int] = {
                    status: count
                    for status, count in session.execute(
                        select(Item.status, func.count())
                        .join(Task, Task.id == Item.task_id)
                        .where(
                            Task.account_id == account_id,
                            Item.finished_at >= since,
                            Item.status.in_((ItemStatus.DONE, ItemStatus.ERROR)),
                        )
                        .group_by(Item.status)
                    )
                }
                return {
                    "tasks": int(tasks or 0),
                    "images_done": int(counts.get(ItemStatus.DONE, 0)),
                    "images_failed": int(counts.get(ItemStatus.ERROR, 0)),
                }

            running = session.scalar(
                select(func.count()).where(Task.account_id == account_id, Task.status.not_in(TaskStatus.TERMINAL))
            )
            return {"last_24_hours": window(1), "last_30_days": window(30), "running_tasks": int(running or 0)}

    # ------------------------------------------------------------------ retention

    def delete_finished_before(self, cutoff: datetime) -> int:
        with Session(self.engine) as session, session.begin():
            ids = list(
                session.scalars(select(Task.id).where(Task.status.in_(TaskStatus.TERMINAL), Task.finished_at < cutoff))
            )
            if ids:
                session.execute(delete(Item).where(Item.task_id.in_(ids)))
                session.execute(delete(Task).where(Task.id.in_(ids)))
            return len(ids)


def _status(recorded: str | None) -> int | str | None:
    """The receiver's HTTP status as a number (the contract's type), or the message when no answer came."""
    return int(recorded) if recorded is not None and recorded.isdigit() else recorded
