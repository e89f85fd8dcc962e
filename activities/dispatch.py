"""Dispatch look-ups: which registered technicians may take a job, best first."""

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from temporalio import activity

from core.queries import active_technicians, open_orders, qualifications, ratings, schedule
from models.technician import Candidate, CandidateQuery, rank, unqualified_because


class DispatchActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @activity.defn(name="find_candidates")
    async def find_candidates(self, query: CandidateQuery) -> list[Candidate]:
        """Qualified, active technicians not yet asked: region, then workload, then rating;
        with their schedules, by which the order offers to those on duty."""
        async with AsyncSession(self.engine) as session:
            qualified = [
                row
                for row in await active_technicians(session)
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
                    schedule=schedule(row),
                )
                for row in qualified
            ]
        )
