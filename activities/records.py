"""Writes to the records store: the orders read model and the event log, idempotent on retry."""

from collections.abc import Sequence

from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core import facts
from core.db import lock_order
from core.personal import erase_order
from models.order import ComplaintSnapshot, OrderEvent, RecordInput
from models.records import GENESIS_HASH, ComplaintRow, EventRow, OrderRow

# The store refused the values themselves (too long, out of range, a constraint): trying the same
# write again cannot succeed until the code or the schema changes. A lost connection, a lock
# timeout or a database that is down are not among them: those are retried.
REJECTED = (DataError, IntegrityError, ProgrammingError, ValueError)  # pydantic's errors too


def rejected(inputs: Sequence[RecordInput], error: Exception) -> ApplicationError:
    """Names the events and the kind of error, never the values: a database's message quotes
    them, and this one is kept in the history and logged."""
    cause = error.orig if isinstance(error, StatementError) else error
    code = getattr(cause, "sqlstate", None) or getattr(cause, "sqlite_errorname", None)
    first, last = inputs[0].event, inputs[-1].event
    seqs = f"{first.seq}" if first.seq == last.seq else f"{first.seq}-{last.seq}"
    return ApplicationError(
        f"event {seqs} of order {first.order_id} was refused by the records"
        f" store ({type(cause).__name__}{f' {code}' if code else ''}); it is kept and tried"
        " again later",
        type="RecordRejected",
        non_retryable=True,
    )


async def keep_complaint(session: AsyncSession, complaint: ComplaintSnapshot) -> None:
    values = complaint.model_dump()
    row = await session.get(ComplaintRow, complaint.complaint_id, with_for_update=True)
    if row is None:
        row = ComplaintRow(**values)
        session.add(row)
    else:
        row.sqlmodel_update(values)
    facts.keep_complaint(row)


class RecordActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name="record_order_event")
    async def record_order_event(self, input: RecordInput) -> None:
        """Append the event (once) and bring the read model up to it, in one transaction.

        The event is chained to the order's event `seq - 1`, read in the same transaction
        while holding the order's write lock (core.db.lock_order), so two writers of one order
        queue rather than both chaining to the same predecessor; should one get past the lock,
        the unique (order_id, seq) refuses the second row and its retry finds the event
        recorded. An event whose predecessor is not recorded yet is refused with a retryable
        error rather than written with a hole in the chain. Values the store refuses raise a
        non-retryable "RecordRejected" (the workflow keeps the event and tries again later).
        """
        await self._record_all([input])

    @activity.defn(name="record_complaint")
    async def record_complaint(self, complaint: ComplaintSnapshot) -> None:
        """The complaints read model of a complaint on a closed or cancelled order, which the
        complaint writes itself, one change after the other (the latest wins)."""
        try:
            async with AsyncSession(self.engine) as session, session.begin():
                await keep_complaint(session, complaint)
        except (DataError, IntegrityError) as error:
            raise ApplicationError(
                f"complaint {complaint.complaint_id} was refused by the records store"
                f" ({type(error.orig).__name__}); it is tried again later",
                type="RecordRejected",
                non_retryable=True,
            ) from None

    @activity.defn(name="erase_personal_data")
    async def erase_personal_data(self, order_id: str) -> None:
        """Erase the closed order's personal data from the records store (core.personal)."""
        async with AsyncSession(self.engine) as session:
            await erase_order(session, order_id)

    @activity.defn(name="record_order_events")
    async def record_order_events(self, inputs: list[RecordInput]) -> list[OrderEvent]:
        """Events of one order, in order, in one transaction: the order's workflow hands over
        everything one of its workflow tasks logged at once, as a local activity. Returns the
        events, which the history keeps (a local activity's input it does not): what an audit
        compares the event log with."""
        if inputs:
            await self._record_all(inputs)
        return [input.event for input in inputs]

    async def _record_all(self, inputs: Sequence[RecordInput]) -> None:
        try:
            async with (
                AsyncSession(self.engine, expire_on_commit=False) as session,
                session.begin(),
            ):
                await lock_order(session, inputs[0].event.order_id)
                prev_hash = None
                for input in inputs:
                    prev_hash = await self._record(session, input, prev_hash)
        except StatementError as error:
            if not isinstance(error, REJECTED) and not isinstance(error.orig, REJECTED):
                raise
            if isinstance(error, IntegrityError) and await self._recorded(inputs[-1]):
                return  # another attempt wrote them first: the unique (order_id, seq) said so
            raise rejected(inputs, error) from None
        except ValueError as error:
            raise rejected(inputs, error) from None

    async def _recorded(self, input: RecordInput) -> bool:
        async with AsyncSession(self.engine) as session:
            found = await session.scalar(
                select(EventRow.id).where(
                    EventRow.order_id == input.event.order_id, EventRow.seq == input.event.seq
                )
            )
            return found is not None

    async def _record(
        self, session: AsyncSession, input: RecordInput, prev_hash: str | None
    ) -> str | None:
        """Append one event after `prev_hash` (read from the store when not given); returns
        its hash, or None when it was recorded already."""
        event, snapshot = input.event, input.snapshot
        already = await session.scalar(
            select(EventRow.id).where(
                EventRow.order_id == event.order_id, EventRow.seq == event.seq
            )
        )
        if already is not None:
            activity.logger.info("event already recorded", extra={"seq": event.seq})
            return None
        if event.seq == 1:
            prev_hash = GENESIS_HASH
        elif prev_hash is None:
            prev_hash = await session.scalar(
                select(EventRow.hash).where(
                    EventRow.order_id == event.order_id, EventRow.seq == event.seq - 1
                )
            )
        if prev_hash is None:
            raise ApplicationError(
                f"event {event.seq} arrived before event {event.seq - 1} was recorded",
                type="EventOutOfOrder",
            )
        row = EventRow(**event.model_dump(), prev_hash=prev_hash, hash="")
        row.hash = row.content_hash()
        session.add(row)
        order = await session.get(OrderRow, snapshot.order_id, with_for_update=True)
        if order is None:
            order = OrderRow(**snapshot.model_dump(exclude={"booked_on", "sla"}), last_seq=0)
            session.add(order)
        if order.last_seq < event.seq:
            facts.keep(order, snapshot, event)
            order.last_seq, order.last_hash = event.seq, row.hash
        if input.complaint is not None:
            # Events of one order are written in order, so the latest one wins.
            await keep_complaint(session, input.complaint)
        return row.hash
