"""Reads of the records store, and the technician registry's writes: what the API lists and
keeps, and what dispatch looks up.

The order and complaint read models and the event log are written by the activities
(activities/records.py); every query is here, so the API holds no SQL and imports no activity.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, func, not_, or_, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapped
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from core.cursor import KeysetCursor
from models.catalog import Category
from models.fields import Moment
from models.order import FINAL_STAGES, OPEN_STAGES, ComplaintState, Priority, Stage
from models.records import (
    ComplaintRow,
    EventRow,
    IdempotencyKeyRow,
    NotificationRow,
    OrderRow,
    TechnicianRow,
    first_broken_seq,
)
from models.technician import (
    Certificate,
    OnCall,
    Qualifications,
    Schedule,
    Shift,
    TechnicianBase,
    TechnicianStatus,
)

RowT = TypeVar("RowT")


@dataclass(frozen=True)
class Page(Generic[RowT]):
    """One page of a list: its rows, and the cursor that continues after them (None on the
    last page)."""

    rows: Sequence[RowT]
    next_cursor: str | None


async def _keyset_page(
    session: AsyncSession,
    query: SelectOfScalar[RowT],
    sort: tuple[Mapped[datetime], Mapped[str]],
    after: tuple[datetime, str] | None,
    limit: int,
) -> tuple[Sequence[RowT], bool]:
    """Up to `limit` rows after the position `after` in (time, id) order, and whether more
    follow. Keyset paging: rows added or changed while a client pages never make it skip or
    repeat one."""
    at, key = sort
    if after is not None:
        query = query.where(or_(at > after[0], and_(at == after[0], key > after[1])))
    rows = (await session.scalars(query.order_by(at, key).limit(limit + 1))).all()
    return rows[:limit], len(rows) > limit


async def records_reachable(engine: AsyncEngine) -> bool:
    """Whether the records store answers at all."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


# ---- what operators watch (GET /metrics) -------------------------------------------------------


@dataclass(frozen=True)
class Gauges:
    open_orders: dict[str, int]  # by stage, orders not closed or cancelled
    sla_breached_open_orders: dict[str, int]  # by priority
    failed_notifications: int


async def gauges(session: AsyncSession) -> Gauges:
    running = not_(col(OrderRow.stage).in_([str(stage) for stage in FINAL_STAGES]))
    by_stage = await session.execute(
        select(OrderRow.stage, func.count()).where(running).group_by(OrderRow.stage)
    )
    breached = await session.execute(
        select(OrderRow.priority, func.count())
        .where(running, col(OrderRow.sla_breached))
        .group_by(OrderRow.priority)
    )
    failed = await session.scalar(
        select(func.count()).select_from(NotificationRow).where(NotificationRow.status == "failed")
    )
    return Gauges(
        open_orders=dict(by_stage.tuples().all()),
        sla_breached_open_orders=dict(breached.tuples().all()),
        failed_notifications=failed or 0,
    )


# ---- orders and their event log ------------------------------------------------------------


class OrderPosition(BaseModel):
    """Where a page of orders ended: the (booked_at, order_id) of its last order."""

    model_config = ConfigDict(extra="forbid")

    booked_at: Moment
    order_id: str = Field(min_length=1, max_length=40)


ORDER_CURSOR = KeysetCursor(OrderPosition)


async def list_orders(
    session: AsyncSession,
    *,
    stage: Stage | None = None,
    technician_id: str | None = None,
    priority: Priority | None = None,
    region: str | None = None,
    sla_breached: bool | None = None,
    booked_from: datetime | None = None,
    booked_to: datetime | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[OrderRow]:
    """Orders matching every filter given, oldest booking first (ties by order id); `from` is
    inclusive, `to` exclusive. Raises BadCursor for a cursor this list did not give out."""
    after = None if cursor is None else ORDER_CURSOR.decode(cursor)
    query = select(OrderRow)
    for column, value in (
        (OrderRow.stage, stage),
        (OrderRow.technician_id, technician_id),
        (OrderRow.priority, priority),
        (OrderRow.region, region),
        (OrderRow.sla_breached, sla_breached),
    ):
        if value is not None:
            query = query.where(col(column) == value)
    booked_at = col(OrderRow.booked_at)
    if booked_from is not None:
        query = query.where(booked_at >= booked_from)
    if booked_to is not None:
        query = query.where(booked_at < booked_to)
    rows, more = await _keyset_page(
        session,
        query,
        (booked_at, col(OrderRow.order_id)),
        None if after is None else (after.booked_at, after.order_id),
        limit,
    )
    last = OrderPosition(booked_at=rows[-1].booked_at, order_id=rows[-1].order_id) if more else None
    return Page(rows, None if last is None else ORDER_CURSOR.encode(last))


@dataclass(frozen=True)
class CheckedEvents:
    """An order's event log, and the first sequence number at which its hash chain no longer
    holds (None while it holds)."""

    events: Sequence[EventRow]
    first_bad_seq: int | None


async def order_events(session: AsyncSession, order_id: str) -> CheckedEvents | None:
    """The order's event log in sequence, checked against the chain head its order row holds;
    None if the store knows neither the order nor any event of it."""
    order = await session.get(OrderRow, order_id)
    events = (
        await session.scalars(
            select(EventRow).where(EventRow.order_id == order_id).order_by(col(EventRow.seq))
        )
    ).all()
    if order is None and not events:
        return None
    first_bad = first_broken_seq(
        events,
        last_seq=order.last_seq if order is not None else 0,
        last_hash=order.last_hash if order is not None else None,
    )
    return CheckedEvents(events=events, first_bad_seq=first_bad)


# ---- technicians: the registry, their workload and quality ---------------------------------


def qualifications(row: TechnicianRow) -> Qualifications:
    return Qualifications(
        technician_id=row.id,
        status=TechnicianStatus(row.status),
        skills=tuple(Category(skill) for skill in row.skills),
        regions=tuple(row.regions),
        certificates=tuple(Certificate.model_validate(c) for c in row.certificates),
    )


def schedule(row: TechnicianRow) -> Schedule:
    return Schedule.model_validate(
        {"shifts": row.shifts, "days_off": row.days_off, "on_call": row.on_call}
    )


def schedule_columns(
    shifts: Sequence[Shift], days_off: Sequence[date], on_call: Sequence[OnCall]
) -> dict[str, Any]:
    """A schedule as the technicians table keeps it (JSON)."""
    as_json = Schedule(shifts=tuple(shifts), days_off=tuple(days_off), on_call=tuple(on_call))
    return as_json.model_dump(mode="json")


async def technician(session: AsyncSession, technician_id: str) -> TechnicianRow | None:
    return await session.get(TechnicianRow, technician_id)


async def technician_qualifications(
    session: AsyncSession, technician_id: str
) -> Qualifications | None:
    row = await technician(session, technician_id)
    return None if row is None else qualifications(row)


def _json_certificates(certificates: Sequence[Certificate]) -> list[dict[str, str]]:
    return [c.model_dump(mode="json") for c in certificates]


async def add_technician(
    session: AsyncSession, technician_id: str, details: TechnicianBase, at: datetime
) -> TechnicianRow | None:
    """Register a technician under `technician_id`; None if that id is taken."""
    if await technician(session, technician_id) is not None:
        return None
    row = TechnicianRow(
        id=technician_id,
        name=details.name,
        phone=details.phone,
        skills=[str(skill) for skill in details.skills],
        regions=details.regions,
        certificates=_json_certificates(details.certificates),
        **schedule_columns(details.shifts, details.days_off, details.on_call),
        created_at=at,
        updated_at=at,
    )
    session.add(row)
    await session.flush()
    return row


async def update_technician(
    session: AsyncSession,
    technician_id: str,
    *,
    status: TechnicianStatus | None = None,
    skills: Sequence[Category] | None = None,
    regions: Sequence[str] | None = None,
    certificates: Sequence[Certificate] | None = None,
    shifts: Sequence[Shift] | None = None,
    days_off: Sequence[date] | None = None,
    on_call: Sequence[OnCall] | None = None,
    at: datetime,
) -> TechnicianRow | None:
    """Change what is given and leave the rest; None if there is no such technician."""
    row = await technician(session, technician_id)
    if row is None:
        return None
    if status is not None:
        row.status = status
    if skills is not None:
        row.skills = [str(skill) for skill in skills]
    if regions is not None:
        row.regions = list(regions)
    if certificates is not None:
        row.certificates = _json_certificates(certificates)
    current = schedule(row)
    row.sqlmodel_update(
        schedule_columns(
            current.shifts if shifts is None else shifts,
            current.days_off if days_off is None else days_off,
            current.on_call if on_call is None else on_call,
        )
    )
    row.updated_at = at
    await session.flush()
    return row


async def list_technicians(
    session: AsyncSession,
    *,
    status: TechnicianStatus | None = None,
    skill: Category | None = None,
    region: str | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[TechnicianRow]:
    """Technicians by id, after the id `cursor` if given; the next cursor is a page's last id."""
    query = select(TechnicianRow).order_by(col(TechnicianRow.id))
    if status is not None:
        query = query.where(TechnicianRow.status == status)
    if cursor is not None:
        query = query.where(col(TechnicianRow.id) > cursor)
    rows = [
        row
        for row in (await session.scalars(query)).all()
        if (skill is None or skill in row.skills) and (region is None or region in row.regions)
    ]
    page = rows[:limit]
    return Page(page, page[-1].id if len(rows) > limit else None)


async def active_technicians(session: AsyncSession) -> Sequence[TechnicianRow]:
    return (
        await session.scalars(
            select(TechnicianRow).where(TechnicianRow.status == TechnicianStatus.ACTIVE)
        )
    ).all()


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
    """Each rated technician's mean survey score, to the hundredth."""
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


async def complaints_about_work(session: AsyncSession, technician_id: str) -> int:
    """Complaints filed about work on an order the technician held."""
    count = await session.scalar(
        select(func.count())
        .select_from(ComplaintRow)
        .where(ComplaintRow.technician_id == technician_id, col(ComplaintRow.concerns_work))
    )
    return count or 0


# ---- complaints ------------------------------------------------------------------------------


async def complaints_filed(session: AsyncSession, order_id: str) -> dict[str, datetime]:
    """The order's recorded complaints: complaint id -> when it was filed."""
    rows = await session.execute(
        select(ComplaintRow.complaint_id, ComplaintRow.filed_at).where(
            ComplaintRow.order_id == order_id
        )
    )
    return {complaint_id: filed_at for complaint_id, filed_at in rows.all()}


class ComplaintPosition(NamedTuple):
    """Where a page of complaints ended: the (filed_at, complaint_id) of its last complaint."""

    filed_at: Moment
    complaint_id: Annotated[str, Field(max_length=60)]


COMPLAINT_CURSOR = KeysetCursor(ComplaintPosition)


async def list_complaints(
    session: AsyncSession,
    *,
    state: ComplaintState | None = None,
    tier: int | None = None,
    overdue: bool | None = None,
    now: datetime,
    limit: int,
    cursor: str | None = None,
) -> Page[ComplaintRow]:
    """Complaints matching every filter given, oldest filing first (ties by complaint id);
    `overdue` is judged at `now`. Raises BadCursor for a cursor this list did not give out."""
    after = None if cursor is None else COMPLAINT_CURSOR.decode(cursor)
    query = select(ComplaintRow)
    if state is not None:
        query = query.where(ComplaintRow.state == state.value)
    if tier is not None:
        query = query.where(ComplaintRow.tier == tier)
    if overdue is not None:
        late = or_(
            and_(
                col(ComplaintRow.state) == ComplaintState.OPEN.value,
                col(ComplaintRow.first_reply_due) <= now,
            ),
            and_(
                col(ComplaintRow.state).in_(
                    [ComplaintState.OPEN.value, ComplaintState.ACKNOWLEDGED.value]
                ),
                col(ComplaintRow.resolution_due) <= now,
            ),
        )
        query = query.where(late if overdue else not_(late))
    rows, more = await _keyset_page(
        session, query, (col(ComplaintRow.filed_at), col(ComplaintRow.complaint_id)), after, limit
    )
    last = ComplaintPosition(rows[-1].filed_at, rows[-1].complaint_id) if more else None
    return Page(rows, None if last is None else COMPLAINT_CURSOR.encode(last))


# ---- idempotency keys ------------------------------------------------------------------------


async def remember_key(session: AsyncSession, row: IdempotencyKeyRow) -> IdempotencyKeyRow:
    """The row kept for the key: this one, committed before anything acts on it, or the one a
    request with the same key committed first (concurrent callers all get that one)."""
    existing = await session.get(IdempotencyKeyRow, row.key)
    if existing is not None:
        return existing
    try:
        async with session.begin_nested():  # a lost race rolls back this insert only
            session.add(row)
    except IntegrityError:
        existing = await session.get(IdempotencyKeyRow, row.key)
        if existing is None:  # the winner's row is there once it commits
            raise
        return existing
    await session.commit()
    return row
