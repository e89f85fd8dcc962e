"""Reads of the records store: what the API lists and what dispatch looks up.

Writes are the activities' (activities/records.py); every read is here, so the API holds no
SQL and imports no activity.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from models.catalog import Category
from models.records import TechnicianRow
from models.technician import Certificate, Qualifications, TechnicianStatus


def qualifications(row: TechnicianRow) -> Qualifications:
    return Qualifications(
        technician_id=row.id,
        status=TechnicianStatus(row.status),
        skills=tuple(Category(skill) for skill in row.skills),
        regions=tuple(row.regions),
        certificates=tuple(Certificate.model_validate(c) for c in row.certificates),
    )


async def technician_qualifications(
    session: AsyncSession, technician_id: str
) -> Qualifications | None:
    row = await session.get(TechnicianRow, technician_id)
    return None if row is None else qualifications(row)
