"""Audit routes: an order's engine history, exported, and replayed against the current code."""

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import OrderId, SessionDep, TemporalDep, role
from api.errors import NotFound, engine_errors, problems
from core.audit import (
    AuditEntry,
    Discrepancy,
    OrderHistory,
    Source,
    build_timeline,
    compare_records,
    export_order,
    fetch_order_history,
    replay,
)
from core.personal import redact
from models.order import Actor, Role
from workflows.registry import WORKFLOWS

router = APIRouter(prefix="/v1/orders", tags=["audit"])

Auditor = Annotated[Actor, Depends(role(Role.AUDITOR))]


def replay_workflows() -> Sequence[type]:
    """The workflow code a replay runs against: the code the worker runs."""
    return WORKFLOWS


async def order_history(
    order_id: OrderId, caller: Auditor, temporal: TemporalDep, session: SessionDep
) -> OrderHistory:
    """The order's history from the engine, or from the archive once the engine forgot it."""
    with engine_errors():
        history = await fetch_order_history(temporal, session, order_id)
    if history is None:
        raise NotFound("no such order")
    return history


AuditedOrder = Annotated[OrderHistory, Depends(order_history)]
ReplayWorkflows = Annotated[Sequence[type], Depends(replay_workflows)]


class WorkflowReplay(BaseModel):
    workflow_id: str
    run_id: str
    workflow_type: str
    source: Source
    events: int
    deterministic: bool
    error: str | None = None


class ReplayReport(BaseModel):
    order_id: str
    deterministic: bool
    error: str | None = None
    events_replayed: int
    workflows: list[WorkflowReplay]
    missing_workflows: list[str]
    timeline: list[AuditEntry]
    records_match: bool
    discrepancies: list[Discrepancy]


HISTORY_EXAMPLE = {
    "order_id": "RF261124-7K2M9Q",
    "workflow_id": "RF261124-7K2M9Q",
    "run_id": "0196...",
    "workflow_type": "RepairOrderWorkflow",
    "source": "engine",
    "events": [{"eventId": "1", "eventType": "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"}],
    "children": [],
    "missing": [],
}


@router.get(
    "/{order_id}/history",
    responses=problems(401, 403, 404, 503)
    | {
        200: {
            "description": "The order's history as `temporal workflow show --output json` "
            "prints it (`events`), its child workflows' under `children`",
            "content": {"application/json": {"example": HISTORY_EXAMPLE}},
        }
    },
)
async def export_history(order: AuditedOrder) -> JSONResponse:
    """The engine's full event history of the order and of the workflows it started
    (complaints, warranty-claim orders), payloads encoded exactly as the engine stores them.
    `WorkflowHistory.from_json(order_id, body)` reads it; so does `python worker.py replay`."""
    return JSONResponse(export_order(order))


@router.post("/{order_id}/replay", responses=problems(401, 403, 404, 503))
async def replay_history(
    order: AuditedOrder, workflows: ReplayWorkflows, session: SessionDep
) -> ReplayReport:
    """Replay the order's history against the current workflow code, tell it as a timeline
    (customers' personal data redacted) and check the records store's event log against it."""
    outcomes = await replay([w.history for w in order.workflows], workflows)
    discrepancies = await compare_records(order, session)
    failures = [f"{o.workflow_id}: {o.error}" for o in outcomes if o.error is not None]
    return ReplayReport(
        order_id=order.order_id,
        deterministic=not failures,
        error="; ".join(failures) or None,
        events_replayed=sum(o.events_replayed for o in outcomes),
        workflows=[
            WorkflowReplay(
                workflow_id=outcome.workflow_id,
                run_id=outcome.run_id,
                workflow_type=outcome.workflow_type,
                source=workflow.source,
                events=outcome.events,
                deterministic=outcome.deterministic,
                error=outcome.error,
            )
            for workflow, outcome in zip(order.workflows, outcomes, strict=True)
        ],
        missing_workflows=list(order.missing),
        timeline=[
            AuditEntry.model_validate(await redact(entry.model_dump(mode="json")))
            for entry in await build_timeline(order)
        ],
        records_match=not discrepancies,
        discrepancies=discrepancies,
    )
