"""The schema revision check that needs no Alembic (stores/db.py)."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from retouch.stores.db import HEAD_REVISION, alembic_config, make_engine, revision, schema_is_current


def test_the_known_head_is_alembics_head() -> None:
    # A new migration must move HEAD_REVISION too, or servers would not migrate (nor see their schema as current).
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_a_new_sqlite_database_is_migrated_and_then_seen_as_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'retouch.db'}"
    from sqlalchemy import create_engine

    fresh = create_engine(url)
    assert revision(fresh) is None  # no alembic_version table yet
    fresh.dispose()
    engine = make_engine(url)
    assert revision(engine) == HEAD_REVISION and schema_is_current(engine)
    engine.dispose()
