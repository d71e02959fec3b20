"""The `retouch` command: serve, edit, batch, worker, keys, accounts, db, doctor.

Names are part of the operator's surface."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retouch.settings import Settings

if TYPE_CHECKING:
    from retouch.stores.accounts import KeyStore

app = typer.Typer(help="retouch: self-hosted image editing with the Claid.ai API contract.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
accounts_app = typer.Typer(help="Accounts.", no_args_is_help=True)
storages_app = typer.Typer(help="An account's storages, as the API's /v1/storage/storages.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(storages_app, name="storages")
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")


def _show_version(value: bool) -> None:
    if value:
        from retouch import __version__

        typer.echo(f"retouch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_show_version, is_eager=True)
    ] = False,
) -> None:
    """retouch: self-hosted image editing with the Claid.ai API contract."""


def _ops_argument(value: str) -> dict[str, Any]:
    """`--ops` takes JSON or @file (like curl's -d @file)."""
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {value[1:]}: {exc.strerror or exc}") from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise typer.BadParameter("expected a JSON object")
    return parsed


def ensure_first_key(settings: Settings) -> str | None:
    """The embedded default makes one account, its key and a `local` storage on first start."""
    from retouch.bootstrap import open_service

    service = open_service(settings)
    try:
        return service.first_start()
    finally:
        service.close()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Image worker processes (0 = one per core).")] = 0,
) -> None:
    """Start the HTTP API on the embedded default (SQLite, local folder, local worker pool)."""
    import uvicorn

    from retouch.api.app import create_app

    overrides: dict[str, Any] = {"host": host, "port": port}
    if workers:
        overrides["workers"] = workers
    settings = Settings(**overrides)
    settings.resolved_home.mkdir(parents=True, exist_ok=True)
    _migrate_apart(settings)
    key = ensure_first_key(settings)
    if key:
        typer.echo(f"Created account 'default' with API key (also saved in {settings.resolved_home}/initial-api-key):")
        typer.echo(key)
    from retouch.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    # log_config=None: uvicorn's lines go through the handler above, in the same format, with the request ids.
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host=host, port=port, log_config=None, proxy_headers=False)
    )

    def announce() -> None:
        # Only once the port is bound: a port in use ends the server before this would mislead anyone.
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            typer.echo(f"retouch listening on http://{host}:{port} (docs at /docs, home {settings.resolved_home})")

    threading.Thread(target=announce, name="retouch-banner", daemon=True).start()
    server.run()
    if not server.started:
        raise typer.Exit(1)


def _migrate_apart(settings: Settings) -> None:
    """Bring the embedded database's schema up to date in a short-lived child (``retouch db upgrade``), so this
    long-lived process never imports Alembic and Mako (~10 MB, docs/performance.md "Memory"); it runs only when
    the database is new or older than this release. A shared database (PostgreSQL) is the operator's to migrate.
    """
    url = settings.resolved_database_url
    if not url.startswith("sqlite:///"):
        return
    from sqlalchemy import create_engine

    from retouch.stores.db import HEAD_REVISION, revision

    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    try:
        current = revision(engine)
    finally:
        engine.dispose()
    if current == HEAD_REVISION:
        return
    # The same environment, so the same settings (the database URL, the home); the child's own output says what
    # it did, and a failure stops `serve` with its message.
    done = subprocess.run([sys.executable, "-m", "retouch", "db", "upgrade"], capture_output=True, text=True)
    if done.returncode != 0:
        typer.echo(done.stderr.strip() or done.stdout.strip(), err=True)
        raise typer.Exit(1)


@app.command()
def edit(
    input_path: Annotated[Path, typer.Argument(metavar="IN", help="Input image file.")],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="Output file (its suffix picks the format unless --output-options does)."),
    ],
    ops: Annotated[
        str, typer.Option(help='Operations as JSON or @file, e.g. \'{"resizing": {"width": 800}}\'.')
    ] = "{}",
    output_options: Annotated[
        str | None, typer.Option("--output-options", help="The contract's output object as JSON or @file.")
    ] = None,
) -> None:
    """Edit one local image with the same pipeline as the API, no server needed."""
    from retouch.contracts.edit import UploadData
    from retouch.contracts.envelopes import validate
    from retouch.errors import RetouchError
    from retouch.formats import OUTPUT_FORMATS, guess_ext, output_format_for
    from retouch.pipeline import configure_vips
    from retouch.work.context import WorkContext
    from retouch.work.item import Failure, Job, local_style_reference, process

    operations = _ops_argument(ops)
    out_opts: dict[str, Any] = _ops_argument(output_options) if output_options else {}
    suffix_format = output_format_for(output.name)
    if "format" not in out_opts and suffix_format is not None:
        out_opts["format"] = suffix_format
    configure_vips()
    try:
        request = validate(UploadData, {"operations": operations, "output": out_opts})
        data = input_path.read_bytes()
        named = guess_ext(output.name)  # what the file name says it holds, when it names an image format
        wanted = request.output.format.type
        if named and named != wanted:
            writable = ", ".join(OUTPUT_FORMATS)
            raise RetouchError(
                f"{output.name} names {named}, but the output would be {wanted}; retouch writes {writable}: "
                "pick a matching suffix or set the format with --output-options"
            )
        style = local_style_reference(request.operations)
    except RetouchError as exc:
        typer.echo(f"error: {exc.public_message}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: cannot read {input_path}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    # The same unit of work as the service, with a local file for input and output.
    job = Job(
        0, request.operations, request.output, data=data, name=input_path.name, out_file=output, style_reference=style
    )
    outcome = process(WorkContext.local(Settings()), job, lambda outcome: outcome)
    if isinstance(outcome, Failure) or outcome is None:
        typer.echo(f"error: {outcome.message if outcome is not None else 'nothing was written'}", err=True)
        raise typer.Exit(2)
    out = outcome.output
    typer.echo(f"{output}: {out.width}x{out.height} {out.ext}, {output.stat().st_size} bytes")


@app.command()
def batch(
    in_dir: Annotated[Path, typer.Argument(metavar="IN_DIR", help="Folder of input images.")],
    out_dir: Annotated[Path, typer.Argument(metavar="OUT_DIR", help="Folder for the results (sub-paths kept).")],
    ops: Annotated[str, typer.Option(help="Operations as JSON or @file.")] = "{}",
    output_options: Annotated[
        str | None, typer.Option("--output-options", help="The contract's output object as JSON or @file.")
    ] = None,
    recursive: Annotated[bool, typer.Option(help="Take images in sub-folders too.")] = False,
    workers: Annotated[int, typer.Option(help="Worker processes (0 = one per core).")] = 0,
    resume: Annotated[
        bool, typer.Option(help="Skip inputs whose output already exists (from an interrupted run).")
    ] = False,
) -> None:
    """Edit every image of a local folder, no server needed. Exit code 1 when any image failed."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from retouch.contracts.edit import UploadData
    from retouch.contracts.envelopes import validate
    from retouch.errors import RetouchError
    from retouch.localbatch import BatchReport, run_local_batch
    from retouch.work.item import local_style_reference

    console = Console(stderr=True, soft_wrap=True)
    if not in_dir.is_dir():
        console.print(f"error: {in_dir} is not a folder")
        raise typer.Exit(2)
    try:
        request = validate(
            UploadData, {"operations": _ops_argument(ops), "output": _ops_argument(output_options or "{}")}
        )
        local_style_reference(request.operations)  # an unreadable style image stops the batch before it starts
    except RetouchError as exc:
        console.print(f"error: {exc.public_message}")
        raise typer.Exit(2) from None
    settings = Settings()
    progress = Progress(
        TextColumn("[bold]retouch batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )
    bar = progress.add_task("edit", total=None, rate="")

    def update(report: BatchReport, total: int | None) -> None:
        progress.update(
            bar,
            total=total,
            completed=report.done + report.failed + report.skipped,
            rate=f"{report.images_per_second:.1f} img/s, {report.failed} failed",
        )

    with progress:
        report = run_local_batch(
            in_dir,
            out_dir,
            request,
            settings,
            recursive=recursive,
            workers=workers,
            resume=resume,
            timeout=settings.item_timeout_seconds,
            on_progress=update,
        )
    table = Table(title="retouch batch")
    for column in ("done", "failed", "skipped", "seconds", "images/s"):
        table.add_column(column, justify="right")
    table.add_row(
        str(report.done),
        str(report.failed),
        str(report.skipped),
        f"{report.seconds:.1f}",
        f"{report.images_per_second:.1f}",
    )
    console.print(table)
    for source, message in report.failures:
        console.print(f"[red]failed[/red] {source}: {message}")
    raise typer.Exit(1 if report.failed else 0)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Item processes (0 = one per core).")] = 0,
    queues: Annotated[
        str, typer.Option(help="Comma list of queues to consume: fast (classical), ai (models).")
    ] = "fast,ai",
) -> None:
    """Scale-out: a Celery worker that runs items (RETOUCH_BROKER_URL, RETOUCH_DATABASE_URL). Stops on SIGTERM."""
    from retouch.executors.celery import QUEUES, hold_sigterm, run_worker

    hold_sigterm()  # a stop from now on exits 0, also before Celery is up

    settings = Settings()
    if settings.executor != "celery" or not settings.broker_url:
        typer.echo(
            "error: `retouch worker` serves the scale-out mode: set RETOUCH_EXECUTOR=celery and RETOUCH_BROKER_URL "
            "(e.g. redis://127.0.0.1:6379/0); the embedded default needs no worker",
            err=True,
        )
        raise typer.Exit(2)
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = set(wanted) - set(QUEUES)
    if unknown or not wanted:
        typer.echo(f"error: unknown queues {sorted(unknown)}; known: {', '.join(QUEUES)}", err=True)
        raise typer.Exit(2)
    if settings.engine_is_shared:
        from retouch.stores.db import check_schema, make_engine

        engine = make_engine(settings.resolved_database_url)
        try:
            check_schema(engine)
        except RuntimeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        finally:
            engine.dispose()
    from retouch.bootstrap import open_worker
    from retouch.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    run_worker(settings, open_worker(settings, concurrency or os.cpu_count() or 1), wanted)


def _duration(text: str) -> timedelta:
    """30d, 12h, 90m or 3600s."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise typer.BadParameter(f"{text!r}: expected a positive number with d, h, m or s, e.g. 30d")
    return timedelta(seconds=int(number) * units[unit])


def _when(value: datetime | None) -> str:
    from retouch.stores.tables import rfc3339

    return rfc3339(value) if value is not None else "-"


@contextmanager
def _key_store() -> Iterator[KeyStore]:
    from retouch.stores.accounts import KeyStore
    from retouch.stores.db import make_engine

    engine = make_engine(Settings().resolved_database_url)
    try:
        yield KeyStore(engine)
    finally:
        engine.dispose()


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Option(help="Account name (created if new).")],
    scopes: Annotated[str, typer.Option(help="Comma list of scopes.")] = "image_editing,storage",
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="Expire the key after this long: 30d, 12h, 90m, 3600s.")
    ] = None,
) -> None:
    """Create an API key; the key alone is printed on the last line."""
    lifetime = _duration(expires_in) if expires_in else None
    with _key_store() as store:
        try:
            key = store.create(account, tuple(s.strip() for s in scopes.split(",") if s.strip()), lifetime)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    until = f", expiring in {expires_in}" if expires_in else ""
    typer.echo(f"Created a key for account {account!r} with scopes {scopes}{until}. It is shown once:")
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    account: Annotated[str | None, typer.Option(help="Only this account's keys.")] = None,
) -> None:
    """Every key: id, account, first characters, scopes, created, last used, expiry, state (never the key)."""
    with _key_store() as store:
        keys = store.list_keys(account)
    typer.echo("id\taccount\tprefix\tscopes\tcreated\tlast_used\texpires\tstate")
    for k in keys:
        typer.echo(
            f"{k.id}\t{k.account}\t{k.prefix}…\t{','.join(k.scopes)}\t{_when(k.created_at)}\t"
            f"{_when(k.last_used_at)}\t{_when(k.expires_at)}\t{k.state}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(metavar="KEY_ID", help="The id `retouch keys list` shows.")],
) -> None:
    """Revoke a key: every API replica refuses it within RETOUCH_KEY_CACHE_SECONDS (1 s)."""
    with _key_store() as store:
        if not store.revoke(key_id):
            typer.echo(f"error: no key with id {key_id} (see `retouch keys list`)", err=True)
            raise typer.Exit(2)
    typer.echo(f"key {key_id} revoked")


@accounts_app.command("list")
def accounts_list() -> None:
    """Every account, with its number of active keys."""
    with _key_store() as store:
        rows = store.accounts()
    typer.echo("account\tactive_keys\tcreated")
    for name, active, created in rows:
        typer.echo(f"{name}\t{active}\t{_when(created)}")


@storages_app.command("create")
def storages_create(
    name: Annotated[str, typer.Option(help="The storage's name: inputs and outputs say storage://NAME/...")],
    type_: Annotated[str, typer.Option("--type", help="s3, gcs, web_folder or local.")],
    parameters: Annotated[str, typer.Option(help="The API's `parameters` object: JSON or @file.")],
    account: Annotated[str, typer.Option(help="Account name (created if new).")] = "default",
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Succeed without change when the name exists (start-up scripts).")
    ] = False,
) -> None:
    """Create a storage exactly as POST /v1/storage/storages does (same checks; secrets encrypted at rest).

    For a deployment's start-up, e.g. the shared `tmp` storage of RETOUCH_TMP_STORAGE."""
    from pydantic import ValidationError

    from retouch.bootstrap import open_service
    from retouch.contracts.storages import StorageIn
    from retouch.errors import ConflictError, RetouchError

    params = _ops_argument(parameters)
    try:
        spec = StorageIn.model_validate({"name": name, "type": type_, "parameters": params})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: {problems}", err=True)
        raise typer.Exit(2) from None
    service = open_service(Settings())
    try:
        account_id = service.keys.account_id(account)
        try:
            made = service.storages.create(account_id, spec)
        except ConflictError as exc:
            if if_missing and any(s["name"] == name for s in service.storages.list(account_id)):
                typer.echo(f"storage {name!r} of account {account!r} exists already: unchanged")
                return
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except RetouchError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    finally:
        service.close()
    typer.echo(f"created storage {made['name']!r} (id {made['id']}, {made['type']}) for account {account!r}")


@storages_app.command("list")
def storages_list(account: Annotated[str, typer.Option(help="Account name.")] = "default") -> None:
    """An account's storages: id, name, type, parameters without secrets."""
    from retouch.bootstrap import open_service

    service = open_service(Settings())
    try:
        rows = service.storages.list(service.keys.account_id(account))
    finally:
        service.close()
    typer.echo("id\tname\ttype\tparameters")
    for row in rows:
        typer.echo(f"{row['id']}\t{row['name']}\t{row['type']}\t{json.dumps(row['parameters'])}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema."""
    from retouch.stores.db import make_engine, upgrade

    settings = Settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    typer.echo(f"database ready: {settings.resolved_database_url.split('@')[-1]}")


@app.command()
def doctor(
    quick: bool = typer.Option(False, "--quick", help="Only look for the model files; do not load them."),
    as_json: bool = typer.Option(False, "--json", help="One JSON list of {area, name, status, detail}."),
) -> None:
    """Check this installation: codecs, AI runtimes and models, /dev/shm, database, broker, folders, allow-list.

    Exits 1 when a check fails (warnings do not), so start scripts and healthchecks can run it."""
    import dataclasses
    import json

    from retouch.doctor import diagnose

    checks = diagnose(Settings(), load_models=not quick)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(c) for c in checks], indent=1))
    else:
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
        area = ""
        for check in checks:
            if check.area != area:
                area = check.area
                typer.echo(f"{area}:")
            detail = f"  {check.detail}" if check.detail else ""
            typer.echo(f"  {marks[check.status]} {check.name}{detail}")
        failed = sum(c.status == "fail" for c in checks)
        warned = sum(c.status == "warn" for c in checks)
        typer.echo(f"{len(checks)} checks: {failed} failed, {warned} warnings")
    raise typer.Exit(1 if any(c.status == "fail" for c in checks) else 0)


def main() -> None:
    app(prog_name="retouch")


if __name__ == "__main__":
    main()
    sys.exit(0)
