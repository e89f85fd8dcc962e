"""Auditing an order from the engine's own history.

An order's history is its workflow's and those of the workflows it started (complaints,
warranty-claim orders, and theirs), fetched from the engine or, once the engine has forgotten
them, from the archive (core/archive.py). From it an audit

- exports it as JSON the Temporal CLI and SDKs read (`WorkflowHistory.from_json`), payloads
  still encoded exactly as the engine stores them;
- replays it against workflow code: the proof that the code reproduces exactly that history;
- tells it as a timeline: every accepted action (who, when, with what arguments), signal,
  timer fired and activity result, payloads decoded with the data converter;
- checks the records store's event log against it: the history says which events the
  `record_order_event` activity wrote; a row that is missing, extra or altered is reported.

The export is the order's own history in the CLI's format (`{"events": [...]}`), so that the
SDK reads the file as it is, with the started workflows beside it under `children`, each in the
same format. Readers of the format ignore fields they do not know.
"""

import json
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from google.protobuf.json_format import ParseError
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

from core.archive import is_closed, load_archived
from core.temporal import converter
from models.records import EventRow

RECORD_ACTIVITY = "record_order_event"  # one event, by orders booked before batches
RECORD_BATCH_ACTIVITY = "record_order_events"  # a local activity: its result names the events
LOCAL_ACTIVITY_MARKER = "core_local_activity"
# Skips the worker's build id: computing it compiles every loaded module (a second or more),
# and a replay does not need one.
REPLAY_BUILD_ID = "repairflow-replay"
_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
_FAILED_EVENT = re.compile(r"HistoryEvent\(id: (\d+)")


class Source(StrEnum):
    ENGINE = "engine"
    ARCHIVE = "archive"
    FILE = "file"


@dataclass(frozen=True)
class AuditedWorkflow:
    history: WorkflowHistory
    source: Source

    @property
    def workflow_id(self) -> str:
        return self.history.workflow_id

    @property
    def run_id(self) -> str:
        return self.history.run_id

    @property
    def workflow_type(self) -> str:
        return self.history.events[0].workflow_execution_started_event_attributes.workflow_type.name

    @property
    def closed(self) -> bool:
        return is_closed(self.history)


@dataclass(frozen=True)
class OrderHistory:
    """The order's workflow first, then every workflow it started, and theirs."""

    order_id: str
    workflows: tuple[AuditedWorkflow, ...]
    # Started workflows that neither the engine nor the archive holds any more.
    missing: tuple[str, ...] = ()


# ---- fetching ------------------------------------------------------------------------------


async def fetch_order_history(
    client: Client, session: AsyncSession, order_id: str
) -> OrderHistory | None:
    """The order's history from the engine, each workflow the engine no longer knows from the
    archive; None if neither knows the order. Other engine errors are raised."""
    root = await _fetch(client, session, order_id, run_id=None)
    if root is None:
        return None
    workflows, missing = [root], []
    pending = list(started_children(root.history))
    seen = {order_id}
    while pending:
        workflow_id, run_id = pending.pop(0)
        if workflow_id in seen:
            continue
        seen.add(workflow_id)
        child = await _fetch(client, session, workflow_id, run_id=run_id)
        if child is None:
            missing.append(workflow_id)
            continue
        workflows.append(child)
        pending.extend(started_children(child.history))
    return OrderHistory(order_id=order_id, workflows=tuple(workflows), missing=tuple(missing))


async def _fetch(
    client: Client, session: AsyncSession, workflow_id: str, *, run_id: str | None
) -> AuditedWorkflow | None:
    try:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    else:
        if history.events:
            return AuditedWorkflow(history, Source.ENGINE)
    archived = await load_archived(session, workflow_id, run_id)
    return AuditedWorkflow(archived, Source.ARCHIVE) if archived is not None else None


def started_children(history: WorkflowHistory) -> Iterable[tuple[str, str]]:
    """(workflow id, run id) of every child workflow the history started."""
    for event in history.events:
        if event.HasField("child_workflow_execution_started_event_attributes"):
            execution = event.child_workflow_execution_started_event_attributes.workflow_execution
            yield execution.workflow_id, execution.run_id


# ---- the export format -----------------------------------------------------------------------


class UnreadableExport(ValueError):
    """Not a history exported by the API or by `temporal workflow show --output json`."""


def export_order(order: OrderHistory) -> dict[str, Any]:
    """The order's history as one JSON document (see the module's doc)."""
    own, *children = order.workflows
    return {
        "order_id": order.order_id,
        **_exported(own),
        "children": [_exported(child) for child in children],
        "missing": list(order.missing),
    }


def _exported(workflow: AuditedWorkflow) -> dict[str, Any]:
    return {
        "workflow_id": workflow.workflow_id,
        "run_id": workflow.run_id,
        "workflow_type": workflow.workflow_type,
        "source": workflow.source.value,
        **workflow.history.to_json_dict(),
    }


def read_export(document: str | dict[str, Any], default_id: str) -> list[WorkflowHistory]:
    """The histories in an exported file: the API's export (the order and its children) or the
    CLI's single history. A history that does not name its workflow is called `default_id`."""
    try:
        parsed = json.loads(document) if isinstance(document, str) else document
    except json.JSONDecodeError as error:
        raise UnreadableExport(f"not JSON ({error})") from None
    if not isinstance(parsed, dict):
        raise UnreadableExport("not a JSON object with an 'events' list")
    children = parsed.get("children", [])
    if not isinstance(children, list):
        raise UnreadableExport("'children' is not a list")
    return [_read_history(entry, default_id) for entry in [parsed, *children]]


def _read_history(entry: Any, default_id: str) -> WorkflowHistory:
    if not isinstance(entry, dict) or not isinstance(entry.get("events"), list):
        raise UnreadableExport("not a JSON object with an 'events' list")
    if not entry["events"]:
        raise UnreadableExport("the history has no events")
    try:
        history = WorkflowHistory.from_json(default_id, {"events": entry["events"]})
    except (ParseError, ValueError) as error:
        raise UnreadableExport(f"not a workflow history ({error})") from None
    first = history.events[0]
    if not first.HasField("workflow_execution_started_event_attributes"):
        raise UnreadableExport("the history does not begin with the workflow's start")
    named = (
        entry.get("workflow_id") or first.workflow_execution_started_event_attributes.workflow_id
    )
    return WorkflowHistory(named or default_id, history.events)


# ---- replay ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayOutcome:
    workflow_id: str
    run_id: str
    workflow_type: str
    events: int
    error: str | None = None
    failed_at_event: int | None = None  # the history event the code disagreed with, if known

    @property
    def deterministic(self) -> bool:
        return self.error is None

    @property
    def events_replayed(self) -> int:
        """Events the code reproduced: all of them, or those before the disagreement."""
        if self.deterministic:
            return self.events
        return self.failed_at_event - 1 if self.failed_at_event else 0


async def replay_each(
    histories: AsyncIterator[WorkflowHistory], workflows: Sequence[type]
) -> AsyncIterator[ReplayOutcome]:
    """Replay each history against the workflow code, in turn, as they arrive."""
    replayer = Replayer(workflows=workflows, data_converter=converter(), build_id=REPLAY_BUILD_ID)
    async with replayer.workflow_replay_iterator(histories) as results:
        async for result in results:
            history, failure = result.history, result.replay_failure
            audited = AuditedWorkflow(history, Source.FILE)
            error = failure_reason(failure) if failure is not None else None
            failed_at = _FAILED_EVENT.search(error) if error else None
            yield ReplayOutcome(
                workflow_id=history.workflow_id,
                run_id=audited.run_id,
                workflow_type=audited.workflow_type,
                events=len(history.events),
                error=error,
                failed_at_event=int(failed_at.group(1)) if failed_at else None,
            )


async def replay(
    histories: Sequence[WorkflowHistory], workflows: Sequence[type]
) -> list[ReplayOutcome]:
    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    return [outcome async for outcome in replay_each(each(), workflows)]


def failure_reason(failure: BaseException) -> str:
    """The engine's own words for a failed replay, without the wrapping around them."""
    text = str(failure)
    message = _CORE_MESSAGE.search(text)
    return message.group(1).replace('\\"', '"') if message else text


# ---- the timeline ------------------------------------------------------------------------------


Kind = Literal[
    "started",
    "action",
    "action failed",
    "signal",
    "timer",
    "activity",
    "activity failed",
    "child started",
    "closed",
]


class AuditEntry(BaseModel):
    """One thing the history shows happening to the order."""

    at: datetime
    workflow_id: str
    event_id: int
    kind: Kind
    name: str  # the workflow type, action, signal, timer, activity or child workflow
    actor: str | None = None  # role:subject, where the input names who acted
    arguments: list[Any] = Field(default_factory=list)
    result: Any = None
    detail: str | None = None


async def build_timeline(order: OrderHistory) -> list[AuditEntry]:
    """Everything the histories show, in time order (the order's workflow first at a tie)."""
    entries: list[AuditEntry] = []
    for workflow in order.workflows:
        entries.extend(await _workflow_timeline(workflow.history))
    return sorted(entries, key=lambda entry: entry.at)


async def _workflow_timeline(history: WorkflowHistory) -> list[AuditEntry]:
    by_id = {event.event_id: event for event in history.events}
    entries: list[AuditEntry] = []

    def add(event: HistoryEvent, kind: Kind, name: str, **fields: Any) -> None:
        at = event.event_time.ToDatetime(tzinfo=UTC)
        entries.append(
            AuditEntry(
                at=at,
                workflow_id=history.workflow_id,
                event_id=event.event_id,
                kind=kind,
                name=name,
                **fields,
            )
        )

    for event in history.events:
        match event.WhichOneof("attributes"):
            case "workflow_execution_started_event_attributes":
                started = event.workflow_execution_started_event_attributes
                arguments = await decode(started.input.payloads)
                add(
                    event,
                    "started",
                    started.workflow_type.name,
                    actor=_actor(arguments),
                    arguments=arguments,
                )
            case "workflow_execution_update_accepted_event_attributes":
                request = event.workflow_execution_update_accepted_event_attributes.accepted_request
                arguments = await decode(request.input.args.payloads)
                add(
                    event,
                    "action",
                    request.input.name,
                    actor=_actor(arguments),
                    arguments=arguments,
                )
            case "workflow_execution_update_completed_event_attributes":
                completed = event.workflow_execution_update_completed_event_attributes
                if completed.outcome.HasField("failure"):
                    accepted = by_id.get(completed.accepted_event_id)
                    name = completed.meta.update_id
                    if accepted is not None:
                        acceptance = accepted.workflow_execution_update_accepted_event_attributes
                        name = acceptance.accepted_request.input.name
                    reason = await failure_message(completed.outcome.failure)
                    add(event, "action failed", name, detail=reason)
            case "workflow_execution_signaled_event_attributes":
                signaled = event.workflow_execution_signaled_event_attributes
                arguments = await decode(signaled.input.payloads)
                add(
                    event,
                    "signal",
                    signaled.signal_name,
                    actor=_actor(arguments),
                    arguments=arguments,
                )
            case "timer_fired_event_attributes":
                fired = event.timer_fired_event_attributes
                set_by = by_id.get(fired.started_event_id)
                detail = None
                if set_by is not None:
                    timeout = set_by.timer_started_event_attributes.start_to_fire_timeout
                    since = set_by.event_time.ToDatetime(tzinfo=UTC)
                    detail = f"set at {since.isoformat()} for {timeout.ToTimedelta()}"
                add(event, "timer", f"timer {fired.timer_id}", detail=detail)
            case "activity_task_completed_event_attributes":
                completed_activity = event.activity_task_completed_event_attributes
                name, arguments = await _scheduled(by_id, completed_activity.scheduled_event_id)
                results = await decode(completed_activity.result.payloads)
                add(
                    event,
                    "activity",
                    name,
                    arguments=arguments,
                    result=results[0] if results else None,
                )
            case (
                "activity_task_failed_event_attributes"
                | "activity_task_timed_out_event_attributes"
                | "activity_task_canceled_event_attributes"
            ) as which:
                ended = getattr(event, which)
                name, arguments = await _scheduled(by_id, ended.scheduled_event_id)
                failure = getattr(ended, "failure", None)
                add(
                    event,
                    "activity failed",
                    name,
                    arguments=arguments,
                    detail=await failure_message(failure) if failure is not None else "cancelled",
                )
            case "marker_recorded_event_attributes":
                if (ran := await local_activity(event)) is not None:
                    name, result = ran
                    add(event, "activity", name, result=result)
            case "child_workflow_execution_started_event_attributes":
                child = event.child_workflow_execution_started_event_attributes
                add(
                    event,
                    "child started",
                    child.workflow_execution.workflow_id,
                    detail=child.workflow_type.name,
                )
            case "workflow_execution_completed_event_attributes":
                results = await decode(
                    event.workflow_execution_completed_event_attributes.result.payloads
                )
                add(event, "closed", "completed", result=results[0] if results else None)
            case "workflow_execution_failed_event_attributes":
                failure = event.workflow_execution_failed_event_attributes.failure
                add(event, "closed", "failed", detail=await failure_message(failure))
            case "workflow_execution_terminated_event_attributes":
                terminated = event.workflow_execution_terminated_event_attributes
                add(
                    event,
                    "closed",
                    "terminated",
                    actor=terminated.identity or None,
                    detail=terminated.reason,
                )
            case "workflow_execution_timed_out_event_attributes":
                add(event, "closed", "timed out")
            case "workflow_execution_canceled_event_attributes":
                add(event, "closed", "cancelled")
            case "workflow_execution_continued_as_new_event_attributes":
                add(event, "closed", "continued as new")
    return entries


async def _scheduled(by_id: dict[int, HistoryEvent], event_id: int) -> tuple[str, list[Any]]:
    scheduled = by_id.get(event_id)
    if scheduled is None:
        return "unknown activity", []
    attributes = scheduled.activity_task_scheduled_event_attributes
    return attributes.activity_type.name, await decode(attributes.input.payloads)


async def local_activity(event: HistoryEvent) -> tuple[str, Any] | None:
    """The name and result of the local activity a marker records, if it records one that
    completed (the history keeps a local activity's result, not its input)."""
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != LOCAL_ACTIVITY_MARKER or marker.HasField("failure"):
        return None
    try:
        data = json.loads(marker.details["data"].payloads[0].data)
    except (KeyError, IndexError, ValueError):
        return None
    results = await decode(marker.details["result"].payloads) if "result" in marker.details else []
    return str(data.get("activity_type", "local activity")), results[0] if results else None


async def failure_message(failure: Failure) -> str:
    """A failure's message: the codec keeps it encrypted in the failure's encoded attributes.
    One this process cannot decrypt shows as stored."""
    decoded = Failure()
    decoded.CopyFrom(failure)  # decoding works in place; the history stays as stored
    try:
        error = await converter().decode_failure(decoded)
    except Exception:  # a key this process does not have
        return failure.message
    return error.message if isinstance(error, FailureError) else str(error)


async def decode(payloads: Iterable[Payload]) -> list[Any]:
    """Payloads as the data converter reads them, as JSON values; one it cannot read is named
    by its encoding rather than failing the whole audit."""
    values: list[Any] = []
    for payload in payloads:
        try:
            [value] = await converter().decode([payload])
        except Exception:  # an encoding or codec this process does not have
            encoding = payload.metadata.get("encoding", b"").decode(errors="replace")
            value = {"undecodable": encoding}
        values.append(value.hex() if isinstance(value, bytes) else value)
    return values


def _actor(arguments: list[Any]) -> str | None:
    """Who acted, as the order's timeline writes it (role:subject)."""
    first = arguments[0] if arguments else None
    if not isinstance(first, dict):
        return None
    for key in ("actor", "booked_by", "filed_by"):
        actor = first.get(key)
        if isinstance(actor, dict) and "role" in actor and "subject" in actor:
            return f"{actor['role']}:{actor['subject']}"
        if isinstance(actor, str):
            return actor
    return None


# ---- the records store against the history ------------------------------------------------------


class LoggedEvent(BaseModel):
    """One event of the order's event log, as the history wrote it or as the store holds it."""

    at: datetime
    actor: str
    action: str
    detail: str = ""


class Discrepancy(BaseModel):
    order_id: str
    seq: int
    kind: Literal["missing", "extra", "altered"]
    expected: LoggedEvent | None = None  # what the history wrote
    found: LoggedEvent | None = None  # what the records store holds


@dataclass
class _Written:
    """The events a workflow's history wrote, per order: done, and still being written."""

    done: dict[tuple[str, int], LoggedEvent]
    in_flight: dict[tuple[str, int], LoggedEvent]


async def compare_records(order: OrderHistory, session: AsyncSession) -> list[Discrepancy]:
    """Where the records store's event log disagrees with what the history says was written.

    For a workflow still running, rows newer than its history (a higher seq than any event it
    has written so far) are not judged: they were written after the history was read.
    """
    written = _Written(done={}, in_flight={})
    closed: dict[str, bool] = {order.order_id: order.workflows[0].closed}
    for workflow in order.workflows:
        for key in await _events_written(workflow.history, written):
            closed[key[0]] = workflow.closed
    expected = written.done | written.in_flight
    newest = {
        order_id: max((seq for o, seq in expected if o == order_id), default=0)
        for order_id in closed
    }
    rows = await session.scalars(select(EventRow).where(col(EventRow.order_id).in_(sorted(closed))))
    found = {
        (row.order_id, row.seq): LoggedEvent(
            at=row.at, actor=row.actor, action=row.action, detail=row.detail or ""
        )
        for row in rows
    }
    discrepancies = []
    for key in sorted(expected.keys() | found.keys()):
        order_id, seq = key
        want, have = expected.get(key), found.get(key)
        if want is None and have is not None:
            if closed[order_id] or seq <= newest[order_id]:
                discrepancies.append(
                    Discrepancy(order_id=order_id, seq=seq, kind="extra", found=have)
                )
        elif want is not None and have is None:
            if key in written.done:
                discrepancies.append(
                    Discrepancy(order_id=order_id, seq=seq, kind="missing", expected=want)
                )
        elif want != have:
            discrepancies.append(
                Discrepancy(order_id=order_id, seq=seq, kind="altered", expected=want, found=have)
            )
    return discrepancies


async def _events_written(history: WorkflowHistory, written: _Written) -> list[tuple[str, int]]:
    """Add the events the history's record activities wrote (or are writing); their keys."""
    scheduled: dict[int, tuple[tuple[str, int], LoggedEvent]] = {}
    keys = []
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_type.name != RECORD_ACTIVITY:
                continue
            [record] = await decode(attributes.input.payloads)
            if not isinstance(record, dict) or not isinstance(record.get("event"), dict):
                continue  # not readable by this process's data converter
            logged = record["event"]
            key = (logged["order_id"], int(logged["seq"]))
            scheduled[event.event_id] = (key, LoggedEvent.model_validate(logged))
            keys.append(key)
        elif event.HasField("marker_recorded_event_attributes"):
            ran = await local_activity(event)
            if ran is None or ran[0] != RECORD_BATCH_ACTIVITY or not isinstance(ran[1], list):
                continue
            for logged in ran[1]:
                key = (logged["order_id"], int(logged["seq"]))
                written.done[key] = LoggedEvent.model_validate(logged)
                keys.append(key)
        elif event.HasField("activity_task_completed_event_attributes"):
            done = scheduled.pop(
                event.activity_task_completed_event_attributes.scheduled_event_id, None
            )
            if done is not None:
                written.done[done[0]] = done[1]
    written.in_flight.update(scheduled.values())
    return keys
