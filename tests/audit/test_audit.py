"""Audits of recorded order histories (tests/histories/): reading exports, replaying them, the
timeline told from them, and the records store checked against them. No engine needed."""

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.records import RecordActivities
from core.archive import archive_order_id, history_json, is_closed, load_archived
from core.audit import (
    AuditedWorkflow,
    OrderHistory,
    Source,
    UnreadableExport,
    build_timeline,
    compare_records,
    decode,
    export_order,
    failure_message,
    local_activity,
    read_export,
    replay,
)
from core.temporal import converter
from models.order import OrderEvent, RecordInput, Stage
from models.records import EventRow, HistoryArchiveRow
from tests.audit.incompatible import INCOMPATIBLE_WORKFLOWS
from tests.factories import create_record_input
from workflows.registry import WORKFLOWS

HISTORIES = Path(__file__).parent.parent / "histories"


def recorded(name: str) -> WorkflowHistory:
    [history] = read_export((HISTORIES / f"{name}.json").read_text(), default_id=name)
    return history


def create_order_history(*names: str) -> OrderHistory:
    """A recorded order (the first name) and the workflows it started, as if fetched."""
    workflows = tuple(AuditedWorkflow(recorded(name), Source.ENGINE) for name in names)
    return OrderHistory(order_id=names[0], workflows=workflows)


async def written_records(history: WorkflowHistory) -> list[RecordInput]:
    """What the history's records writes were given, as the activity reads it: the input of a
    record_order_event, or (a local activity's input is not kept) each event a batch of
    record_order_events wrote, with a read-model row of the factory's."""
    inputs = []
    for event in history.events:
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name == "record_order_event":
            [value] = await converter().decode(attributes.input.payloads, [RecordInput])
            inputs.append(value)
        elif (ran := await local_activity(event)) and ran[0] == "record_order_events":
            for logged in ran[1]:
                written = OrderEvent.model_validate(logged)
                row = create_record_input(written.seq, Stage.BOOKED, order_id=written.order_id)
                inputs.append(row.model_copy(update={"event": written}))
    return inputs


class TestReadExport:
    def test_cli_history_is_read_under_the_file_name(self) -> None:
        """A history as `temporal workflow show --output json` prints it is one workflow."""
        text = (HISTORIES / "happy_path.json").read_text()
        [history] = read_export(text, default_id="happy_path")
        assert history.workflow_id == "happy_path"
        assert history.events == WorkflowHistory.from_json("happy_path", text).events

    def test_api_export_holds_the_order_and_the_workflows_it_started(self) -> None:
        """The order's own history first, its claim order after it, each under its own id."""
        order = create_order_history("warranty_claim", "warranty_claim-W1")
        document = json.loads(json.dumps(export_order(order)))
        histories = read_export(document, default_id="ignored")
        assert [h.workflow_id for h in histories] == ["warranty_claim", "warranty_claim-W1"]
        assert [h.events for h in histories] == [w.history.events for w in order.workflows]

    def test_api_export_is_itself_a_history_the_sdk_reads(self) -> None:
        """`WorkflowHistory.from_json` reads the export as the order's own history."""
        order = create_order_history("warranty_claim", "warranty_claim-W1")
        document = json.dumps(export_order(order))
        assert WorkflowHistory.from_json("warranty_claim", document).events == (
            order.workflows[0].history.events
        )

    def test_export_keeps_payloads_encoded_as_stored(self) -> None:
        """Payloads are the engine's bytes (base64), not decoded values."""
        order = create_order_history("happy_path")
        started = export_order(order)["events"][0]["workflowExecutionStartedEventAttributes"]
        payload = started["input"]["payloads"][0]
        assert set(payload) == {"metadata", "data"}
        original = order.workflows[0].history.events[0]
        assert (
            payload
            == json.loads(json.dumps(WorkflowHistory("x", [original]).to_json_dict()["events"][0]))[
                "workflowExecutionStartedEventAttributes"
            ]["input"]["payloads"][0]
        )

    @pytest.mark.parametrize(
        ("document", "reason"),
        [
            ("not json", "not JSON"),
            ("[1, 2]", "'events' list"),
            ('{"x": 1}', "'events' list"),
            ('{"events": []}', "no events"),
            ('{"events": [{"eventId": "x"}]}', "not a workflow history"),
            ('{"events": [{"eventId": "1", "eventType": "EVENT_TYPE_TIMER_FIRED"}]}', "start"),
            ('{"events": [1]}', "not a workflow history"),
        ],
    )
    def test_anything_else_is_unreadable(self, document: str, reason: str) -> None:
        """A file that is not a history says why, instead of replaying as nothing."""
        with pytest.raises(UnreadableExport, match=reason):
            read_export(document, default_id="x")


class TestReplay:
    @pytest.mark.parametrize("name", ["happy_path", "warranty_claim", "complaint-C1"])
    async def test_recorded_order_replays_on_the_current_code(self, name: str) -> None:
        """Every event is reproduced."""
        history = recorded(name)
        [outcome] = await replay([history], WORKFLOWS)
        assert outcome.error is None
        assert outcome.deterministic
        assert (outcome.workflow_id, outcome.events) == (name, len(history.events))
        assert outcome.events_replayed == len(history.events)

    async def test_activity_inserted_in_the_middle_is_caught(self) -> None:
        """Code that does something the order's history did not is named with the reason."""
        history = recorded("happy_path")
        [outcome] = await replay([history], INCOMPATIBLE_WORKFLOWS)
        assert not outcome.deterministic
        assert outcome.error is not None
        assert "Nondeterminism" in outcome.error
        assert outcome.failed_at_event is not None
        assert 0 < outcome.events_replayed < len(history.events)

    async def test_order_never_checked_in_still_replays_on_that_code(self) -> None:
        """The change only breaks orders that reached it: a cancelled one is unaffected."""
        [outcome] = await replay([recorded("cancellation")], INCOMPATIBLE_WORKFLOWS)
        assert outcome.deterministic, outcome.error

    async def test_each_workflow_is_judged_on_its_own(self) -> None:
        """One bad history does not hide a good one next to it."""
        outcomes = await replay(
            [recorded("cancellation"), recorded("happy_path")], INCOMPATIBLE_WORKFLOWS
        )
        assert [(o.workflow_id, o.deterministic) for o in outcomes] == [
            ("cancellation", True),
            ("happy_path", False),
        ]


class TestTimeline:
    async def test_every_accepted_action_says_who_when_and_with_what(self) -> None:
        """The technician's check-in and the customer's acceptance, with their arguments."""
        timeline = await build_timeline(create_order_history("happy_path"))
        actions = [entry for entry in timeline if entry.kind == "action"]
        check_in = next(entry for entry in actions if entry.name == "check_in")
        assert check_in.actor == "technician:test-technician"
        assert check_in.arguments[0]["actor"]["technician_id"] == "T-100"
        accepted = next(entry for entry in actions if entry.name == "record_acceptance")
        assert accepted.actor == "customer:test-customer"
        assert accepted.arguments[0]["accepted"] is True
        assert accepted.at > check_in.at
        assert [entry.at for entry in timeline] == sorted(entry.at for entry in timeline)

    async def test_timers_fired_and_activity_results_are_shown(self) -> None:
        """The survey's day and the warranty reminder's wait, and what activities returned."""
        timeline = await build_timeline(create_order_history("happy_path"))
        timers = [entry.detail or "" for entry in timeline if entry.kind == "timer"]
        assert any(detail.endswith("for 1 day, 0:00:00") for detail in timers)
        assert any(detail.endswith("for 83 days, 0:00:00") for detail in timers)
        activities = [entry for entry in timeline if entry.kind == "activity"]
        # The records writes are local activities: the history keeps the events they wrote.
        recorded_batches = [e for e in activities if e.name == "record_order_events"]
        assert recorded_batches[0].result[0]["action"] == "booked"
        written = [event["seq"] for batch in recorded_batches for event in batch.result]
        assert written == list(range(1, len(written) + 1))
        started, closed = timeline[0], timeline[-1]
        assert (started.kind, started.name, started.actor) == (
            "started",
            "RepairOrderWorkflow",
            "staff:test-staff",
        )
        assert (closed.kind, closed.result) == (
            "closed",
            {"order_id": "happy_path", "stage": "closed"},
        )

    async def test_child_workflows_are_told_in_the_same_timeline(self) -> None:
        """The claim order's actions appear between the original's, in time order."""
        timeline = await build_timeline(create_order_history("warranty_claim", "warranty_claim-W1"))
        child_started = next(entry for entry in timeline if entry.kind == "child started")
        assert child_started.name == "warranty_claim-W1"
        claim_actions = [
            entry.name
            for entry in timeline
            if entry.workflow_id == "warranty_claim-W1" and entry.kind == "action"
        ]
        assert claim_actions[:2] == ["assign", "check_in"]
        settled = next(entry for entry in timeline if entry.kind == "signal")
        assert (settled.name, settled.arguments) == ("claim_settled", ["warranty_claim-W1"])

    async def test_failure_messages_are_read_through_the_codec(self) -> None:
        """A failure's message is stored encrypted; the timeline shows it decrypted."""
        failure = Failure()
        await converter().encode_failure(
            ApplicationError("the store refused the value", type="RecordRejected"), failure
        )
        assert b"refused" not in failure.SerializeToString()
        assert await failure_message(failure) == "the store refused the value"
        assert failure.message == "Encoded failure"  # read, not decoded in place

    async def test_payload_the_converter_cannot_read_is_named_not_fatal(self) -> None:
        """A payload this process cannot read (a key rotated out of its ring, an unknown
        encoding) is shown by its encoding."""
        [payload] = await converter().encode([{"a": 1}])
        payload.metadata["encryption-key-id"] = b"rotated-out"
        unknown = Payload(metadata={"encoding": b"binary/zstd"}, data=b"\x28\xb5")
        assert await decode([payload, unknown]) == [
            {"undecodable": "binary/encrypted"},
            {"undecodable": "binary/zstd"},
        ]


@pytest.fixture
def records(records_store: AsyncEngine) -> AsyncEngine:
    """A fresh records store on SQLite and on PostgreSQL."""
    return records_store


async def record_as_the_worker_did(engine: AsyncEngine, *names: str) -> None:
    """Run the real records activity on every event the recorded histories wrote."""
    activities = RecordActivities(engine)
    for name in names:
        for record in await written_records(recorded(name)):
            await ActivityEnvironment().run(activities.record_order_event, record)


async def check(engine: AsyncEngine, order: OrderHistory) -> list[dict[str, Any]]:
    async with AsyncSession(engine) as session:
        return [d.model_dump(mode="json") for d in await compare_records(order, session)]


class TestCompareRecords:
    async def test_records_written_by_the_worker_match_the_history(
        self, records: AsyncEngine
    ) -> None:
        """Nothing to report when the event log is as the workflow wrote it."""
        await record_as_the_worker_did(records, "warranty_claim", "warranty_claim-W1")
        assert (
            await check(records, create_order_history("warranty_claim", "warranty_claim-W1")) == []
        )

    async def test_deleted_row_is_missing(self, records: AsyncEngine) -> None:
        """The row the history wrote and the store no longer holds is named by its seq."""
        await record_as_the_worker_did(records, "happy_path")
        async with AsyncSession(records) as session, session.begin():
            await session.execute(
                delete(EventRow).where(
                    col(EventRow.order_id) == "happy_path", col(EventRow.seq) == 3
                )
            )
        [discrepancy] = await check(records, create_order_history("happy_path"))
        assert discrepancy["kind"] == "missing"
        assert (discrepancy["order_id"], discrepancy["seq"]) == ("happy_path", 3)
        assert discrepancy["expected"]["action"]
        assert discrepancy["found"] is None

    async def test_edited_row_is_altered(self, records: AsyncEngine) -> None:
        """An edited detail shows both what the history wrote and what the store holds."""
        await record_as_the_worker_did(records, "happy_path")
        async with AsyncSession(records) as session, session.begin():
            await session.execute(
                update(EventRow)
                .where(col(EventRow.order_id) == "happy_path", col(EventRow.seq) == 2)
                .values(detail="nothing to see here")
            )
        [discrepancy] = await check(records, create_order_history("happy_path"))
        assert (discrepancy["seq"], discrepancy["kind"]) == (2, "altered")
        assert discrepancy["found"]["detail"] == "nothing to see here"
        assert discrepancy["expected"]["detail"] != "nothing to see here"
        assert discrepancy["expected"]["action"] == discrepancy["found"]["action"]

    async def test_row_the_history_never_wrote_is_extra(self, records: AsyncEngine) -> None:
        """A row added behind the workflow's back, to a finished order, is reported."""
        await record_as_the_worker_did(records, "happy_path")
        last = (await written_records(recorded("happy_path")))[-1]
        forged = last.event.model_copy(
            update={
                "seq": last.event.seq + 1,
                "actor": "staff:someone",
                "action": "refund",
                "detail": "100.00",
            }
        )
        activity = RecordActivities(records).record_order_event
        await ActivityEnvironment().run(activity, last.model_copy(update={"event": forged}))
        [discrepancy] = await check(records, create_order_history("happy_path"))
        assert (discrepancy["seq"], discrepancy["kind"]) == (forged.seq, "extra")
        assert discrepancy["found"]["action"] == "refund"
        assert discrepancy["expected"] is None

    async def test_rows_of_other_orders_are_not_judged(self, records: AsyncEngine) -> None:
        """Another order's event log is not this order's business."""
        await record_as_the_worker_did(records, "happy_path", "rework")
        assert await check(records, create_order_history("happy_path")) == []

    async def test_running_order_rows_newer_than_its_history_are_not_extra(
        self, records: AsyncEngine
    ) -> None:
        """Written after the history was read: not judged until the history catches up."""
        await record_as_the_worker_did(records, "happy_path")
        full = recorded("happy_path")
        local_activities_done = [  # the records writes and messages
            i
            for i, e in enumerate(full.events)
            if e.marker_recorded_event_attributes.marker_name == "core_local_activity"
        ]
        cut = WorkflowHistory("happy_path", full.events[: local_activities_done[2] + 1])
        running = OrderHistory("happy_path", (AuditedWorkflow(cut, Source.ENGINE),))
        assert not running.workflows[0].closed
        assert await check(records, running) == []


class TestArchiveRows:
    async def test_archived_history_reads_back_as_stored(self, records: AsyncEngine) -> None:
        """The archive keeps the history event for event."""
        history = recorded("complaint-C1")
        async with AsyncSession(records) as session, session.begin():
            session.add(
                HistoryArchiveRow(
                    workflow_id="complaint-C1",
                    run_id=history.run_id,
                    order_id=archive_order_id("complaint-C1"),
                    history_json=history_json(history),
                    archived_at=history.events[-1].event_time.ToDatetime().astimezone(),
                )
            )
        async with AsyncSession(records) as session:
            archived = await load_archived(session, "complaint-C1")
            other_run = await load_archived(session, "complaint-C1", run_id="another-run")
        assert archived is not None
        assert archived.events == history.events
        assert other_run is None
        assert is_closed(archived)

    def test_complaint_is_archived_under_its_order(self) -> None:
        """A complaint belongs to its order; a claim order is an order of its own."""
        assert archive_order_id("RF261124-7K2M9Q-C2") == "RF261124-7K2M9Q"
        assert archive_order_id("RF261124-7K2M9Q-W1") == "RF261124-7K2M9Q-W1"
        assert archive_order_id("RF261124-7K2M9Q-W1-C1") == "RF261124-7K2M9Q-W1"
