"""Session-wide Temporal environments (tests/servers.py): the time-skipping test server for
workflow logic and a real dev server (with the custom search attributes) for the API.

The records store's tests run on both engines: `records_url` is a fresh, empty database on
SQLite and on PostgreSQL (REPAIRFLOW_TEST_POSTGRES_URL; `python3 scripts/dev.py test` starts a
throwaway server and sets it). Without it the PostgreSQL cases are skipped, unless
CI_REQUIRE_POSTGRES=1 (set by that command), which makes a missing server a failure."""

import io
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from core.db import create_engine, prepare_schema
from core.log import configure_logging
from tests.payload_keys import TEST_PAYLOAD_KEYS
from tests.servers import start_dev_server, start_time_skipping_server

os.environ["REPAIRFLOW_PAYLOAD_KEYS"] = TEST_PAYLOAD_KEYS

POSTGRES_URL_VARIABLE = "REPAIRFLOW_TEST_POSTGRES_URL"
RECORDS_ENGINES = ("sqlite", "postgresql")

# The shared helpers assert for the tests that call them: rewrite their asserts as pytest does
# the tests', so a failing one shows its values (before any of them is imported).
pytest.register_assert_rewrite(
    "tests.factories", "tests.harness", "tests.waiting", "tests.api.client", "tests.api.drive"
)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Logging configured as the processes configure it (at DEBUG), written to a buffer."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("DEBUG", json=True, stream=stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    async with await start_time_skipping_server() as env:
        yield env


@pytest.fixture(scope="session")
async def dev_server_env() -> AsyncIterator[WorkflowEnvironment]:
    async with await start_dev_server() as env:
        yield env


# ---- the records store, on each engine ---------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL server's database (any database the URL's user may create schemas in)."""
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if url:
        return url
    reason = (
        f"{POSTGRES_URL_VARIABLE} is not set: `python3 scripts/dev.py test` starts a throwaway "
        "PostgreSQL and sets it"
    )
    if os.environ.get("CI_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required here (CI_REQUIRE_POSTGRES=1), but {reason}")
    pytest.skip(reason)


@pytest.fixture(params=RECORDS_ENGINES)
async def records_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database on each engine, as a URL the settings would hold: an SQLite file,
    or a schema of its own on the PostgreSQL server (dropped afterwards), made the connection's
    search_path through the URL, so migrations and queries land in it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'records.db'}"
        return
    server = request.getfixturevalue("postgres_url")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server)
    try:
        async with admin.begin() as connection:
            await connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        url = make_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        async with admin.begin() as connection:
            await connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await admin.dispose()


@pytest.fixture
async def records_store(records_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh database of each engine, migrated to the current schema."""
    engine = create_engine(records_url)
    await prepare_schema(engine)
    yield engine
    await engine.dispose()
