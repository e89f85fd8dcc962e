"""The history archive: every closed workflow's full engine history, kept in the records store
(`HistoryArchiveRow`), so that an order stays auditable after the engine's retention period has
removed it from the namespace.

The worker archives in the background (`keep_archiving`): it lists the closed workflows of its
task queue, skips those already archived and stores the others' histories exactly as the engine
holds them (proto JSON, payloads still encoded). Closed histories never change, so archiving
twice stores the same thing; several workers may archive at once. An order's row also keeps
its final state as the workflow answers it (`final_order`), which the API reads once the engine
no longer has the order.
"""

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select
from temporalio.client import Client, WorkflowExecution, WorkflowHistory, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from models.complaint import complaint_order_id
from models.order import Order, order_workflow_id
from models.records import HistoryArchiveRow

log = structlog.get_logger(__name__)

# A round looks back this far past the start of the last complete one: visibility lags the
# engine by a moment, and clocks differ.
OVERLAP = timedelta(hours=1)
BATCH = 100
ORDER_WORKFLOW = "RepairOrderWorkflow"  # the workflow type whose final state is kept too
CLOSE_EVENTS = frozenset(
    {
        "workflow_execution_completed_event_attributes",
        "workflow_execution_failed_event_attributes",
        "workflow_execution_timed_out_event_attributes",
        "workflow_execution_canceled_event_attributes",
        "workflow_execution_terminated_event_attributes",
        "workflow_execution_continued_as_new_event_attributes",
    }
)


def is_closed(history: WorkflowHistory) -> bool:
    """Whether the history ends with the workflow's close: nothing can be added to it."""
    return bool(history.events) and history.events[-1].WhichOneof("attributes") in CLOSE_EVENTS


def archive_order_id(workflow_id: str) -> str:
    """The order an archived workflow belongs to: a complaint's order, else the order itself
    (a warranty-claim order is an order of its own)."""
    return complaint_order_id(workflow_id) or workflow_id


def history_json(history: WorkflowHistory) -> str:
    """The history as `temporal workflow show --output json` prints it, without the indent."""
    return json.dumps(history.to_json_dict(), separators=(",", ":"))


async def load_archived(
    session: AsyncSession, workflow_id: str, run_id: str | None = None
) -> WorkflowHistory | None:
    """The archived history of a workflow (of that run, if one is named)."""
    row = await session.get(HistoryArchiveRow, workflow_id)
    if row is None or (run_id is not None and row.run_id != run_id):
        return None
    return WorkflowHistory.from_json(row.workflow_id, row.history_json)


async def load_final_order(session: AsyncSession, order_id: str) -> Order | None:
    """The archived final state of a closed order, if it was archived with one."""
    row = await session.get(HistoryArchiveRow, order_workflow_id(order_id))
    if row is None or row.final_order is None:
        return None
    return Order.model_validate_json(row.final_order)


@dataclass(frozen=True)
class ArchiveRound:
    archived: int
    failed: int


async def archive_closed_workflows(
    client: Client,
    engine: AsyncEngine,
    *,
    task_queue: str,
    closed_after: datetime | None = None,
) -> ArchiveRound:
    """Archive every closed workflow of the task queue (closed after the instant, if given)
    that is not archived yet. A workflow that cannot be archived now is counted as failed and
    tried again next round."""
    query = f"TaskQueue = {json.dumps(task_queue)} AND ExecutionStatus != 'Running'"
    if closed_after is not None:
        query += f" AND CloseTime > '{closed_after.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}'"
    archived = failed = 0
    batch: list[WorkflowExecution] = []
    async for execution in client.list_workflows(query):
        batch.append(execution)
        if len(batch) == BATCH:
            done = await _archive_batch(client, engine, batch)
            archived, failed, batch = archived + done.archived, failed + done.failed, []
    if batch:
        done = await _archive_batch(client, engine, batch)
        archived, failed = archived + done.archived, failed + done.failed
    return ArchiveRound(archived=archived, failed=failed)


async def _archive_batch(
    client: Client, engine: AsyncEngine, executions: list[WorkflowExecution]
) -> ArchiveRound:
    async with AsyncSession(engine) as session:
        rows = await session.execute(
            select(
                HistoryArchiveRow.workflow_id,
                HistoryArchiveRow.run_id,
                col(HistoryArchiveRow.final_order).is_not(None),
            ).where(col(HistoryArchiveRow.workflow_id).in_([e.id for e in executions]))
        )
        known = {(workflow_id, run_id): kept for workflow_id, run_id, kept in rows.all()}
    archived = failed = 0
    for execution in executions:
        archived = (execution.id, execution.run_id) in known
        # An order archived before final states were kept is archived again, to keep one.
        lacks_final_state = execution.workflow_type == ORDER_WORKFLOW and not known.get(
            (execution.id, execution.run_id)
        )
        if archived and not lacks_final_state:
            continue
        try:
            stored = await archive_workflow(client, engine, execution.id, execution.run_id)
        except (RPCError, OperationalError) as error:
            failed += 1
            log.warning(
                "workflow not archived; next round tries again",
                workflow_id=execution.id,
                error_type=type(error).__name__,
            )
            continue
        archived += stored
    return ArchiveRound(archived=archived, failed=failed)


async def archive_workflow(
    client: Client, engine: AsyncEngine, workflow_id: str, run_id: str | None = None
) -> bool:
    """Store one closed workflow's history (and an order's final state); False if it is not
    closed (or gone) after all."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    try:
        history = await handle.fetch_history()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False  # deleted between the listing and now: nothing left to keep
        raise
    if not is_closed(history):
        return False  # visibility ran ahead of the history; the next round finds it closed
    started = history.events[0].workflow_execution_started_event_attributes
    final_order = None
    if started.workflow_type.name == ORDER_WORKFLOW:
        # A closed workflow answers queries: the worker replays its history to do so. One
        # that cannot be replayed keeps its history archived all the same; the next round
        # tries its final state again.
        try:
            final_order = (await handle.query("details", result_type=Order)).model_dump_json()
        except WorkflowQueryFailedError:
            log.warning("final state not kept; next round tries again", workflow_id=workflow_id)
    row = HistoryArchiveRow(
        workflow_id=workflow_id,
        run_id=history.run_id,
        order_id=archive_order_id(workflow_id),
        history_json=history_json(history),
        archived_at=datetime.now(UTC),
        final_order=final_order,
    )
    try:
        async with AsyncSession(engine) as session, session.begin():
            await session.merge(row)
    except IntegrityError:
        return False  # another worker archived it at the same moment
    return True


async def keep_archiving(
    client: Client, engine: AsyncEngine, *, task_queue: str, interval: timedelta
) -> None:
    """Archive closed workflows every interval, until cancelled.

    The first round looks at every closed workflow the engine still holds; later ones only at
    those closed since the last complete round began (less the overlap), so a round that failed
    for some workflow is looked at again in full.
    """
    closed_after: datetime | None = None
    while True:
        started = datetime.now(UTC)
        try:
            done = await archive_closed_workflows(
                client, engine, task_queue=task_queue, closed_after=closed_after
            )
        except Exception as error:
            # The engine or the database is away (or worse): the worker runs on, the next round
            # tries again. Only the type is logged: a message may quote the data.
            log.warning("archiving round failed", error_type=type(error).__name__)
        else:
            if done.archived:
                log.info("histories archived", workflows=done.archived)
            if not done.failed:
                closed_after = started - OVERLAP
        await asyncio.sleep(interval.total_seconds())
