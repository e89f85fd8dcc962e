from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import SettingsDep, TemporalDep
from api.errors import problem
from core.queries import records_reachable
from core.temporal import TROUBLE, count_trouble

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def liveness() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readiness(request: Request, temporal: TemporalDep, settings: SettingsDep) -> JSONResponse:
    """Ready when both the workflow engine and the records store answer. Also says how many
    running workflows (orders, claims, complaints) have a workflow task that keeps failing
    (such an order is stuck until the worker can run it, and needs an operator, not a retry),
    and how many orders have a records or notification write that keeps failing (their
    events wait, in order, and are written once the cause is gone). `workflow_engine` and
    `database` say which side is up, also in the 503."""
    counts: dict[str, int | None] = dict.fromkeys(TROUBLE)
    try:
        await temporal.service_client.check_health()
    except Exception:
        engine_up = False
    else:
        engine_up = True
        counts = await count_trouble(temporal, settings.task_queue)
    database_up = await records_reachable(request.app.state.engine)
    sides = {
        "workflow_engine": "up" if engine_up else "down",
        "database": "up" if database_up else "down",
    }
    down = [name.replace("_", " ") for name, state in sides.items() if state == "down"]
    if down:
        return problem(503, "Service Unavailable", f"unreachable: {', '.join(down)}", **sides)
    return JSONResponse({"status": "ready", **sides, **counts})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request, temporal: TemporalDep, settings: SettingsDep) -> Response:
    """Prometheus metrics: requests by route and status with latency histograms, open orders
    by stage, open orders with an SLA breach by priority, failed notifications, orders with
    stalled writes and workflows with a failing task (NaN while their source is down)."""
    app = request.app
    body = await app.state.metrics.scrape(app.state.engine, temporal, settings.task_queue)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
