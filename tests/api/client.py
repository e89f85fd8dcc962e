"""The real app served on the test's event loop, and what a caller needs to talk to it: the
signing secret of the test tokens and an HTTP client on the app, with a worker of its own when a
test needs a service apart from the session's."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from activities.dispatch import DispatchActivities
from activities.notifications import NotificationActivities
from activities.records import RecordActivities
from api.main import create_app
from core.db import create_engine, prepare_schema
from core.settings import Settings
from worker import build_worker

AUTH_SECRET = "test-secret-long-enough-for-any-hmac-algorithm-0123456789abcdefghijklmnop"
# token(role, **claims): a bearer token; auth(role, **claims): the Authorization header with it.
TokenFactory = Callable[..., str]
Auth = Callable[..., dict[str, str]]


async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://repairflow") as http:
            yield http


@asynccontextmanager
async def app_and_worker(
    client: Client, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncEngine]]:
    """The real app and a real worker on the task queue and records store of `settings` (the
    store migrated first), for tests that need a service of their own."""
    engine = create_engine(settings.database_url)
    await prepare_schema(engine)
    worker = build_worker(
        client,
        settings,
        RecordActivities(engine),
        NotificationActivities(engine),
        DispatchActivities(engine),
    )
    try:
        async with worker:
            async for http in serve(create_app(settings)):
                yield http, engine
    finally:
        await engine.dispose()
