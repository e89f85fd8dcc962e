import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

# Only RecordEventsWorkflow runs in the workflow sandbox; everything else is the tests' machinery.
with workflow.unsafe.imports_passed_through():
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
    from sqlmodel import col, select

    from activities.records import RecordActivities
    from core.db import create_engine
    from models.order import (
        ComplaintSnapshot,
        ComplaintState,
        RecordInput,
        Stage,
    )
    from models.records import GENESIS_HASH, ComplaintRow, EventRow, OrderRow, first_broken_seq
    from tests.factories import BOOKED_AT, create_record_input
    from tests.store_faults import accept_events, refuse_events_from


@pytest.fixture
def engine(records_store: AsyncEngine) -> AsyncEngine:
    """A fresh records store on each engine (SQLite, PostgreSQL)."""
    return records_store


def create_complaint_snapshot(**overrides: Any) -> ComplaintSnapshot:
    fields: dict[str, Any] = {
        "complaint_id": "RF261120-ABC123-C1",
        "order_id": "RF261120-ABC123",
        "state": ComplaintState.OPEN,
        "tier": 1,
        "category": "late arrival",
        "concerns_work": False,
        "technician_id": None,
        "filed_at": BOOKED_AT,
        "first_reply_due": BOOKED_AT + timedelta(days=1),
        "resolution_due": BOOKED_AT + timedelta(days=3),
        "updated_at": BOOKED_AT,
    }
    return ComplaintSnapshot(**(fields | overrides))


async def record(activities: RecordActivities, input: RecordInput) -> None:
    await ActivityEnvironment().run(activities.record_order_event, input)


async def order_rows(engine: AsyncEngine) -> list[OrderRow]:
    async with AsyncSession(engine) as session:
        return list(await session.scalars(select(OrderRow)))


async def logged_events(engine: AsyncEngine) -> list[tuple[str, int, str]]:
    async with AsyncSession(engine) as session:
        rows = await session.scalars(
            select(EventRow).order_by(col(EventRow.order_id), col(EventRow.seq))
        )
        return [(row.order_id, row.seq, row.action) for row in rows]


class CrashAfterCommit(RecordActivities):
    """Records the event, then fails the first attempt, as a worker lost before it answers."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.attempts: list[tuple[int, int]] = []

    @activity.defn(name="record_order_event")
    async def record_order_event(self, input: RecordInput) -> None:
        await super().record_order_event(input)
        attempt = activity.info().attempt
        self.attempts.append((input.event.seq, attempt))
        if attempt == 1:
            raise RuntimeError("worker lost after the commit")


@workflow.defn
class RecordEventsWorkflow:
    """Hands events to the records store one by one, as the order workflow does."""

    @workflow.run
    async def run(self, inputs: list[RecordInput]) -> None:
        for input in inputs:
            await workflow.execute_activity(
                "record_order_event",
                input,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(milliseconds=10), maximum_attempts=3
                ),
            )


class TestRecordOrderEvent:
    async def test_first_event_creates_the_order_row(self, engine: AsyncEngine) -> None:
        """A booked order appears in lists with its stage and its first event in the log."""
        await record(RecordActivities(engine), create_record_input(1, Stage.BOOKED))
        (row,) = await order_rows(engine)
        assert (row.order_id, row.stage, row.last_seq) == ("RF261120-ABC123", "booked", 1)
        assert await logged_events(engine) == [("RF261120-ABC123", 1, "stage:booked")]

    async def test_retried_event_is_recorded_once(self, engine: AsyncEngine) -> None:
        """An event delivered twice (a retry) leaves one order row and one log entry per event."""
        activities = RecordActivities(engine)
        for input in (
            create_record_input(1, Stage.BOOKED),
            create_record_input(1, Stage.BOOKED),
            create_record_input(2, Stage.DISPATCHING),
            create_record_input(2, Stage.DISPATCHING),
        ):
            await record(activities, input)
        (row,) = await order_rows(engine)
        assert (row.stage, row.last_seq) == ("dispatching", 2)
        assert await logged_events(engine) == [
            ("RF261120-ABC123", 1, "stage:booked"),
            ("RF261120-ABC123", 2, "stage:dispatching"),
        ]

    async def test_event_before_its_predecessor_is_refused_until_it_arrives(
        self, engine: AsyncEngine
    ) -> None:
        """Event 3 before event 2 is refused (retryably) and writes nothing; after 2, it lands."""
        activities = RecordActivities(engine)
        await record(activities, create_record_input(1, Stage.BOOKED))
        with pytest.raises(ApplicationError, match="before event 2") as refused:
            await record(activities, create_record_input(3, Stage.CANCELLED))
        assert refused.value.type == "EventOutOfOrder"
        assert not refused.value.non_retryable
        (row,) = await order_rows(engine)
        assert (row.stage, row.last_seq) == ("booked", 1)
        assert [seq for _, seq, _ in await logged_events(engine)] == [1]

        await record(activities, create_record_input(2, Stage.DISPATCHING))
        await record(activities, create_record_input(3, Stage.CANCELLED))
        (row,) = await order_rows(engine)
        assert (row.stage, row.last_seq) == ("cancelled", 3)
        assert [seq for _, seq, _ in await logged_events(engine)] == [1, 2, 3]

    async def test_values_the_store_refuses_are_rejected_without_a_trace(
        self, engine: AsyncEngine
    ) -> None:
        """An event the database refuses fails as "RecordRejected", not retryable, naming the
        event but none of its values; nothing of it is written, and once the store accepts it
        again the same event lands in its place."""
        activities = RecordActivities(engine)
        await record(activities, create_record_input(1, Stage.BOOKED))
        await refuse_events_from(engine, 2)
        with pytest.raises(ApplicationError) as refused:
            await record(activities, create_record_input(2, Stage.DISPATCHING, region="minhang"))
        assert refused.value.type == "RecordRejected"
        assert refused.value.non_retryable
        assert "event 2 of order RF261120-ABC123" in str(refused.value)
        for value in ("Li Wei", "138 0013", "minhang", "refused by the test"):
            assert value not in str(refused.value)
        (row,) = await order_rows(engine)
        assert (row.stage, row.region, row.last_seq) == ("booked", "pudong", 1)

        await accept_events(engine)
        await record(activities, create_record_input(2, Stage.DISPATCHING, region="minhang"))
        (row,) = await order_rows(engine)
        assert (row.stage, row.region, row.last_seq) == ("dispatching", "minhang", 2)
        assert [seq for _, seq, _ in await logged_events(engine)] == [1, 2]

    async def test_long_details_and_actors_are_recorded_whole(self, engine: AsyncEngine) -> None:
        """A detail built from many long inputs (twenty 200-character part numbers) and a long
        token subject fit the event log on both engines, and the chain covers them."""
        input = create_record_input(1, Stage.BOOKED)
        detail = ", ".join(f"1000 x {'P' * 199}{n}" for n in range(20))
        actor = "staff:" + "s" * 300
        event = input.event.model_copy(update={"detail": detail, "actor": actor})
        await record(RecordActivities(engine), input.model_copy(update={"event": event}))
        async with AsyncSession(engine) as session:
            (row,) = await session.scalars(select(EventRow))
        assert (len(row.detail), row.actor) == (len(detail), actor)
        assert row.hash == row.content_hash()

    async def test_an_unreachable_store_is_retried(self, tmp_path: Path) -> None:
        """A store that cannot be reached is an error a retry can fix: it stays retryable."""
        missing = create_engine(f"sqlite:///{tmp_path / 'no such directory' / 'records.db'}")
        try:
            with pytest.raises(OperationalError):
                await record(RecordActivities(missing), create_record_input(1, Stage.BOOKED))
        finally:
            await missing.dispose()

    async def test_events_are_chained_by_hash(self, engine: AsyncEngine) -> None:
        """Each event carries its own hash and its predecessor's; the order row holds the head."""
        activities = RecordActivities(engine)
        for seq, stage in enumerate((Stage.BOOKED, Stage.DISPATCHING, Stage.SCHEDULED), 1):
            await record(activities, create_record_input(seq, stage))
        async with AsyncSession(engine) as session:
            rows = list(await session.scalars(select(EventRow).order_by(col(EventRow.seq))))
            order = await session.get(OrderRow, "RF261120-ABC123")
        assert [row.prev_hash for row in rows] == [GENESIS_HASH, rows[0].hash, rows[1].hash]
        assert all(row.hash == row.content_hash() for row in rows)
        assert len({row.hash for row in rows}) == 3
        assert order is not None
        assert (order.last_seq, order.last_hash) == (3, rows[2].hash)
        assert first_broken_seq(rows, last_seq=order.last_seq, last_hash=order.last_hash) is None

    async def test_retry_after_commit_keeps_the_first_hash(self, engine: AsyncEngine) -> None:
        """A retried event is not written again, so its hash and the chain stay as they were."""
        activities = RecordActivities(engine)
        await record(activities, create_record_input(1, Stage.BOOKED))
        async with AsyncSession(engine) as session:
            first = await session.scalar(select(EventRow.hash))
        await record(activities, create_record_input(1, Stage.BOOKED))
        async with AsyncSession(engine) as session:
            assert list(await session.scalars(select(EventRow.hash))) == [first]

    async def test_complaint_event_upserts_the_complaint_row(self, engine: AsyncEngine) -> None:
        """A complaint's events keep its read-model row current; the latest event wins."""
        activities = RecordActivities(engine)
        filed = create_complaint_snapshot(state=ComplaintState.OPEN, tier=1)
        await record(
            activities, create_record_input(1, Stage.BOOKED).model_copy(update={"complaint": filed})
        )
        escalated = filed.model_copy(update={"tier": 2, "updated_at": BOOKED_AT + timedelta(1)})
        await record(
            activities,
            create_record_input(2, Stage.DISPATCHING).model_copy(update={"complaint": escalated}),
        )
        async with AsyncSession(engine) as session:
            (row,) = await session.scalars(select(ComplaintRow))
        assert (row.complaint_id, row.state, row.tier) == ("RF261120-ABC123-C1", "open", 2)

    async def test_orders_are_kept_apart(self, engine: AsyncEngine) -> None:
        """The same event number on two orders is two events, on two rows."""
        activities = RecordActivities(engine)
        await record(activities, create_record_input(1, Stage.BOOKED, order_id="RF261120-AAAAAA"))
        await record(activities, create_record_input(1, Stage.BOOKED, order_id="RF261120-BBBBBB"))
        assert sorted(row.order_id for row in await order_rows(engine)) == [
            "RF261120-AAAAAA",
            "RF261120-BBBBBB",
        ]
        assert [order for order, _, _ in await logged_events(engine)] == [
            "RF261120-AAAAAA",
            "RF261120-BBBBBB",
        ]

    async def test_crash_after_commit_is_retried_without_duplicates(
        self, engine: AsyncEngine, time_skipping_env: WorkflowEnvironment
    ) -> None:
        """A worker lost after writing is retried by Temporal; every event is still logged once."""
        activities = CrashAfterCommit(engine)
        inputs = [
            create_record_input(1, Stage.BOOKED),
            create_record_input(2, Stage.DISPATCHING),
            create_record_input(3, Stage.SCHEDULED, technician_id="T-0042"),
        ]
        task_queue = f"tq-{uuid.uuid4().hex}"
        async with Worker(
            time_skipping_env.client,
            task_queue=task_queue,
            workflows=[RecordEventsWorkflow],
            activities=[activities.record_order_event],
        ):
            await time_skipping_env.client.execute_workflow(
                RecordEventsWorkflow.run,
                inputs,
                id=f"records-{uuid.uuid4().hex}",
                task_queue=task_queue,
            )
        assert activities.attempts == [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
        assert [seq for _, seq, _ in await logged_events(engine)] == [1, 2, 3]
        (row,) = await order_rows(engine)
        assert (row.stage, row.technician_id, row.last_seq) == ("scheduled", "T-0042", 3)
