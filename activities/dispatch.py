"""Dispatch look-ups: which registered technicians may take a job, best first."""

from decimal import Decimal

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select
from temporalio import activity

from core.queries import qualifications
from models.order import OPEN_STAGES
from models.records import OrderRow, TechnicianRow
from models.technician import (
    Candidate,
    CandidateQuery,
    TechnicianStatus,
    rank,
    unqualified_because,
)


async def open_orders(session: AsyncSession, technician_ids: list[str]) -> dict[str, int]:
    """How many unfinished orders each technician holds, from the orders read model."""
    rows = await session.execute(
        select(OrderRow.technician_id, func.count())
        .where(col(OrderRow.technician_id).in_(technician_ids))
        .where(col(OrderRow.stage).in_([str(stage) for stage in OPEN_STAGES]))
        .group_by(OrderRow.technician_id)
    )
    return {technician_id: count for technician_id, count in rows.all() if technician_id}


async def ratings(session: AsyncSession, technician_ids: list[str]) -> dict[str, Decimal]:
    rows = await session.execute(
        select(OrderRow.technician_id, func.avg(OrderRow.survey_score))
        .where(col(OrderRow.technician_id).in_(technician_ids))
        .where(col(OrderRow.survey_score).is_not(None))
        .group_by(OrderRow.technician_id)
    )
    return {
        technician_id: Decimal(str(mean)).quantize(Decimal("0.01"))
        for technician_id, mean in rows.all()
        if technician_id and mean is not None
    }


class DispatchActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name="find_candidates")
    async def find_candidates(self, query: CandidateQuery) -> list[Candidate]:
        """Qualified, active technicians not yet asked: region, then workload, then rating."""
        async with AsyncSession(self.engine) as session:
            rows = (
                await session.scalars(
                    select(TechnicianRow).where(TechnicianRow.status == TechnicianStatus.ACTIVE)
                )
            ).all()
            qualified = [
                row
                for row in rows
                if row.id not in query.exclude
                and unqualified_because(
                    qualifications(row), query.category, query.gas_fired, query.on_day
                )
                is None
            ]
            ids = [row.id for row in qualified]
            workload = await open_orders(session, ids)
            rating = await ratings(session, ids)
        return rank(
            [
                Candidate(
                    technician_id=row.id,
                    in_region=query.region in row.regions,
                    open_orders=workload.get(row.id, 0),
                    rating=rating.get(row.id),
                )
                for row in qualified
            ]
        )
