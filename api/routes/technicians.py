"""The technician registry: admins keep it; staff, supervisors and auditors read it."""

import secrets
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import SessionDep, SettingsDep, role
from api.errors import Conflict, Forbidden, NotFound, problems
from core import kpis, queries
from models.catalog import Category
from models.fields import ShortText
from models.order import (
    Actor,
    Role,
)
from models.records import TechnicianRow
from models.technician import Certificate, OnCall, Shift, TechnicianBase, TechnicianStatus

router = APIRouter(prefix="/v1/technicians", tags=["technicians"])

TechnicianId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Admin = Annotated[Actor, Depends(role(Role.ADMIN))]
Reader = Annotated[Actor, Depends(role(Role.STAFF, Role.SUPERVISOR, Role.ADMIN, Role.AUDITOR))]
SEES_PHONE = frozenset({Role.STAFF, Role.SUPERVISOR, Role.ADMIN})


def no_expired_certificates(certificates: list[Certificate] | None) -> list[Certificate] | None:
    """A certificate recorded as new must still be valid; expiry is judged again at dispatch."""
    today = datetime.now(UTC).date()
    for certificate in certificates or []:
        if certificate.valid_until < today:
            raise ValueError(
                f"certificate {certificate.number} ({certificate.type}) expired on "
                f"{certificate.valid_until}"
            )
    return certificates


class TechnicianCreate(TechnicianBase):
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")

    _certificates_valid = field_validator("certificates")(no_expired_certificates)


class TechnicianUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: TechnicianStatus | None = None
    skills: list[Category] | None = Field(default=None, min_length=1)
    regions: list[ShortText] | None = Field(default=None, min_length=1)
    certificates: list[Certificate] | None = None
    shifts: list[Shift] | None = Field(default=None, max_length=21)
    days_off: list[date] | None = Field(default=None, max_length=366)
    on_call: list[OnCall] | None = Field(default=None, max_length=366)

    _certificates_valid = field_validator("certificates")(no_expired_certificates)


class TechnicianPublic(BaseModel):
    id: str
    name: str
    phone: str | None
    status: TechnicianStatus
    skills: list[Category]
    regions: list[str]
    certificates: list[Certificate]
    shifts: list[Shift]
    days_off: list[date]
    on_call: list[OnCall]
    open_orders: int
    rating: Decimal | None


class TechnicianList(BaseModel):
    items: list[TechnicianPublic]
    next_cursor: str | None


async def _public(
    session: SessionDep, rows: Sequence[TechnicianRow], caller: Actor
) -> list[TechnicianPublic]:
    ids = [row.id for row in rows]
    workload = await queries.open_orders(session, ids)
    rating = await queries.ratings(session, ids)
    return [
        TechnicianPublic(
            id=row.id,
            name=row.name,
            phone=row.phone if caller.role in SEES_PHONE else None,
            status=TechnicianStatus(row.status),
            skills=[Category(skill) for skill in row.skills],
            regions=row.regions,
            certificates=[Certificate.model_validate(c) for c in row.certificates],
            **queries.schedule(row).model_dump(),
            open_orders=workload.get(row.id, 0),
            rating=rating.get(row.id),
        )
        for row in rows
    ]


async def _load(session: SessionDep, technician_id: str) -> TechnicianRow:
    row = await queries.technician(session, technician_id)
    if row is None:
        raise NotFound(f"no technician {technician_id}")
    return row


@router.post("", status_code=status.HTTP_201_CREATED, responses=problems(401, 403, 409, 422))
async def register_technician(
    body: TechnicianCreate, caller: Admin, session: SessionDep
) -> TechnicianPublic:
    """Register a technician with their skills, regions and certificates."""
    technician_id = body.id or f"T{secrets.token_hex(3).upper()}"
    row = await queries.add_technician(session, technician_id, body, datetime.now(UTC))
    if row is None:
        raise Conflict(f"technician {technician_id} already exists")
    return (await _public(session, [row], caller))[0]


@router.get("", responses=problems(401, 403, 422))
async def list_technicians(
    caller: Reader,
    session: SessionDep,
    status: TechnicianStatus | None = None,
    skill: Category | None = None,
    region: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> TechnicianList:
    """Technicians by id; `cursor` is the last id of the previous page."""
    page = await queries.list_technicians(
        session, status=status, skill=skill, region=region, limit=limit, cursor=cursor
    )
    return TechnicianList(
        items=await _public(session, page.rows, caller), next_cursor=page.next_cursor
    )


@router.get("/{technician_id}", responses=problems(401, 403, 404))
async def get_technician(
    technician_id: TechnicianId, caller: Reader, session: SessionDep
) -> TechnicianPublic:
    return (await _public(session, [await _load(session, technician_id)], caller))[0]


@router.patch("/{technician_id}", responses=problems(401, 403, 404, 422))
async def update_technician(
    technician_id: TechnicianId, body: TechnicianUpdate, caller: Admin, session: SessionDep
) -> TechnicianPublic:
    """Suspend or reactivate, change skills, regions, certificates or the schedule."""
    row = await queries.update_technician(
        session,
        technician_id,
        status=body.status,
        skills=body.skills,
        regions=body.regions,
        certificates=body.certificates,
        shifts=body.shifts,
        days_off=body.days_off,
        on_call=body.on_call,
        at=datetime.now(UTC),
    )
    if row is None:
        raise NotFound(f"no technician {technician_id}")
    return (await _public(session, [row], caller))[0]


class Performance(BaseModel):
    """Quality figures over the orders a technician holds or held last (claims included): the
    KPI report's (GET /v1/reports/kpis) for these orders, with its definitions."""

    technician_id: str
    orders: int
    open_orders: int
    completed: int
    first_time_fix_rate: Decimal | None  # accepted without rework and with no warranty claim
    rework_rate: Decimal | None
    repeat_failure_rate: Decimal | None
    sla_breached_orders: int
    mean_hours_to_acceptance: Decimal | None
    rating: Decimal | None
    complaints_about_work: int  # complaints filed about work on an order they held
    figures: kpis.KpiGroup


@router.get("/{technician_id}/performance", responses=problems(401, 403, 404))
async def technician_performance(
    technician_id: TechnicianId,
    caller: Annotated[Actor, Depends(role(*Role))],
    session: SessionDep,
    settings: SettingsDep,
) -> Performance:
    """The technician's quality figures, from the orders read model."""
    allowed = caller.role in (Role.STAFF, Role.SUPERVISOR, Role.ADMIN, Role.AUDITOR)
    if not allowed and not (
        caller.role == Role.TECHNICIAN and caller.technician_id == technician_id
    ):
        raise Forbidden("only the office, or the technician themselves, read this")
    await _load(session, technician_id)
    report = await kpis.report(
        session,
        settings.policy.targets,
        kpis.Filters(technician_id=technician_id),
        None,
        datetime.now(UTC),
    )
    (figures,) = report.groups
    return Performance(
        technician_id=technician_id,
        orders=figures.orders,
        open_orders=figures.open,
        completed=figures.accepted,
        first_time_fix_rate=figures.first_time_fix_rate.value,
        rework_rate=figures.rework_rate.value,
        repeat_failure_rate=figures.repeat_failure_rate.value,
        sla_breached_orders=figures.orders_with_sla_breach,
        mean_hours_to_acceptance=figures.mttr_hours.value,
        rating=(await queries.ratings(session, [technician_id])).get(technician_id),
        figures=figures,
        complaints_about_work=await queries.complaints_about_work(session, technician_id),
    )
