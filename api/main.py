import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request, Response

from api.errors import install_error_handlers
from api.routes import audit, complaints, health, orders, technicians
from core.db import create_engine, prepare_schema
from core.settings import Settings
from core.temporal import connect

log = structlog.get_logger("api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    if settings.auth_secret is None and settings.auth_jwks_url is None:
        raise RuntimeError(
            "set REPAIRFLOW_AUTH_SECRET (the development command generates one) "
            "or REPAIRFLOW_AUTH_JWKS_URL"
        )
    settings.policy  # noqa: B018 - a broken policy file must stop start-up, not the first booking

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.engine = create_engine(settings.database_url)
        await prepare_schema(app.state.engine)
        # Lazy: the API starts (and answers 503) while the engine is still coming up.
        app.state.temporal = await connect(settings, lazy=True)
        yield
        await app.state.engine.dispose()

    app = FastAPI(title="repairflow", version="1", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(orders.router)
    app.include_router(technicians.router)
    app.include_router(complaints.router)
    app.include_router(audit.router)

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Request-ID"] = request_id
        route = request.scope.get("route")
        log.info(
            "request",
            method=request.method,
            route=getattr(route, "path", "unmatched"),
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    return app
