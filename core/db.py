"""The records store's engine: SQLite by default, PostgreSQL in production."""

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import SQLModel

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}


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
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


async def prepare_schema(engine: AsyncEngine) -> None:
    """Create missing tables (Alembic migrations take this over once the schema evolves)."""
    import models.records  # noqa: F401 - registers the tables on SQLModel.metadata

    async with engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
