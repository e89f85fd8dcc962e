"""The event log's hash chain on each engine: tampering shows, concurrent writers never fork it."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.records import RecordActivities
from models.order import RecordInput, Stage
from models.records import GENESIS_HASH, EventRow, OrderRow, event_hash, first_broken_seq
from tests.factories import create_record_input

ORDER = "RF261120-ABC123"


async def record(activities: RecordActivities, input: RecordInput) -> None:
    await ActivityEnvironment().run(activities.record_order_event, input)


async def record_events(engine: AsyncEngine, count: int, order_id: str = ORDER) -> None:
    activities = RecordActivities(engine)
    for seq in range(1, count + 1):
        await record(activities, create_record_input(seq, Stage.DISPATCHING, order_id=order_id))


async def events(engine: AsyncEngine, order_id: str = ORDER) -> list[EventRow]:
    async with AsyncSession(engine) as session:
        query = select(EventRow).where(EventRow.order_id == order_id).order_by(col(EventRow.seq))
        return list(await session.scalars(query))


async def check(engine: AsyncEngine, order_id: str = ORDER) -> int | None:
    """What GET /v1/orders/{id}/events answers as first_bad_seq: the log against its anchor."""
    async with AsyncSession(engine) as session:
        order = await session.get(OrderRow, order_id)
    assert order is not None
    return first_broken_seq(
        await events(engine, order_id), last_seq=order.last_seq, last_hash=order.last_hash
    )


async def execute(engine: AsyncEngine, statement: str, **params: Any) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(statement), {"order_id": ORDER} | params)


def rehash_statement(seq: int) -> Callable[[AsyncEngine], Awaitable[None]]:
    """Edit row `seq` and give it the hash its new content calls for, as a careful forger would."""

    async def forge(engine: AsyncEngine) -> None:
        (row,) = [r for r in await events(engine) if r.seq == seq]
        row.actor = "someone else"
        await execute(
            engine,
            "UPDATE order_events SET actor = :actor, hash = :hash "
            "WHERE order_id = :order_id AND seq = :seq",
            actor=row.actor,
            hash=row.content_hash(),
            seq=seq,
        )

    return forge


async def append_forged(engine: AsyncEngine) -> None:
    """A sixth event, correctly chained to the fifth, that the service never wrote."""
    last = (await events(engine))[-1]
    forged = EventRow(
        order_id=ORDER,
        seq=6,
        at=last.at,
        actor="system",
        action="stage:closed",
        detail="",
        prev_hash=last.hash,
        hash="",
    )
    forged.hash = forged.content_hash()
    async with AsyncSession(engine) as session, session.begin():
        session.add(forged)


def sql(statement: str) -> Callable[[AsyncEngine], Awaitable[None]]:
    async def run(engine: AsyncEngine) -> None:
        await execute(engine, statement)

    return run


async def swap_rows(engine: AsyncEngine) -> None:
    """Events 2 and 5 trade places, each keeping its own content and hashes."""
    for old, new in ((2, -2), (5, 2), (-2, 5)):
        await execute(
            engine,
            "UPDATE order_events SET seq = :new WHERE order_id = :order_id AND seq = :old",
            old=old,
            new=new,
        )


TAMPERING = {
    "edited detail": (
        sql("UPDATE order_events SET detail = 'x' WHERE order_id = :order_id AND seq = 3"),
        3,
    ),
    "edited time": (
        sql(
            "UPDATE order_events SET at = (SELECT at FROM order_events WHERE seq = 1 AND "
            "order_id = :order_id) WHERE order_id = :order_id AND seq = 4"
        ),
        4,
    ),
    "deleted middle row": (
        sql("DELETE FROM order_events WHERE order_id = :order_id AND seq = 3"),
        3,
    ),
    "deleted first row": (
        sql("DELETE FROM order_events WHERE order_id = :order_id AND seq = 1"),
        1,
    ),
    "deleted newest rows": (
        sql("DELETE FROM order_events WHERE order_id = :order_id AND seq >= 4"),
        4,
    ),
    "edited and re-hashed row": (rehash_statement(2), 3),
    "edited and re-hashed newest row": (rehash_statement(5), 5),
    "row appended": (append_forged, 6),
    "rows swapped": (swap_rows, 2),
}


class TestTamperEvidence:
    async def test_intact_chain_holds(self, records_store: AsyncEngine) -> None:
        """Five events as the service wrote them: nothing to report."""
        await record_events(records_store, 5)
        rows = await events(records_store)
        assert rows[0].prev_hash == GENESIS_HASH
        assert await check(records_store) is None

    @pytest.mark.parametrize(("tampering", "first_bad"), TAMPERING.values(), ids=TAMPERING)
    async def test_tampering_names_the_first_bad_event(
        self,
        records_store: AsyncEngine,
        tampering: Callable[[AsyncEngine], Awaitable[None]],
        first_bad: int,
    ) -> None:
        """A row edited, deleted, added or moved in the database breaks the chain where it was."""
        await record_events(records_store, 5)
        await record_events(records_store, 5, order_id="RF261120-OTHER0")
        await tampering(records_store)
        assert await check(records_store) == first_bad
        assert await check(records_store, "RF261120-OTHER0") is None

    async def test_stored_times_hash_as_written(self, records_store: AsyncEngine) -> None:
        """The hash of the row read back equals the one computed before writing: both engines
        keep the instant to the microsecond."""
        input = create_record_input(1, Stage.BOOKED)
        at = input.event.at.replace(microsecond=123456)
        await record(
            RecordActivities(records_store),
            input.model_copy(update={"event": input.event.model_copy(update={"at": at})}),
        )
        (row,) = await events(records_store)
        assert row.at == at
        assert row.hash == event_hash(
            order_id=ORDER,
            seq=1,
            at=at,
            actor="system",
            action="stage:booked",
            detail="",
            prev_hash=GENESIS_HASH,
        )


class Writer:
    """Writes events for one order as a workflow's activity would, retrying what Temporal
    would retry: an event whose predecessor is not recorded yet, or a database conflict."""

    def __init__(self, engine: AsyncEngine, actor: str) -> None:
        self.activities = RecordActivities(engine)
        self.actor = actor
        self.conflicts = 0

    async def write(self, seq: int) -> None:
        input = create_record_input(seq, Stage.DISPATCHING)
        input = input.model_copy(
            update={"event": input.event.model_copy(update={"actor": self.actor})}
        )
        for _ in range(500):
            try:
                await record(self.activities, input)
                return
            except ApplicationError as error:
                if error.type != "EventOutOfOrder":
                    raise
            except IntegrityError:
                self.conflicts += 1
            await asyncio.sleep(0.002)
        raise AssertionError(f"event {seq} was never written")

    async def write_all(self, seqs: range) -> None:
        for seq in seqs:
            await self.write(seq)


class TestConcurrentWriters:
    async def test_two_writers_of_the_same_events_never_fork(
        self, records_store: AsyncEngine
    ) -> None:
        """Two writers race through the same 30 events of one order (the order workflow and a
        complaint's, or a retry racing its original): each number is written once, each row
        chains to the one before, and the order lock leaves no conflict to retry."""
        order_writer, complaint_writer = (
            Writer(records_store, "order"),
            Writer(records_store, "complaint"),
        )
        await asyncio.gather(
            order_writer.write_all(range(1, 31)), complaint_writer.write_all(range(1, 31))
        )
        rows = await events(records_store)
        assert [row.seq for row in rows] == list(range(1, 31))
        assert len({row.prev_hash for row in rows}) == 30, "two rows share a predecessor"
        assert await check(records_store) is None
        assert order_writer.conflicts + complaint_writer.conflicts == 0

    async def test_interleaved_writers_build_one_chain(self, records_store: AsyncEngine) -> None:
        """One writer holds the odd events, the other the even ones, both started at once: the
        log ends up as one unbroken chain in number order."""
        odd, even = Writer(records_store, "odd"), Writer(records_store, "even")
        await asyncio.gather(odd.write_all(range(1, 41, 2)), even.write_all(range(2, 41, 2)))
        rows = await events(records_store)
        assert [row.seq for row in rows] == list(range(1, 41))
        assert [row.actor for row in rows[:4]] == ["odd", "even", "odd", "even"]
        assert await check(records_store) is None

    async def test_a_second_row_for_one_number_cannot_be_stored(
        self, records_store: AsyncEngine
    ) -> None:
        """Whatever gets past the lock, the database itself refuses a fork: (order, seq) is
        unique."""
        await record_events(records_store, 2)
        (first, _) = await events(records_store)
        fork = EventRow(
            order_id=ORDER,
            seq=2,
            at=first.at,
            actor="fork",
            action="stage:cancelled",
            detail="",
            prev_hash=first.hash,
            hash="0" * 64,
        )
        with pytest.raises(IntegrityError):
            async with AsyncSession(records_store) as session, session.begin():
                session.add(fork)
