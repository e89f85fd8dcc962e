"""The real app on the test's event loop, against a real dev server, a real worker and a real
SQLite records store."""

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.dispatch import DispatchActivities
from activities.notifications import NotificationActivities
from activities.records import RecordActivities
from api.main import create_app
from core.db import create_engine, prepare_schema
from core.settings import Settings
from core.tokens import mint_token
from tests.api.client import AUTH_SECRET, Auth, TokenFactory, serve
from tests.api.drive import Drive, driver
from worker import build_worker


@pytest.fixture(scope="session")
def settings(
    dev_server_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    database = tmp_path_factory.mktemp("records") / "repairflow.db"
    return Settings(
        temporal_address=dev_server_env.client.service_client.config.target_host,
        task_queue=f"repair-orders-{uuid.uuid4().hex[:8]}",
        database_url=f"sqlite:///{database}",
        auth_secret=AUTH_SECRET,
    )


@pytest.fixture(scope="session")
async def records_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database_url)
    await prepare_schema(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def worker(
    dev_server_env: WorkflowEnvironment, settings: Settings, records_engine: AsyncEngine
) -> AsyncIterator[None]:
    worker = build_worker(
        dev_server_env.client,
        settings,
        RecordActivities(records_engine),
        NotificationActivities(records_engine),
        DispatchActivities(records_engine),
    )
    async with worker:
        yield


@pytest.fixture(scope="session")
async def api(settings: Settings, worker: None) -> AsyncIterator[httpx.AsyncClient]:
    async for http in serve(create_app(settings)):
        yield http


@pytest.fixture(scope="session")
def temporal(dev_server_env: WorkflowEnvironment) -> Client:
    return dev_server_env.client


@pytest.fixture(scope="session")
def token() -> TokenFactory:
    def mint(
        role: str, *, secret: str = AUTH_SECRET, ttl: timedelta = timedelta(hours=1), **claims: Any
    ) -> str:
        return mint_token(secret, subject=f"test-{role}", role=role, ttl=ttl, **claims)

    return mint


@pytest.fixture(scope="session")
def auth(token: TokenFactory) -> Auth:
    def headers(role: str, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(role, **claims)}"}

    return headers


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def drive(api: httpx.AsyncClient, auth: Auth) -> Drive:
    """Book an order and move it through the API up to a step (tests/api/drive.py)."""
    return driver(api, auth)
