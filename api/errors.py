"""Domain errors carry their HTTP status; one set of handlers renders every error as
problem+json (RFC 9457), including the Temporal client's and the database's."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException
from temporalio.client import (
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "5"


# No body of this API comes near it; a larger one is refused before it is read, or as soon as
# it passes the limit when it comes in chunks.
MAX_BODY_BYTES = 64 * 1024


class ProblemError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra  # problem+json extension members


class Unauthorized(ProblemError):
    status, title = 401, "Unauthorized"


class Forbidden(ProblemError):
    status, title = 403, "Forbidden"


class NotFound(ProblemError):
    status, title = 404, "Not Found"


class Unprocessable(ProblemError):
    status, title = 422, "Unprocessable Content"


class Conflict(ProblemError):
    status, title = 409, "Conflict"


class TooMany(ProblemError):
    status, title = 429, "Too Many Requests"


class ActionFailed(ProblemError):
    """An accepted action failed inside the service (a bug): that action only, not the order."""

    status, title = 500, "Action Failed"


class Unavailable(ProblemError):
    status, title = 503, "Service Unavailable"


class OrderStuck(Unavailable):
    """The engine holds the order, but every try of its next workflow task fails."""

    title = "Order Stuck"


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The problem+json answers a route may give, for its OpenAPI `responses=`."""
    return {code: {"content": {PROBLEM_JSON: {}}, "description": "problem+json"} for code in codes}


def content_too_large() -> JSONResponse:
    return problem(
        413, "Content Too Large", f"a request body may hold at most {MAX_BODY_BYTES} bytes"
    )


def problem(status: int, title: str, detail: str, **extra: object) -> JSONResponse:
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


@contextmanager
def engine_errors(not_found: str = "no such order") -> Iterator[None]:
    """Translate what the Temporal client raises into what the caller should hear."""
    try:
        yield
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError) and cause.type == "Forbidden":
            raise Forbidden(cause.message) from error
        if isinstance(cause, ApplicationError) and cause.type == "TooMany":
            raise TooMany(cause.message) from error
        if isinstance(cause, ApplicationError) and cause.type == "ActionFailed":
            raise ActionFailed(cause.message) from error
        if isinstance(cause, ApplicationError):
            raise Conflict(cause.message) from error
        raise
    except WorkflowUpdateRPCTimeoutOrCancelledError as error:
        raise Unavailable("the workflow engine did not answer in time; try again") from error
    except WorkflowQueryFailedError as error:
        # The worker could not answer now (say, it refused an early workflow task on restart).
        log.warning("order read failed in the worker")
        raise Unavailable("the order cannot be read at this moment; try again") from error
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(not_found) from error
        if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise Unavailable("the workflow engine is unreachable") from error
        # Anything else is the engine's trouble, not the caller's: never a 500 for them.
        log.error("workflow engine error", status=error.status.name, error=error.message)
        raise Unavailable("the workflow engine could not take the request; try again") from error
    except RuntimeError as error:
        # The lazily connected client reports an unreachable engine this way.
        if "client connect" in str(error).lower():
            raise Unavailable("the workflow engine is unreachable") from error
        raise


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def domain_error(_: Request, error: ProblemError) -> JSONResponse:
        return problem(error.status, error.title, error.detail, **error.extra)

    @app.exception_handler(RequestValidationError)
    async def malformed_body(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(part) for part in e["loc"]), "message": e["msg"]}
            for e in error.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, "Unprocessable Content", detail, errors=errors)

    @app.exception_handler(ValidationError)
    async def invalid_value(_: Request, error: ValidationError) -> JSONResponse:
        # A value the body's model let through but a domain model refused: still the caller's.
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return problem(422, "Unprocessable Content", detail)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 413:  # a body sent in chunks, found too large while read
            return content_too_large()
        if error.status_code == 400:  # FastAPI's answer to a body that is not UTF-8 JSON text
            return problem(422, "Unprocessable Content", "the body is not JSON text in UTF-8")
        return problem(error.status_code, str(error.detail), str(error.detail))

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def database_down(_: Request, error: Exception) -> JSONResponse:
        log.error("database error", error_type=type(error).__name__)
        return problem(503, "Service Unavailable", "the database is unreachable")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.error("unhandled error", error_type=type(error).__name__, exc_info=error)
        return problem(500, "Internal Server Error", "an unexpected error; it has been logged")
