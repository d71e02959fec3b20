"""Alembic environment: runs on the connection handed over by retouch.stores.db.upgrade()."""

from __future__ import annotations

from alembic import context

import retouch.stores.tables  # noqa: F401  (registers every table on Base.metadata)
from retouch.stores.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # the alembic CLI: build an engine from the configured URL
    from sqlalchemy import create_engine

    connection = create_engine(config.get_main_option("sqlalchemy.url") or "").connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
