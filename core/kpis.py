"""The quality figures (lifecycle.md "Quality figures"), computed in the records store from the
facts each order's row keeps (core/facts.py): one implementation for the KPI report and a
technician's performance.

Every figure is about the orders booked in the period the report asks for (and matching its
filters); a complaint counts with the order it is about. Durations are in hours. Percentiles are
nearest-rank: the p-th percentile of n values is the value at rank ceil(p * n / 100) in
ascending order. Rates are shares of the orders (or complaints) the figure's definition counts
in its denominator; a figure with nothing to count is null, and so is its `met`.
"""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, PlainSerializer
from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    and_,
    case,
    func,
    literal,
    not_,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from models.catalog import Category
from models.order import Clock, Priority
from models.policy import Targets
from models.records import ComplaintRow, OrderRow

HOURS = Decimal("0.01")
SHARE = Decimal("0.001")
PERCENTILES = (50, 80, 90)
DIMENSIONS = ("attitude", "quality", "result", "speed")
MEASURES: dict[str, Any] = {  # the orders' distributions, by the figure they make
    "first_response": col(OrderRow.response_hours),
    "arrival": col(OrderRow.arrival_hours),
    "resolution": col(OrderRow.resolution_hours),
}


class GroupBy(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    REGION = "region"
    CATEGORY = "category"
    TECHNICIAN = "technician"
    PRIORITY = "priority"


GROUP_KEYS: dict[GroupBy, Any] = {
    GroupBy.DAY: col(OrderRow.booked_on),
    GroupBy.WEEK: col(OrderRow.booked_week),
    GroupBy.MONTH: col(OrderRow.booked_month),
    GroupBy.REGION: col(OrderRow.region),
    GroupBy.CATEGORY: col(OrderRow.category),
    GroupBy.TECHNICIAN: col(OrderRow.technician_id),
    GroupBy.PRIORITY: col(OrderRow.priority),
}


@dataclass(frozen=True)
class Filters:
    """Which orders a report covers: booked at or after `booked_from` and before `booked_to`."""

    booked_from: datetime | None = None
    booked_to: datetime | None = None
    region: str | None = None
    category: Category | None = None
    technician_id: str | None = None
    priority: Priority | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        wanted: list[ColumnElement[bool]] = []
        if self.booked_from is not None:
            wanted.append(col(OrderRow.booked_at) >= self.booked_from)
        if self.booked_to is not None:
            wanted.append(col(OrderRow.booked_at) < self.booked_to)
        for column, value in (
            (OrderRow.region, self.region),
            (OrderRow.category, self.category),
            (OrderRow.technician_id, self.technician_id),
            (OrderRow.priority, self.priority),
        ):
            if value is not None:
                wanted.append(col(column) == str(value))
        return wanted


# ---- what the report answers ---------------------------------------------------------------

# Exact while computed and compared with a target; a JSON number when answered.
Figure = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class Distribution(BaseModel):
    count: int = Field(description="How many values the figure is made of.")
    mean: Figure | None
    p50: Figure | None
    p80: Figure | None
    p90: Figure | None


class Rate(BaseModel):
    value: Figure | None = Field(description="numerator / denominator, to the thousandth.")
    numerator: int
    denominator: int


class TargetRate(Rate):
    target: Figure
    met: bool | None = Field(description="value >= target.")


class TargetMean(BaseModel):
    value: Figure | None
    count: int
    target: Figure
    met: bool | None = Field(description="value <= target.")


class TargetDistribution(Distribution):
    target: Figure
    met: bool | None = Field(description="p80 <= target.")


class Satisfaction(BaseModel):
    mean: Figure | None = Field(description="Mean score, 1-5, to the hundredth.")
    responses: int
    response_rate: Figure | None = Field(description="Surveys answered / orders accepted.")
    target: Figure
    met: bool | None = Field(description="mean >= target.")


DEFINITIONS: dict[str, str] = {
    "orders": "Orders booked in the period.",
    "open": "Of those, orders neither accepted nor ended (closed or cancelled) yet.",
    "accepted": "Orders the customer accepted, or that were deemed accepted.",
    "cancelled": "Orders cancelled.",
    "ended_unrepaired": "Orders closed or cancelled without an acceptance.",
    "first_response_hours": "Booking to the first response: an offer accepted or an "
    "assignment (the first move to `scheduled`). Mean, p50, p80, p90.",
    "arrival_hours": "Booking to the technician's first check-in. Mean, p50, p80, p90.",
    "response_within_sla": "Orders with a first response and their response clock unbreached / "
    "orders with a first response or a breached response clock (an order cancelled before "
    "either counts in neither). Target: [targets] response_within_sla.",
    "on_time_arrival_rate": "Orders checked in with their arrival clock (the appointment "
    "window's end, else the arrival SLA) unbreached / orders checked in or with a breached "
    "arrival clock.",
    "mttr_hours": "Mean time to repair: booking to acceptance, mean over accepted orders. "
    "Target: [targets] mttr_hours, met when at most.",
    "mttr_hours_without_deemed": "The same, over orders the customer accepted themselves.",
    "resolution_hours": "Booking to the work done (the last completion, which the customer "
    "accepted), over accepted orders. Target: [targets] resolution_hours, met when p80 is at "
    "most.",
    "first_time_fix_rate": "Accepted orders with no rework and no warranty claim / accepted "
    "orders.",
    "repeat_failure_rate": "Accepted orders with a warranty claim / accepted orders.",
    "rework_rate": "Accepted orders with at least one rework / accepted orders.",
    "completion_rate": "Accepted orders / orders that ended (accepted, or closed or cancelled "
    "without an acceptance). Target: [targets] completion_rate.",
    "orders_with_sla_breach": "Orders with at least one SLA clock breached.",
    "complaints": "Complaints filed about the orders.",
    "complaint_rate": "Orders with at least one complaint / orders.",
    "complaint_first_reply_on_time_rate": "Complaints first answered by their first "
    "deadline / complaints answered or past that deadline.",
    "complaint_resolution_hours": "Filing to the latest resolution of resolved complaints.",
    "satisfaction": "Per survey dimension (attitude, quality, result, speed; 1-5): the mean "
    "score, the answers, and answers / accepted orders. Target: [targets] satisfaction, per "
    "dimension.",
    "sla_breaches": "Breaches by SLA clock and by priority (a clock counts once per order).",
}


def _described(name: str) -> Any:
    return Field(description=DEFINITIONS[name])


class KpiGroup(BaseModel):
    """The quality figures of one group of orders."""

    key: str | None = Field(
        description="The group: a day, the Monday of a week or the first of a month "
        "(YYYY-MM-DD, in the policy's time zone), a region, a category, a technician id or a "
        "priority; null for all orders, or for orders with no technician."
    )
    orders: int = _described("orders")
    open: int = _described("open")
    accepted: int = _described("accepted")
    cancelled: int = _described("cancelled")
    ended_unrepaired: int = _described("ended_unrepaired")
    first_response_hours: Distribution = _described("first_response_hours")
    arrival_hours: Distribution = _described("arrival_hours")
    response_within_sla: TargetRate = _described("response_within_sla")
    on_time_arrival_rate: Rate = _described("on_time_arrival_rate")
    mttr_hours: TargetMean = _described("mttr_hours")
    mttr_hours_without_deemed: TargetMean = _described("mttr_hours_without_deemed")
    resolution_hours: TargetDistribution = _described("resolution_hours")
    first_time_fix_rate: Rate = _described("first_time_fix_rate")
    repeat_failure_rate: Rate = _described("repeat_failure_rate")
    rework_rate: Rate = _described("rework_rate")
    completion_rate: TargetRate = _described("completion_rate")
    orders_with_sla_breach: int = _described("orders_with_sla_breach")
    complaints: int = _described("complaints")
    complaint_rate: Rate = _described("complaint_rate")
    complaint_first_reply_on_time_rate: Rate = _described("complaint_first_reply_on_time_rate")
    complaint_resolution_hours: Distribution = _described("complaint_resolution_hours")
    satisfaction: dict[str, Satisfaction] = _described("satisfaction")
    sla_breaches: dict[str, dict[str, int]] = _described("sla_breaches")


class KpiReport(BaseModel):
    """Without `group_by`, one group (`key` null) even when no order matches; with it, a group
    per value that has orders, in order of the value (priorities by severity)."""

    group_by: GroupBy | None
    booked_from: datetime | None = Field(alias="from")
    booked_to: datetime | None = Field(alias="to")
    targets: Targets
    groups: list[KpiGroup]

    model_config = {"populate_by_name": True}


# ---- the queries -----------------------------------------------------------------------------


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.count().filter(condition)


def _breached(clock: Clock) -> ColumnElement[bool]:
    return col(getattr(OrderRow, f"{clock}_breached")).is_(True)


def _key(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def _share(part: int, whole: int) -> Decimal | None:
    return (Decimal(part) / whole).quantize(SHARE) if whole else None


def _hours(value: float | None) -> Decimal | None:
    return Decimal(str(value)).quantize(HOURS) if value is not None else None


def _distribution_queries(
    values: Sequence[Any],
    key: Any,
    conditions: Sequence[ColumnElement[bool]],
    *,
    postgres: bool,
    join_complaints: bool = False,
) -> list[Select[Any]]:
    """Per group, for each of `values`: the count, the mean and the nearest-rank percentiles.
    PostgreSQL's ordered-set aggregate gives all of them in one scan; SQLite has none, so there
    each value is ranked within its group, in a query of its own, and a percentile is the first
    value at or past its rank."""
    keyed = (key if key is not None else literal(None)).label("key")

    def scope(query: Select[Any]) -> Select[Any]:
        if join_complaints:
            query = query.select_from(ComplaintRow).join(
                OrderRow, col(OrderRow.order_id) == col(ComplaintRow.order_id)
            )
        return query.where(*conditions)

    if postgres:
        fractions = postgresql.array([p / 100 for p in PERCENTILES])
        aggregates = [
            aggregate
            for value in values
            for aggregate in (
                func.count(value),
                func.avg(value),
                func.percentile_disc(fractions).within_group(value),
            )
        ]
        query = scope(select(keyed, *aggregates))
        return [query.group_by(key) if key is not None else query]
    queries = []
    for value in values:
        partition = {"partition_by": key} if key is not None else {}
        ranked = scope(
            select(
                keyed,
                value.label("x"),
                func.row_number().over(order_by=value, **partition).label("rn"),
                func.count().over(**partition).label("n"),
            ).where(value.is_not(None))
        ).subquery()
        percentiles = [
            func.min(case((ranked.c.rn * 100 >= p * ranked.c.n, ranked.c.x))) for p in PERCENTILES
        ]
        queries.append(
            select(ranked.c.key, func.count(), func.avg(ranked.c.x), *percentiles).group_by(
                ranked.c.key
            )
        )
    return queries


def _distributions(
    results: Sequence[Sequence[Row[Any]]], measures: int, *, postgres: bool
) -> list[dict[str | None, Distribution]]:
    """What `_distribution_queries` found: for each value, its distribution in each group."""
    found: list[dict[str | None, Distribution]] = [{} for _ in range(measures)]
    for n, rows in enumerate(results):
        for row in rows:
            group, figures = row[0], list[Any](row[1:])
            if postgres:  # one query: (count, mean, [p50, p80, p90]) per value
                per_value = [
                    (figures[i], figures[i + 1], figures[i + 2] or (None, None, None))
                    for i in range(0, len(figures), 3)
                ]
            else:  # one query per value: count, mean, p50, p80, p90
                per_value = [(figures[0], figures[1], figures[2:])]
            for m, (count, mean, (p50, p80, p90)) in enumerate(per_value, start=n):
                found[m][_key(group)] = Distribution(
                    count=count,
                    mean=_hours(mean),
                    p50=_hours(p50),
                    p80=_hours(p80),
                    p90=_hours(p90),
                )
    return found


async def report(
    session: AsyncSession,
    targets: Targets,
    filters: Filters,
    group_by: GroupBy | None,
    now: datetime,
) -> KpiReport:
    key = GROUP_KEYS[group_by] if group_by is not None else None
    conditions = filters.conditions()
    accepted = col(OrderRow.accepted_at).is_not(None)
    ended = or_(col(OrderRow.closed_at).is_not(None), col(OrderRow.cancelled_at).is_not(None))
    deemed = func.coalesce(col(OrderRow.acceptance_deemed), False)
    responded = col(OrderRow.first_response_at).is_not(None)
    arrived = col(OrderRow.checked_in_at).is_not(None)
    figures = {
        "orders": func.count(),
        "accepted": _count_if(accepted),
        "cancelled": _count_if(col(OrderRow.cancelled_at).is_not(None)),
        "unrepaired": _count_if(and_(not_(accepted), ended)),
        "response_ok": _count_if(responded & not_(_breached(Clock.RESPONSE))),
        "response_decided": _count_if(responded | _breached(Clock.RESPONSE)),
        "arrival_ok": _count_if(arrived & not_(_breached(Clock.ARRIVAL))),
        "arrival_decided": _count_if(arrived | _breached(Clock.ARRIVAL)),
        "mttr": func.avg(col(OrderRow.repair_hours)),
        "mttr_own": func.avg(case((not_(deemed), col(OrderRow.repair_hours)))),
        "accepted_own": _count_if(accepted & not_(deemed)),
        "first_time": _count_if(
            accepted & (col(OrderRow.rework_count) == 0) & (col(OrderRow.claims) == 0)
        ),
        "repeat": _count_if(accepted & (col(OrderRow.claims) > 0)),
        "reworked": _count_if(accepted & (col(OrderRow.rework_count) > 0)),
        "with_breach": _count_if(col(OrderRow.sla_breached).is_(True)),
    }
    for dimension in DIMENSIONS:
        score = getattr(OrderRow, f"survey_{dimension}")
        figures[f"{dimension}_mean"] = func.avg(score)
        figures[f"{dimension}_answers"] = func.count(score)
    for clock in Clock:
        for priority in Priority:
            breached = _breached(clock) & (col(OrderRow.priority) == str(priority))
            figures[f"breached_{clock}_{priority}"] = _count_if(breached)
    postgres = session.get_bind().dialect.name == "postgresql"
    grouped = [key.label("key")] if key is not None else []
    labelled = [figure.label(name) for name, figure in figures.items()]
    # The counts and the percentiles are queries of their own, run side by side on connections
    # of their own: on PostgreSQL the counts then scan in parallel, which a percentile in the
    # same query would stop.
    orders_distributions = _distribution_queries(
        list(MEASURES.values()), key, conditions, postgres=postgres
    )
    complaints_distribution = _distribution_queries(
        [col(ComplaintRow.resolution_hours)],
        key,
        conditions,
        postgres=postgres,
        join_complaints=True,
    )
    main, complaints, *distributions = await _side_by_side(
        session,
        [
            select(*grouped, *labelled).where(*conditions).group_by(*grouped),
            _complaints(key, conditions, now),
            *orders_distributions,
            *complaints_distribution,
        ],
    )
    first_response, arrival, resolution = _distributions(
        distributions[: len(orders_distributions)], len(MEASURES), postgres=postgres
    )
    (complaint_resolution,) = _distributions(
        distributions[len(orders_distributions) :], 1, postgres=postgres
    )
    rows = [(_key(row.key) if key is not None else None, row._asdict()) for row in main]
    lookups = Lookups(
        first_response=first_response,
        arrival=arrival,
        resolution=resolution,
        complaint_resolution=complaint_resolution,
        complaints={
            (_key(row[0]) if key is not None else None): tuple(row[-4:]) for row in complaints
        },
    )
    groups = [_group(group, values, lookups, targets) for group, values in rows]
    severity = {str(priority): n for n, priority in enumerate(Priority)}  # emergency first
    groups.sort(key=lambda group: (group.key is None, severity.get(group.key or ""), group.key))
    return KpiReport(
        group_by=group_by,
        booked_from=filters.booked_from,
        booked_to=filters.booked_to,
        targets=targets,
        groups=groups,
    )


@dataclass
class Lookups:
    """The figures of each group that come from queries of their own."""

    first_response: dict[str | None, Distribution]
    arrival: dict[str | None, Distribution]
    resolution: dict[str | None, Distribution]
    complaint_resolution: dict[str | None, Distribution]
    complaints: dict[str | None, tuple[int, int, int, int]]


EMPTY = Distribution(count=0, mean=None, p50=None, p80=None, p90=None)


def _group(
    key: str | None, values: Mapping[str, Any], lookups: Lookups, targets: Targets
) -> KpiGroup:
    """One group's figures from its row of the main query (no row: a group with no orders)."""

    def count(name: str) -> int:
        number: int = values.get(name) or 0
        return number

    orders, accepted, unrepaired = count("orders"), count("accepted"), count("unrepaired")
    filed, complained, replied_on_time, reply_decided = lookups.complaints.get(key, (0, 0, 0, 0))
    resolved = lookups.resolution.get(key, EMPTY)
    resolution_target = _target(targets.resolution_hours)
    return KpiGroup(
        key=key,
        orders=orders,
        open=orders - accepted - unrepaired,
        accepted=accepted,
        cancelled=count("cancelled"),
        ended_unrepaired=unrepaired,
        first_response_hours=lookups.first_response.get(key, EMPTY),
        arrival_hours=lookups.arrival.get(key, EMPTY),
        response_within_sla=_target_rate(
            count("response_ok"), count("response_decided"), targets.response_within_sla
        ),
        on_time_arrival_rate=_rate(count("arrival_ok"), count("arrival_decided")),
        mttr_hours=_target_mean(values.get("mttr"), accepted, targets.mttr_hours),
        mttr_hours_without_deemed=_target_mean(
            values.get("mttr_own"), count("accepted_own"), targets.mttr_hours
        ),
        resolution_hours=TargetDistribution(
            **resolved.model_dump(),
            target=resolution_target,
            met=resolved.p80 <= resolution_target if resolved.p80 is not None else None,
        ),
        first_time_fix_rate=_rate(count("first_time"), accepted),
        repeat_failure_rate=_rate(count("repeat"), accepted),
        rework_rate=_rate(count("reworked"), accepted),
        completion_rate=_target_rate(accepted, accepted + unrepaired, targets.completion_rate),
        orders_with_sla_breach=count("with_breach"),
        complaints=filed,
        complaint_rate=_rate(complained, orders),
        complaint_first_reply_on_time_rate=_rate(replied_on_time, reply_decided),
        complaint_resolution_hours=lookups.complaint_resolution.get(key, EMPTY),
        satisfaction={
            dimension: _satisfaction(
                values.get(f"{dimension}_mean"),
                count(f"{dimension}_answers"),
                accepted,
                targets.satisfaction,
            )
            for dimension in DIMENSIONS
        },
        sla_breaches=_breaches(values),
    )


def _breaches(values: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Breaches by clock and priority, the clocks and priorities with none left out."""
    breaches: dict[str, dict[str, int]] = {}
    for clock in Clock:
        for priority in Priority:
            if count := values.get(f"breached_{clock}_{priority}"):
                breaches.setdefault(str(clock), {})[str(priority)] = count
    return breaches


def blank_group(targets: Targets) -> KpiGroup:
    """A group with no orders: what an empty report's CSV takes its columns from."""
    empty = Lookups({}, {}, {}, {}, {})
    return _group(None, {}, empty, targets)


def _complaints(key: Any, conditions: Sequence[ColumnElement[bool]], now: datetime) -> Select[Any]:
    """Per group: complaints, orders complained about, first replies on time, and first replies
    given or due."""
    replied = col(ComplaintRow.first_replied_at).is_not(None)
    due = col(ComplaintRow.original_first_reply_due)
    grouped = [key] if key is not None else []
    return (
        select(
            *grouped,
            func.count(),
            func.count(func.distinct(col(ComplaintRow.order_id))),
            _count_if(replied & (col(ComplaintRow.first_replied_at) <= due)),
            _count_if(replied | (due < now)),
        )
        .select_from(ComplaintRow)
        .join(OrderRow, col(OrderRow.order_id) == col(ComplaintRow.order_id))
        .where(*conditions)
        .group_by(*grouped)
    )


async def _side_by_side(
    session: AsyncSession, statements: Sequence[Select[Any]]
) -> list[Sequence[Row[Any]]]:
    """The statements' rows, each run on a connection of its own, all at once."""
    engine = session.bind
    if not isinstance(engine, AsyncEngine):
        raise TypeError("the report needs a session bound to an engine")

    async def rows(statement: Select[Any]) -> Sequence[Row[Any]]:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # The percentiles sort every group's values in memory rather than on disk.
                await connection.execute(text("SET LOCAL work_mem = '64MB'"))
            found: Sequence[Row[Any]] = (await connection.execute(statement)).all()
            return found

    return list(await asyncio.gather(*(rows(statement) for statement in statements)))


def _target(value: float) -> Decimal:
    return Decimal(str(value))


def _rate(part: int, whole: int) -> Rate:
    return Rate(value=_share(part, whole), numerator=part, denominator=whole)


def _target_rate(part: int, whole: int, target: float) -> TargetRate:
    value = _share(part, whole)
    goal = _target(target)
    return TargetRate(
        value=value,
        numerator=part,
        denominator=whole,
        target=goal,
        met=value >= goal if value is not None else None,
    )


def _target_mean(mean: float | None, count: int, target: float) -> TargetMean:
    value = _hours(mean)
    goal = _target(target)
    return TargetMean(
        value=value, count=count, target=goal, met=value <= goal if value is not None else None
    )


def _satisfaction(mean: float | None, count: int, accepted: int, target: float) -> Satisfaction:
    value = _hours(mean)
    goal = _target(target)
    return Satisfaction(
        mean=value,
        responses=count,
        response_rate=_share(count, accepted),
        target=goal,
        met=value >= goal if value is not None else None,
    )
