"""The schema comes from the Alembic migrations alone, on each engine."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import SQLModel

from core.db import SchemaError, alembic_config, create_engine, prepare_schema
from models.order import Stage
from models.records import OrderRow
from tests.factories import create_record_input

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC = Path(sys.executable).parent / "alembic"
HEAD = "0006_technician_schedule"
FROM_EMPTY = "Running upgrade  -> 0001_initial"  # Alembic's line for the first revision


def schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


def table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def version(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator's command, from the repository root, reading REPAIRFLOW_DATABASE_URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPAIRFLOW_")}
    return subprocess.run(  # noqa: S603 - the environment's own alembic
        [str(ALEMBIC), *args],
        cwd=ROOT,
        env=env | {"REPAIRFLOW_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def on(url: str, inspect_with: Any) -> Any:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(inspect_with)
    finally:
        await engine.dispose()


class TestPrepareSchema:
    async def test_fresh_database_gets_exactly_the_models_schema(
        self, records_store: AsyncEngine
    ) -> None:
        """Migrations alone make every table, column, type and index the models describe."""
        async with records_store.connect() as connection:
            assert await connection.run_sync(schema_differences) == []
            tables = await connection.run_sync(table_names)
            assert await connection.run_sync(version) == HEAD
        assert tables == set(SQLModel.metadata.tables) | {"alembic_version"}
        assert {"orders", "order_events", "complaints", "history_archive"} <= tables

    async def test_event_log_has_its_chain_columns(self, records_store: AsyncEngine) -> None:
        """The event log stores each row's hash and its predecessor's, and (order, seq) is
        unique under a stable name."""

        def describe(connection: Connection) -> tuple[set[str], list[Any]]:
            inspector = inspect(connection)
            columns = {c["name"] for c in inspector.get_columns("order_events")}
            return columns, inspector.get_unique_constraints("order_events")

        async with records_store.connect() as connection:
            columns, uniques = await connection.run_sync(describe)
        assert {"prev_hash", "hash"} <= columns
        assert [(u["name"], u["column_names"]) for u in uniques] == [
            ("uq_order_events_order_id_seq", ["order_id", "seq"])
        ]

    async def test_migrating_again_keeps_the_data(self, records_store: AsyncEngine) -> None:
        """Every start runs the migrations; at the newest revision that changes nothing."""
        from temporalio.testing import ActivityEnvironment

        from activities.records import RecordActivities

        activities = RecordActivities(records_store)
        await ActivityEnvironment().run(
            activities.record_order_event, create_record_input(1, Stage.BOOKED)
        )
        await prepare_schema(records_store)
        async with AsyncSession(records_store) as session:
            assert await session.get(OrderRow, "RF261120-ABC123") is not None

    async def test_processes_starting_together_migrate_once(self, records_url: str) -> None:
        """The API and the worker starting at once on a new database: both come up."""
        engines = [create_engine(records_url) for _ in range(4)]
        try:
            await asyncio.gather(*(prepare_schema(engine) for engine in engines))
            async with engines[0].connect() as connection:
                assert await connection.run_sync(version) == HEAD
                assert await connection.run_sync(schema_differences) == []
        finally:
            for engine in engines:
                await engine.dispose()

    async def test_commands_started_together_migrate_once(self, records_url: str) -> None:
        """Four `alembic upgrade head` processes at once on a new database: all succeed,
        one of them migrates."""
        results = await asyncio.gather(
            *(asyncio.to_thread(alembic, records_url, "upgrade", "head") for _ in range(4))
        )
        assert [result.returncode for result in results] == [0, 0, 0, 0], results
        migrated = [r for r in results if FROM_EMPTY in r.stderr]
        assert len(migrated) == 1
        assert await on(records_url, schema_differences) == []

    async def test_database_made_before_migrations_is_refused(self, records_url: str) -> None:
        """A records store that create_all made (no migration history) stops start-up with a
        message that says what to do, and is left as it was."""
        engine = create_engine(records_url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(SQLModel.metadata.create_all)
            with pytest.raises(SchemaError, match="no migration history") as refused:
                await prepare_schema(engine)
            assert "repairflow.db" in str(refused.value)
            assert "alembic upgrade head" in str(refused.value)
            async with engine.connect() as connection:
                assert "alembic_version" not in await connection.run_sync(table_names)
        finally:
            await engine.dispose()

    async def test_downgrade_removes_every_table(self, records_store: AsyncEngine) -> None:
        """The first revision undoes itself completely (and can be applied again)."""

        def downgrade(connection: Connection) -> set[str]:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
            return table_names(connection)

        async with records_store.begin() as connection:
            assert await connection.run_sync(downgrade) == {"alembic_version"}
        await prepare_schema(records_store)
        async with records_store.connect() as connection:
            assert await connection.run_sync(schema_differences) == []


class TestAlembicCommand:
    async def test_upgrade_head_migrates_the_configured_database(self, records_url: str) -> None:
        """`alembic upgrade head` brings the database in REPAIRFLOW_DATABASE_URL to the
        current schema; `alembic current` then names the head revision."""
        upgraded = await asyncio.to_thread(alembic, records_url, "upgrade", "head")
        assert upgraded.returncode == 0, upgraded.stderr
        assert FROM_EMPTY in upgraded.stderr
        assert f"-> {HEAD}," in upgraded.stderr
        assert await on(records_url, schema_differences) == []
        current = await asyncio.to_thread(alembic, records_url, "current")
        assert current.returncode == 0, current.stderr
        assert f"{HEAD} (head)" in current.stdout

    async def test_command_refuses_a_database_made_before_migrations(
        self, records_url: str
    ) -> None:
        """The operator's command gives the same clear refusal as start-up."""
        engine = create_engine(records_url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(SQLModel.metadata.create_all)
        finally:
            await engine.dispose()
        refused = await asyncio.to_thread(alembic, records_url, "upgrade", "head")
        assert refused.returncode != 0
        assert "no migration history" in refused.stderr


class TestEngineUrls:
    @pytest.mark.parametrize(
        ("url", "driver"),
        [
            ("sqlite:///./repairflow.db", "sqlite+aiosqlite"),
            ("postgresql://rf:secret@db.internal:5432/repairflow", "postgresql+psycopg"),
            ("postgres://rf:secret@db.internal/repairflow", "postgresql+psycopg"),
            ("postgresql+psycopg://rf@db/repairflow", "postgresql+psycopg"),
        ],
    )
    async def test_plain_urls_get_the_async_driver(self, url: str, driver: str) -> None:
        """Operators write the URL they know; the service picks its async driver."""
        engine = create_engine(url)
        try:
            assert engine.url.drivername == driver
            assert engine.url.database == make_url(url).database
        finally:
            await engine.dispose()

    async def test_query_runs_on_both_engines(self, records_store: AsyncEngine) -> None:
        """The store answers a plain query on whichever engine it runs."""
        async with records_store.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
