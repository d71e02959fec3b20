"""The database: one SQLAlchemy engine per process, SQLite (WAL) by default, PostgreSQL for scale-out; its
schema is migrated with Alembic (``retouch db upgrade``; the tables are in ``stores/tables.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError

__all__ = ["HEAD_REVISION", "check_schema", "make_engine", "revision", "schema_is_current", "upgrade"]

#: The newest migration in ``migrations/versions`` (tests/stores/test_db.py checks it is Alembic's head). Comparing
#: a database's revision with it needs no Alembic: importing Alembic (and Mako) costs ~10 MB that would stay in
#: every process that opens the database, for a check that finds the schema current on all but the first start.
HEAD_REVISION = "0003"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while a worker writes; busy_timeout waits instead of failing on a lock.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # NORMAL is safe in WAL mode (a power cut may lose the last commits, never corrupts the file) and
    # saves an fsync per commit: three per batch item otherwise.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(connection: Any | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent.parent / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (``retouch db upgrade``)."""
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")


def revision(engine: Engine) -> str | None:
    """The database's schema revision (Alembic's ``alembic_version`` table), None before the first migration."""
    with engine.connect() as connection:  # an unreachable database raises here, as it did before
        try:
            found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:  # no such table: a new database
            return None
    return str(found) if found is not None else None


def schema_is_current(engine: Engine) -> bool:
    return revision(engine) == HEAD_REVISION


def make_engine(url: str) -> Engine:
    """The engine. The embedded SQLite default migrates itself; a shared database (PostgreSQL) is
    migrated by the operator with ``retouch db upgrade``, once, not by every replica at start."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        if revision(engine) != HEAD_REVISION:
            upgrade(engine)
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    return engine


def check_schema(engine: Engine) -> None:
    if not schema_is_current(engine):
        raise RuntimeError(
            "The database schema is not at the newest version: run `retouch db upgrade` (once, before starting "
            "API replicas and workers)."
        )
