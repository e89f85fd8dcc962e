"""Technicians: who may be sent to which job, and in which order they are asked.

Pure rules; the dispatch activity applies them to the registry, the API to manual assignment.
"""

from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from models.catalog import Category, CertificateType, required_certificates
from models.fields import ShortText
from models.order import (
    Phone,
)


class TechnicianStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Certificate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: CertificateType
    number: ShortText
    valid_until: date


class Qualifications(BaseModel):
    """What dispatch needs to know about a technician, without personal data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    technician_id: str
    status: TechnicianStatus
    skills: tuple[Category, ...]
    regions: tuple[str, ...]
    certificates: tuple[Certificate, ...]


def unqualified_because(
    technician: Qualifications, category: Category, gas_fired: bool, on_day: date
) -> str | None:
    """Why this technician may not take the job on that day, or None if they may."""
    if technician.status != TechnicianStatus.ACTIVE:
        return f"technician {technician.technician_id} is {technician.status}"
    if category not in technician.skills:
        return f"technician {technician.technician_id} does not repair {category}"
    valid = {c.type for c in technician.certificates if c.valid_until >= on_day}
    missing = sorted(required_certificates(category, gas_fired) - valid)
    if missing:
        return (
            f"technician {technician.technician_id} has no valid "
            f"{', '.join(missing)} certificate on {on_day}"
        )
    return None


class CandidateQuery(BaseModel):
    """The job to staff: who can do it on that day, leaving out those already asked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: str
    category: Category
    gas_fired: bool = False
    region: str
    on_day: date
    exclude: tuple[str, ...] = ()


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    technician_id: str
    in_region: bool
    open_orders: int = Field(ge=0)
    rating: Decimal | None = None  # mean survey score, None before the first survey


def _preference(candidate: Candidate) -> tuple[bool, int, Decimal, str]:
    # Region first, then the lightest open workload, then the best rating; the id breaks ties
    # so that the order is the same on every run.
    rating = candidate.rating if candidate.rating is not None else Decimal(0)
    return (not candidate.in_region, candidate.open_orders, -rating, candidate.technician_id)


def rank(candidates: list[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=_preference)


class TechnicianBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText
    phone: Phone
    skills: list[Category] = Field(min_length=1)
    regions: list[ShortText] = Field(min_length=1)
    certificates: list[Certificate] = Field(default_factory=list)
