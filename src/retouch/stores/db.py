"""The database: one SQLAlchemy engine per process, SQLite (WAL) by default, PostgreSQL for scale-out; its
schema is migrated with Alembic (``retouch db upgrade``; the tables are in ``stores/tables.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

__all__ = ["check_schema", "make_engine", "schema_is_current", "upgrade"]


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


def schema_is_current(engine: Engine) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head


def make_engine(url: str) -> Engine:
    """The engine. The embedded SQLite default migrates itself; a shared database (PostgreSQL) is
    migrated by the operator with ``retouch db upgrade``, once, not by every replica at start."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
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
