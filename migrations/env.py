"""Alembic's environment for the records store.

Two ways in, one way through:
- `prepare_schema` (core/db.py, at every API and worker start) hands over its connection in
  `config.attributes["connection"]`, inside a transaction that already holds the schema lock
  and that it commits;
- the `alembic` command reads REPAIRFLOW_DATABASE_URL (through the same Settings as the
  processes), opens the same kind of engine and takes the lock itself.
Either way the migrations run in one transaction that holds the schema lock (two processes
starting together migrate once) and refuse a database that `create_all` made before there
were migrations. SQLite runs them in that transaction too (BEGIN IMMEDIATE), so a failed
migration leaves nothing half done on either engine.
"""

import asyncio
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from core.db import create_engine, lock_schema, refuse_unversioned
from models.records import UtcDateTime

config = context.config
target_metadata = SQLModel.metadata


def render_item(kind: str, item: Any, _: AutogenContext) -> str | Literal[False]:
    """Autogenerate writes the engines' own types, so a revision never imports the models."""
    if kind == "type" and isinstance(item, AutoString):
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    if kind == "type" and isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def database_url() -> str:
    from core.settings import Settings

    return Settings().database_url


def run_migrations(connection: Connection) -> None:
    refuse_unversioned(connection)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_item=render_item,
        # SQLite alters a table by copying it; future revisions' ALTERs need batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_command_line() -> None:
    engine = create_engine(database_url())
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lock_schema)
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


def run_offline() -> None:
    """`alembic upgrade head --sql`: the SQL for a DBA to review, no connection needed."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if given is not None:
    run_migrations(given)
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    if context.is_offline_mode():
        run_offline()
    else:
        asyncio.run(run_from_command_line())
