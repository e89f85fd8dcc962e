import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, HTTPException, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import openapi
from api.errors import MAX_BODY_BYTES, content_too_large, install_error_handlers
from api.metrics import Metrics
from api.routes import (
    actions,
    audit,
    codec,
    complaints,
    health,
    orders,
    prices,
    reports,
    technicians,
)
from core.db import create_engine, prepare_schema
from core.personal import KeyPool
from core.settings import Settings
from core.temporal import connect

log = structlog.get_logger("api")

# A caller's request id is kept only when it is short and plain: it lands in every log line.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Answers carry customers' personal data: no cache keeps a copy.
    "Cache-Control": "no-store",
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    if settings.auth_secret is None and settings.auth_jwks_url is None:
        raise RuntimeError(
            "set REPAIRFLOW_AUTH_SECRET (the development command generates one) "
            "or REPAIRFLOW_AUTH_JWKS_URL"
        )
    if settings.link_secret is None:
        raise RuntimeError(
            "set REPAIRFLOW_CUSTOMER_LINK_SECRET: it signs the link tokens customers get at "
            "booking (without REPAIRFLOW_AUTH_SECRET nothing else can)"
        )
    settings.policy  # noqa: B018 - a broken policy file must stop start-up, not the first booking

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.engine = create_engine(settings.database_url)
        await prepare_schema(app.state.engine)
        app.state.key_pool = KeyPool(app.state.engine, settings.key_ring)
        # Lazy: the API starts (and answers 503) while the engine is still coming up.
        app.state.temporal = await connect(settings, lazy=True)
        yield
        await app.state.engine.dispose()

    app = FastAPI(title="repairflow", version="1", lifespan=lifespan)
    app.state.metrics = Metrics(app)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(orders.router)
    app.include_router(actions.router)
    app.include_router(technicians.router)
    app.include_router(complaints.router)
    app.include_router(audit.router)
    app.include_router(codec.router)
    app.include_router(reports.router)
    app.include_router(prices.router)
    app.add_middleware(BodyLimit)
    openapi.install(app)

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        given = request.headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        response = await _within_limits(request, call_next)
        response.headers["X-Request-ID"] = request_id
        response.headers.update(SECURITY_HEADERS)
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


class BodyLimit:
    """Counts a request body as it is read: one sent in chunks has no Content-Length to check
    beforehand. Past the limit the read fails with a 413, which the error handlers answer as
    problem+json. (FastAPI's own limit answers in plain text.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise HTTPException(413)
            return message

        await self.app(scope, counted, send)


async def _within_limits(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    length = request.headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        return content_too_large()
    return await call_next(request)
