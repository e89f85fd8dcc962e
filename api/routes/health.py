from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import TemporalDep
from api.errors import problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def liveness() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readiness(request: Request, temporal: TemporalDep) -> JSONResponse:
    """Ready when both the workflow engine and the records store answer."""
    down = []
    try:
        await temporal.service_client.check_health()
    except Exception:
        down.append("workflow engine")
    try:
        async with request.app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        down.append("database")
    if down:
        return problem(503, "Service Unavailable", f"unreachable: {', '.join(down)}")
    return JSONResponse({"status": "ready"})
