"""The records store: SQLite by default, PostgreSQL in production, its schema kept by Alembic.

The schema is that of the migrations in `migrations/`, never `create_all`: `prepare_schema`
(the API and the worker call it at start-up) upgrades the database to the newest revision,
as `alembic upgrade head` does for an operator. Both run in one transaction that holds a
lock, so processes starting together migrate once, and a failed migration leaves nothing.
"""

import asyncio
import hashlib
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from alembic.config import Config

ALEMBIC_INI: Final = Path(__file__).parent.parent / "alembic.ini"
ASYNC_DRIVERS: Final = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",  # the spelling some hosting providers hand out
}
# pg_advisory_xact_lock keys: one for migrations; order locks hash the order id (below).
_SCHEMA_LOCK: Final = 0x7266_6D69_6772_6174  # "rfmigrat"


class SchemaError(RuntimeError):
    """The records store cannot be brought to the current schema; the message says why."""


def async_url(url: str) -> str:
    """Accept the plain SQLAlchemy URLs operators write and pick the async driver."""
    parsed = make_url(url)
    driver = ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(False) if driver else url


def create_engine(url: str) -> AsyncEngine:
    # hide_parameters: error messages would otherwise quote customers' personal data.
    engine = create_async_engine(async_url(url), pool_pre_ping=True, hide_parameters=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: object, _: ConnectionPoolEntry) -> None:
    # WAL lets the API read while the worker writes; busy_timeout waits out the other writer.
    # busy_timeout first: switching a new database to WAL waits for a writer holding it too,
    # and a process migrating a new database on a loaded machine may hold it for seconds.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# ---- locks -------------------------------------------------------------------------------------


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def lock_order(session: AsyncSession, order_id: str) -> None:
    """Make the session's transaction the only writer of this order's records until it ends.

    Must be the transaction's first statement. PostgreSQL: a transaction-scoped advisory lock
    on the order id (writers of other orders go on). SQLite: BEGIN IMMEDIATE, the database's
    one write lock, taken up front so two writers queue (busy_timeout) instead of both reading
    and one failing when it comes to write.
    """
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        key = _advisory_key(f"repairflow.order:{order_id}")
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    elif connection.dialect.name == "sqlite":
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


def lock_schema(connection: Connection) -> None:
    """Serialise migrations: the first statement of the migrating transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def refuse_unversioned(connection: Connection) -> None:
    """A database with our tables but no Alembic version was made by `create_all` before
    migrations existed: its tables lack columns (the event chain), so it is refused, not
    guessed at."""
    from sqlmodel import SQLModel

    import models.records  # noqa: F401 - registers the tables on SQLModel.metadata

    tables = set(inspect(connection).get_table_names())
    ours = sorted(tables & set(SQLModel.metadata.tables))
    if ours and "alembic_version" not in tables:
        raise SchemaError(
            f"the records store has tables ({', '.join(ours)}) but no migration history: it "
            "was created before repairflow used migrations. In development delete that "
            "database (repairflow.db) and start again; elsewhere move it aside and migrate a "
            "new one with `alembic upgrade head`, copying the rows over."
        )


# ---- schema ------------------------------------------------------------------------------------


def alembic_config() -> "Config":
    """The project's Alembic configuration (alembic.ini at the repository root)."""
    # Imported here: workflow sandboxes import this module's importers, not Alembic.
    from alembic.config import Config

    return Config(str(ALEMBIC_INI))


_in_process: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = (
    weakref.WeakKeyDictionary()
)


async def prepare_schema(engine: AsyncEngine) -> None:
    """Bring the database to the newest migration (a no-op when it is there already)."""
    # Alembic's context is one per process: callers in one process take turns here, and
    # processes take turns on the database's lock below.
    loop = asyncio.get_running_loop()
    async with _in_process.setdefault(loop, asyncio.Lock()):
        await _upgrade(engine)


async def _upgrade(engine: AsyncEngine) -> None:
    from alembic import command

    def upgrade(connection: Connection) -> None:
        config = alembic_config()
        # migrations/env.py runs on this connection, in this transaction, under this lock.
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        await connection.run_sync(lock_schema)
        await connection.run_sync(upgrade)
