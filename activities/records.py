"""Writes to the records store: the orders read model and the event log, idempotent on retry."""

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import select
from temporalio import activity

from models.order import RecordInput
from models.records import ComplaintRow, EventRow, OrderRow


class RecordActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name="record_order_event")
    async def record_order_event(self, input: RecordInput) -> None:
        """Append the event (once) and bring the read model up to it, in one transaction."""
        event, snapshot = input.event, input.snapshot
        async with AsyncSession(self.engine, expire_on_commit=False) as session, session.begin():
            already = await session.scalar(
                select(EventRow.id).where(
                    EventRow.order_id == event.order_id, EventRow.seq == event.seq
                )
            )
            if already is not None:
                activity.logger.info("event already recorded", extra={"seq": event.seq})
                return
            session.add(EventRow(**event.model_dump()))
            row = await session.get(OrderRow, snapshot.order_id, with_for_update=True)
            if row is None:
                session.add(OrderRow(**snapshot.model_dump(), last_seq=event.seq))
            elif row.last_seq < event.seq:
                row.sqlmodel_update(snapshot.model_dump() | {"last_seq": event.seq})
            if input.complaint is not None:
                # Events of one order are written in order, so the latest one wins.
                complaint = input.complaint.model_dump()
                existing = await session.get(
                    ComplaintRow, input.complaint.complaint_id, with_for_update=True
                )
                if existing is None:
                    session.add(ComplaintRow(**complaint))
                else:
                    existing.sqlmodel_update(complaint)
