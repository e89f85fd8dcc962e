"""Technicians: who may be sent to which job, and in which order they are asked.

Pure rules; the dispatch activity applies them to the registry, the API to manual assignment.
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from models.catalog import Category, CertificateType, required_certificates
from models.fields import Moment, ShortText
from models.order import (
    Phone,
)
from models.policy import ClockTime, Policy, Weekday


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


class Shift(BaseModel):
    """Working hours on some weekdays, in the operator's time zone; an end at or before the
    start runs into the next day (a night shift; 00:00-00:00 is the whole day)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: tuple[Weekday, ...] = Field(min_length=1)
    start: ClockTime
    end: ClockTime


class OnCall(BaseModel):
    """A period in which the technician takes emergencies outside their shifts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: Moment
    end: Moment

    @field_validator("end")
    @classmethod
    def _ends_after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError("end must be after start")
        return end


class Schedule(BaseModel):
    """When a technician is offered jobs: on shift (no shifts: the policy's business hours,
    its holidays off too), never on a day off; for emergencies also when on call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shifts: tuple[Shift, ...] = ()
    days_off: tuple[date, ...] = ()
    on_call: tuple[OnCall, ...] = ()


# How far ahead dispatch looks for the next time somebody is on duty.
DUTY_HORIZON = timedelta(days=31)


def duty_periods(
    schedule: Schedule, policy: Policy, since: datetime, *, emergency: bool
) -> Iterator[tuple[datetime, datetime]]:
    """The technician's periods on duty that end after `since`, in time order and merged,
    up to DUTY_HORIZON ahead: on shift, and for an emergency on call as well."""
    zone = ZoneInfo(policy.timezone)
    hours = policy.business_hours
    shifts = schedule.shifts or (Shift(days=hours.days, start=hours.start, end=hours.end),)
    off = set(schedule.days_off) | set(hours.holidays)
    weekdays = tuple(Weekday)
    periods: list[tuple[datetime, datetime]] = []
    first = since.astimezone(zone).date() - timedelta(days=1)  # a night shift from yesterday
    for offset in range(DUTY_HORIZON.days + 2):
        day = first + timedelta(days=offset)
        if day in off:
            continue
        for shift in shifts:
            if weekdays[day.weekday()] not in shift.days:
                continue
            start = datetime.combine(day, shift.start, zone)
            end_day = day if shift.end > shift.start else day + timedelta(days=1)
            periods.append((start, datetime.combine(end_day, shift.end, zone)))
    if emergency:
        periods += [(period.start, period.end) for period in schedule.on_call]
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted((s.astimezone(UTC), e.astimezone(UTC)) for s, e in periods):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return ((start, end) for start, end in merged if end > since)


def next_on_duty(
    schedule: Schedule, policy: Policy, at: datetime, *, emergency: bool
) -> datetime | None:
    """`at` if the technician is on duty then, else when they next come on; None if not
    within DUTY_HORIZON."""
    for start, _ in duty_periods(schedule, policy, at, emergency=emergency):
        return max(start, at)
    return None


def duty_deadline(
    schedule: Schedule, policy: Policy, start: datetime, amount: timedelta, *, emergency: bool
) -> datetime | None:
    """When `amount` of the technician's duty time has passed since `start` (an offer's
    timeout: time off duty does not count); None if not within DUTY_HORIZON."""
    left = amount
    for period_start, period_end in duty_periods(schedule, policy, start, emergency=emergency):
        begin = max(period_start, start)
        if begin + left <= period_end:
            return begin + left
        left -= period_end - begin
    return None


def first_on_duty(
    candidates: list["Candidate"], policy: Policy, at: datetime, *, emergency: bool
) -> tuple["Candidate | None", datetime | None]:
    """The best candidate on duty at `at`; else none, and when the first of them comes on."""
    upcoming: list[datetime] = []
    for candidate in candidates:
        on = next_on_duty(candidate.schedule, policy, at, emergency=emergency)
        if on == at:
            return candidate, None
        if on is not None:
            upcoming.append(on)
    return None, min(upcoming, default=None)


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    technician_id: str
    in_region: bool
    open_orders: int = Field(ge=0)
    rating: Decimal | None = None  # mean survey score, None before the first survey
    schedule: Schedule = Schedule()


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
    shifts: list[Shift] = Field(default_factory=list, max_length=21)
    days_off: list[date] = Field(default_factory=list, max_length=366)
    on_call: list[OnCall] = Field(default_factory=list, max_length=366)
