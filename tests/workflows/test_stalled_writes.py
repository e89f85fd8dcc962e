"""A records write that keeps failing stalls the order's effects in plain sight and loses
nothing: the order shows what waits and since when, WritesStalled is set (and /readyz counts
it), and the write resumes by itself once the cause is gone, every event in its place.

The records store is real here (SQLite), made to refuse by the database itself or missing
altogether; the workflow runs on the time-skipping server, whose clock the tests move."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from activities.records import RecordActivities
from core.db import create_engine, prepare_schema
from models.order import WRITES_STALLED, Order, PendingWrites
from models.records import EventRow, OrderRow, first_broken_seq
from tests.harness import (
    Handle,
    Harness,
    assign,
    details,
    order_eventually,
    order_harness,
)
from tests.store_faults import accept_events, refuse_events_from
from workflows.effects import STALLED_WRITE_PAUSE

# Long enough for the engine to give up retrying a write (its backoff reaches a minute).
ENGINE_RETRIES = timedelta(minutes=15)


@dataclass
class Store:
    engine: AsyncEngine
    path: Path

    async def event_rows(self, order_id: str) -> list[EventRow]:
        async with AsyncSession(self.engine) as session:
            rows = await session.scalars(
                select(EventRow).where(EventRow.order_id == order_id).order_by(col(EventRow.seq))
            )
            return list(rows)

    async def assert_complete(self, order: Order) -> None:
        """Every timeline entry is in the event log, once, in order, and the chain holds."""
        rows = await self.event_rows(order.order_id)
        assert [(row.seq, row.action) for row in rows] == [
            (seq, entry.action) for seq, entry in enumerate(order.timeline, 1)
        ]
        async with AsyncSession(self.engine) as session:
            head = await session.get(OrderRow, order.order_id)
        assert head is not None
        assert head.stage == order.stage
        assert first_broken_seq(rows, last_seq=head.last_seq, last_hash=head.last_hash) is None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A records store whose file is in a directory that does not exist until `open_store`."""
    path = tmp_path / "records" / "records.db"
    engine = create_engine(f"sqlite:///{path}")
    yield Store(engine, path)
    await engine.dispose()


async def open_store(store: Store) -> None:
    store.path.parent.mkdir()
    await prepare_schema(store.engine)


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment, store: Store) -> AsyncIterator[Harness]:
    """The order harness with the real records activity on `store`."""
    async with order_harness(
        time_skipping_env, record_order_events=RecordActivities(store.engine).record_order_events
    ) as harness:
        yield harness


async def writes_stalled(handle: Handle) -> bool | None:
    return (await handle.describe()).typed_search_attributes.get(WRITES_STALLED)


def stalled(order: Order) -> bool:
    return order.pending_writes.stalled_since is not None


def caught_up(order: Order) -> bool:
    return order.pending_writes == PendingWrites()


class TestStalledWrites:
    async def test_a_refused_event_waits_in_place_and_lands_once_the_store_accepts_it(
        self, harness: Harness, store: Store
    ) -> None:
        await open_store(store)
        await refuse_events_from(store.engine, 2)
        handle = await harness.book()

        # Event 2 was handed over with the rest of the booking's events, in one transaction:
        # none of them is written, and all wait in place.
        order = await order_eventually(handle, stalled)
        assert order.pending_writes.records == len(order.timeline) >= 2
        assert await store.event_rows(order.order_id) == []
        assert await writes_stalled(handle) is True

        # The order goes on taking actions; their events queue behind the refused one.
        await assign(handle)
        order = await details(handle)
        assert order.technician_id is not None
        assert order.pending_writes.records == len(order.timeline)
        assert await store.event_rows(order.order_id) == []

        await accept_events(store.engine)
        await harness.env.sleep(STALLED_WRITE_PAUSE)
        order = await order_eventually(handle, caught_up)
        await store.assert_complete(order)
        assert await writes_stalled(handle) is None

    async def test_a_store_that_stays_unreachable_stalls_the_order_until_it_is_back(
        self, harness: Harness, store: Store
    ) -> None:
        handle = await harness.book()
        order = await details(handle)
        assert order.pending_writes.records >= 1
        assert not stalled(order)  # the engine is still retrying

        await harness.env.sleep(ENGINE_RETRIES)
        order = await order_eventually(handle, stalled)
        assert await writes_stalled(handle) is True

        await open_store(store)
        await harness.env.sleep(STALLED_WRITE_PAUSE)
        order = await order_eventually(handle, caught_up)
        await store.assert_complete(order)
        assert await writes_stalled(handle) is None
