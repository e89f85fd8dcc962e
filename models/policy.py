"""The operator's policy file, the durations it is written in, and the business calendar.

Imported by workflow code (passed through the sandbox), so everything here is pure and
deterministic: no wall clock, no I/O at import time; only `load_policy` reads a file.
"""

import os
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainSerializer,
    PlainValidator,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import CoreSchema, ErrorDetails, core_schema

from models.catalog import Category

# Durations


class DurationUnit(StrEnum):
    """The unit a duration is written in; the value is how the canonical form spells it."""

    SECONDS = "s"
    MINUTES = "m"
    HOURS = "h"
    DAYS = "d"
    WORKING_DAYS = "working day"
    BUSINESS_HOURS = "business hour"
    BUSINESS_MINUTES = "business minute"


_WALL_UNIT_LENGTHS = {
    DurationUnit.SECONDS: timedelta(seconds=1),
    DurationUnit.MINUTES: timedelta(minutes=1),
    DurationUnit.HOURS: timedelta(hours=1),
    DurationUnit.DAYS: timedelta(days=1),
}
_BUSINESS_UNIT_LENGTHS = {
    DurationUnit.BUSINESS_HOURS: timedelta(hours=1),
    DurationUnit.BUSINESS_MINUTES: timedelta(minutes=1),
}
_UNIT_LENGTH_BOUNDS = _WALL_UNIT_LENGTHS | _BUSINESS_UNIT_LENGTHS
# Far beyond any service level, yet short enough that no deadline overflows a datetime.
_LONGEST_DURATION = timedelta(days=36500)
_DURATION_EXAMPLES = '"90s", "15m", "72h", "90d", "3 working days", "9 business hours"'
_DURATION_SYNTAX = re.compile(r"\s*([+-]?\d+)\s*([a-z]+(?:\s+[a-z]+)?)\s*", re.ASCII)


class Duration:
    """An amount of wall-clock time ("72h") or of business time ("3 working days").

    Business durations only become time through a business calendar, and working days only
    through the length of a business day, so they deliberately have no `as_timedelta`.
    Equality is by spelling: "60m" and "1h" are different durations of equal length.
    Not a dataclass: pydantic would then serialise it field by field wherever it meets one
    outside a model (JSON schema defaults, a bare activity argument).
    """

    __slots__ = ("_amount", "_unit")

    def __init__(self, amount: int, unit: DurationUnit) -> None:
        if amount <= 0:
            raise ValueError("a duration must be longer than zero")
        # A working day is at most 24 hours long, so this bounds every unit.
        if amount > _LONGEST_DURATION // _UNIT_LENGTH_BOUNDS.get(unit, timedelta(days=1)):
            raise ValueError(f"a duration must not be longer than {_LONGEST_DURATION.days} days")
        self._amount = amount
        self._unit = unit

    @property
    def amount(self) -> int:
        return self._amount

    @property
    def unit(self) -> DurationUnit:
        return self._unit

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Duration):
            return NotImplemented
        return (self.amount, self.unit) == (other.amount, other.unit)

    def __hash__(self) -> int:
        return hash((self.amount, self.unit))

    def __repr__(self) -> str:
        return f"Duration({str(self)!r})"

    @property
    def is_business(self) -> bool:
        return self.unit not in _WALL_UNIT_LENGTHS

    def as_timedelta(self) -> timedelta:
        """The elapsed time of a wall-clock duration."""
        if self.is_business:
            raise ValueError(f"{self} is business time: it needs a business calendar")
        return self.amount * _WALL_UNIT_LENGTHS[self.unit]

    def business_time(self, business_day: timedelta) -> timedelta:
        """The business time a business duration counts, a working day being `business_day`."""
        if not self.is_business:
            raise ValueError(f"{self} is wall-clock time, not business time")
        return self.amount * _BUSINESS_UNIT_LENGTHS.get(self.unit, business_day)

    def __str__(self) -> str:
        if not self.is_business:
            return f"{self.amount}{self.unit}"
        return f"{self.amount} {self.unit}{'' if self.amount == 1 else 's'}"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate_duration,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.to_string_ser_schema(when_used="always"),
        )


_UNIT_SPELLINGS = {unit.value: unit for unit in DurationUnit} | {
    f"{unit.value}s": unit for unit in DurationUnit if unit not in _WALL_UNIT_LENGTHS
}


def parse_duration(text: str) -> Duration:
    """Read a policy-file duration such as "72h" or "3 working days" (any case and spacing)."""
    match = _DURATION_SYNTAX.fullmatch(text.lower())
    unit = _UNIT_SPELLINGS.get(" ".join(match[2].split())) if match else None
    if match is None or unit is None:
        raise ValueError(f"not a duration (use e.g. {_DURATION_EXAMPLES})")
    return Duration(int(match[1]), unit)


def _validate_duration(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    if not isinstance(value, str):
        raise ValueError(f"not a duration: write it as a string (e.g. {_DURATION_EXAMPLES})")
    return parse_duration(value)


# Other policy values


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_WEEKDAYS_BY_NUMBER = tuple(Weekday)  # in date.weekday() order
_CLOCK_TIME_SYNTAX = re.compile(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*", re.ASCII)
_MONEY_SYNTAX = re.compile(r"\s*-?\d+(\.\d{1,2})?\s*", re.ASCII)
_CURRENCY_SYNTAX = re.compile(r"[A-Z]{3}", re.ASCII)


def _parse_clock_time(value: object) -> time:
    if (
        isinstance(value, time)
        and value.tzinfo is None
        and value == value.replace(second=0, microsecond=0)
    ):
        return value
    if isinstance(value, str) and (match := _CLOCK_TIME_SYNTAX.fullmatch(value)):
        return time(int(match[1]), int(match[2]))
    raise ValueError('not a time of day (use 24-hour "HH:MM", e.g. "09:00")')


def _format_clock_time(value: time) -> str:
    return value.strftime("%H:%M")


CENT = Decimal("0.01")


def _parse_money(value: object) -> Decimal:
    # A float has already lost the exact amount, so only text (or a Decimal) is trusted.
    if not isinstance(value, str | Decimal) or not _MONEY_SYNTAX.fullmatch(str(value)):
        raise ValueError(
            "not an amount of money"
            ' (use a decimal string with at most 2 decimal places, e.g. "50.00")'
        )
    amount = Decimal(str(value).strip())
    if amount < 0:
        raise ValueError("an amount of money must not be negative")
    return amount.quantize(CENT)


def _check_currency(value: str) -> str:
    if not _CURRENCY_SYNTAX.fullmatch(value):
        raise ValueError('not a currency code (use three capital letters, e.g. "CNY")')
    return value


def _check_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found, malformed key, or a tzdata directory
        raise ValueError('not an IANA time zone (use e.g. "Asia/Shanghai")') from None
    return name


ClockTime = Annotated[
    time,
    PlainValidator(_parse_clock_time, json_schema_input_type=str),
    PlainSerializer(_format_clock_time, return_type=str),
]
Money = Annotated[Decimal, BeforeValidator(_parse_money, json_schema_input_type=str)]
CurrencyCode = Annotated[StrictStr, AfterValidator(_check_currency)]
TimeZoneName = Annotated[StrictStr, AfterValidator(_check_time_zone)]


# The business calendar


def _require_aware(moment: datetime) -> None:
    if moment.utcoffset() is None:
        raise ValueError(
            f"{moment.isoformat()} has no time zone: business time needs an aware datetime"
        )


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """When the operator is open: a daily window of local wall-clock time on open weekdays.

    Each open day's window runs from `opens` to `closes` on that day's local clock, so on a
    day the clock jumps the window keeps its local times and gains or loses real length.
    All arithmetic is done in UTC: aware datetimes sharing a tzinfo subtract as wall time.
    """

    zone: ZoneInfo
    opens: time
    closes: time
    open_weekdays: frozenset[Weekday]
    holidays: frozenset[date]

    def __post_init__(self) -> None:
        if self.closes <= self.opens:
            raise ValueError("business hours must close after they open")
        if not self.open_weekdays:
            raise ValueError("a business calendar needs at least one open weekday")

    @property
    def business_day(self) -> timedelta:
        """The nominal length of one business day, which is what one working day counts."""
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)

    def add(self, start: datetime, amount: timedelta) -> datetime:
        """The moment `amount` of business time has passed since `start`.

        Counting starts at the next opening when `start` is outside business hours; a zero
        amount returns `start` itself. A result at a closing time stays there (18:00 rather
        than the next morning's 09:00).
        """
        _require_aware(start)
        if amount < timedelta(0):
            raise ValueError("cannot add a negative amount of business time")
        if not amount:
            return start.astimezone(self.zone)
        remaining, since = amount, start.astimezone(UTC)
        day = start.astimezone(self.zone).date()
        while True:
            if window := self._window(day):
                opening, closing = window
                counting_from = max(since, opening)
                if remaining <= closing - counting_from:
                    return (counting_from + remaining).astimezone(self.zone)
                remaining -= max(closing - counting_from, timedelta(0))
            day += timedelta(days=1)

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time elapsed from `start` (included) to `end` (excluded)."""
        _require_aware(start)
        _require_aware(end)
        since, until = start.astimezone(UTC), end.astimezone(UTC)
        elapsed = timedelta(0)
        day, last_day = start.astimezone(self.zone).date(), end.astimezone(self.zone).date()
        while day <= last_day:
            if window := self._window(day):
                opening, closing = window
                elapsed += max(min(closing, until) - max(opening, since), timedelta(0))
            day += timedelta(days=1)
        return elapsed

    def is_open(self, at: datetime) -> bool:
        _require_aware(at)
        window = self._window(at.astimezone(self.zone).date())
        return window is not None and window[0] <= at < window[1]

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        """The day's opening and closing instants in UTC, or None when closed all day."""
        if day in self.holidays or _WEEKDAYS_BY_NUMBER[day.weekday()] not in self.open_weekdays:
            return None
        opening = datetime.combine(day, self.opens, tzinfo=self.zone).astimezone(UTC)
        closing = datetime.combine(day, self.closes, tzinfo=self.zone).astimezone(UTC)
        return opening, closing


# The policy file


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BusinessHours(_Section):
    start: ClockTime = time(9)
    end: ClockTime = time(18)
    days: tuple[Weekday, ...] = tuple(Weekday)
    holidays: tuple[date, ...] = ()

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: time, info: ValidationInfo) -> time:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError(f"must be after business_hours.start ({_format_clock_time(start)})")
        return end

    @field_validator("days")
    @classmethod
    def _days_listed_once(cls, days: tuple[Weekday, ...]) -> tuple[Weekday, ...]:
        if not days:
            raise ValueError("must name at least one day")
        if repeated := sorted({day for day in days if days.count(day) > 1}):
            raise ValueError(f"lists {', '.join(repeated)} more than once")
        return days


class Dispatch(_Section):
    offer_timeout: Duration = parse_duration("15m")
    offer_timeout_emergency: Duration = parse_duration("5m")
    appointment_confirm: Duration = parse_duration("30m")


class ResponseSla(_Section):
    """Booking to an accepted assignment, by priority."""

    emergency: Duration = parse_duration("1h")
    high: Duration = parse_duration("2h")
    normal: Duration = parse_duration("8h")
    low: Duration = parse_duration("24h")


class ArrivalSla(_Section):
    """Booking to check-in when there is no appointment window, by priority."""

    emergency: Duration = parse_duration("4h")
    high: Duration = parse_duration("8h")
    normal: Duration = parse_duration("24h")
    low: Duration = parse_duration("48h")


class Visit(_Section):
    general_repair: Duration = parse_duration("1h")
    workshop_repair: Duration = parse_duration("3 working days")
    parts_dispatch: Duration = parse_duration("24h")
    max_rework: int = Field(default=2, ge=0, strict=True)


class Acceptance(_Section):
    timeout: Duration = parse_duration("72h")
    survey_delay: Duration = parse_duration("24h")


class Warranty(_Section):
    product: Duration = parse_duration("365d")
    post_repair: Duration = parse_duration("90d")
    post_repair_by_category: dict[Category, Duration] = Field(default_factory=dict)

    def post_repair_for(self, category: Category) -> Duration:
        return self.post_repair_by_category.get(category, self.post_repair)


class Complaint(_Section):
    first_reply: Duration = parse_duration("1 working day")
    resolution: Duration = parse_duration("3 working days")
    window_after_close: Duration = parse_duration("90d")  # complaints taken this long after
    per_order_per_day: int = Field(default=3, ge=1, strict=True)  # more is a 429


class Limits(_Section):
    warranty_claims_per_order: int = Field(default=3, ge=0, strict=True)
    booking_horizon: Duration = parse_duration("90d")  # how far ahead a window may start


class Charges(_Section):
    currency: CurrencyCode = "CNY"
    visit_fee: Money = Decimal("50.00")
    labour: dict[str, Money] = Field(default_factory=dict)  # repair item -> price
    # A category's own items, and its own price for an item of `labour`.
    labour_by_category: dict[Category, dict[str, Money]] = Field(default_factory=dict)

    def labour_for(self, category: Category) -> dict[str, Decimal]:
        """The price list of one category: the common items with the category's own."""
        return self.labour | self.labour_by_category.get(category, {})


class Targets(_Section):
    """The quality standards' targets; the KPI report says of each whether it is met."""

    response_within_sla: float = Field(default=0.80, ge=0, le=1)  # share of orders
    resolution_hours: float = Field(default=24, gt=0)  # p80, booking -> the accepted work done
    mttr_hours: float = Field(default=48, gt=0)  # mean, booking -> acceptance
    completion_rate: float = Field(default=0.90, ge=0, le=1)
    satisfaction: float = Field(default=4.25, ge=1, le=5)  # mean score of each dimension, of 5


class Privacy(_Section):
    erase_personal_data_after: Duration = parse_duration("180d")


class Policy(_Section):
    """Every number the service runs by; the defaults are the lifecycle document's."""

    timezone: TimeZoneName = "Asia/Shanghai"
    business_hours: BusinessHours = BusinessHours()
    dispatch: Dispatch = Dispatch()
    response_sla: ResponseSla = ResponseSla()
    arrival_sla: ArrivalSla = ArrivalSla()
    visit: Visit = Visit()
    acceptance: Acceptance = Acceptance()
    warranty: Warranty = Warranty()
    complaint: Complaint = Complaint()
    limits: Limits = Limits()
    charges: Charges = Charges()
    privacy: Privacy = Privacy()
    targets: Targets = Targets()

    @property
    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(
            zone=ZoneInfo(self.timezone),
            opens=self.business_hours.start,
            closes=self.business_hours.end,
            open_weekdays=frozenset(self.business_hours.days),
            holidays=frozenset(self.business_hours.holidays),
        )

    def business_amount(self, duration: Duration) -> timedelta:
        """The business time a business duration counts under these business hours."""
        return duration.business_time(self.calendar.business_day)

    def deadline(self, start: datetime, duration: Duration) -> datetime:
        """When `duration` from `start` runs out, in the operator's time zone."""
        calendar = self.calendar
        if duration.is_business:
            return calendar.add(start, duration.business_time(calendar.business_day))
        _require_aware(start)
        return (start.astimezone(UTC) + duration.as_timedelta()).astimezone(calendar.zone)


class PolicyError(ValueError):
    """The policy file cannot be used; the message says where and why."""


_BARE_TOML_KEY = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def load_policy(path: str | os.PathLike[str] | None) -> Policy:
    """The policy in the TOML file at `path`, or the built-in defaults when `path` is None."""
    if path is None:
        return Policy()
    where = f"policy file {os.fspath(path)}"
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise PolicyError(f"{where}: cannot be read: {error.strerror or error}") from error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise PolicyError(f"{where}: not valid TOML: {error}") from error
    try:
        return Policy.model_validate(document)
    except ValidationError as error:
        problems = (f"{where}: {_describe_problem(problem)}" for problem in error.errors())
        raise PolicyError("\n".join(problems)) from error


def _describe_problem(problem: ErrorDetails) -> str:
    """One validation error as `dotted.key = value: reason`, the way the file spells it."""
    key = _dotted_key(problem["loc"])
    if problem["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    reason = problem["msg"]
    if problem["type"] == "value_error":
        # Our own validators' messages, without pydantic's "Value error, " prefix.
        reason = str(problem.get("ctx", {}).get("error", reason))
    return f"{key} = {problem['input']!r}: {reason}"


def _dotted_key(location: tuple[int | str, ...]) -> str:
    key = ""
    for part in location:
        if isinstance(part, int):
            key += f"[{part}]"
        elif part != "[key]":  # pydantic's marker for an invalid mapping key
            key += f".{part}" if _BARE_TOML_KEY.fullmatch(part) else f'."{part}"'
    return key.lstrip(".")
