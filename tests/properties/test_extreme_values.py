"""Orders made of extreme but accepted values go from booking to their end on both records
engines (issue 13): every text, date and money field at the limits its type declares.

What it proves, for each drawn order, on SQLite and on PostgreSQL, through the real app, a real
worker and a real Temporal dev server:
- every request the strategies build is one the API takes (2xx; a 422 or 413 is a failure);
- the order ends closed (booked, assigned, appointment, check-in, a safety stop and its
  clearing, a parts wait, diagnosis with a quote where the customer pays, approval, service
  record, completion, at times a rejection and rework, acceptance, survey, and the end of the
  warranty window) or cancelled (at times after a declined offer, an assignment, an
  appointment and a reschedule);
- once the records writes have caught up (`pending_writes.records` is 0), GET /events has
  `chain_ok` true and exactly one event per timeline entry, equal to it;
- what was sent comes back unchanged in GET /v1/orders/{id} (stripped of the surrounding
  whitespace the types strip): customer, appliance, fault, windows (the same instants),
  diagnosis, quote and charges, parts requested, service record, acceptance, survey,
  cancellation reason, and the free texts the timeline shows;
- no workflow task of the order ever failed (its history has no WorkflowTaskFailed event).

The limits are read from the types (models/fields.py, models/order.py), not copied: maximum
lengths, texts from every Unicode category a type allows (CJK, astral emoji, combining marks,
right-to-left text, format characters, private use, noncharacters, U+10FFFF; line breaks and
tabs in long text; control characters where a type lets them through: photo references and the
email address), surrounding whitespace, amounts from 0.00 and 0.01 to MAX_AMOUNT in several
spellings, MAX_LINES lines and MAX_QTY pieces, purchase dates from 1970-01-01 to today, visit
windows one minute long, starting at the booking horizon's edge or at 1970, ending just before
2200, written with offsets from -12:00 to +14:00. Long texts are a short drawn pattern repeated
to the drawn length, so that each example stays small for Hypothesis while every field can
reach its maximum. Bodies past the API's request limit (a 413 by design) are not drawn.

The policy gives a warranty window of WARRANTY_WINDOW, so accepted orders really close during
the test, and a price-list labour item, so quotes can name one without an amount.

What it does not prove: values past the limits (tests/api/test_input_limits.py refuses those),
complaints and warranty claims, many orders at once, or the notification channels' own limits
(messages go to the outbox). Few examples run per engine, chosen by a fixed seed: this is a
repeatable probe of the edges, not an exhaustive search.
"""

import json
import re
import tomllib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args

import annotated_types
import httpx
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, StringConstraints
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.errors import MAX_BODY_BYTES
from core.settings import Settings
from core.tokens import mint_token
from models.catalog import Category, CertificateType
from models.fields import EARLIEST, LATEST, MAX_AMOUNT, MAX_LINES, MAX_QTY, ShortText, Text
from models.order import (
    Channel,
    Customer,
    Email,
    Exclusion,
    Phone,
    PhotoRef,
    Priority,
    QuotePart,
    ServiceRecord,
    Survey,
    WarrantyStatus,
    local_date,
)
from models.policy import CENT, Policy
from models.records import IdempotencyKeyRow, TechnicianRow
from tests.api.client import AUTH_SECRET, app_and_worker
from tests.factories import ROUND_THE_CLOCK
from tests.waiting import eventually

Json = dict[str, Any]
Headers = dict[str, str]

# ---- the policy the orders are booked under ------------------------------------------------------

# Long enough for the customer to answer the survey after accepting (the survey is refused once
# the window has ended), short enough that accepted orders close while the test waits.
WARRANTY_WINDOW = timedelta(seconds=4)
PRICE_LIST_ITEM = "整机检修 🔧 full service"
POLICY_TOML = f"""
[warranty]
post_repair = "{WARRANTY_WINDOW.seconds}s"

[charges.labour]
"{PRICE_LIST_ITEM}" = "{MAX_AMOUNT}"
"""
POLICY = Policy.model_validate(tomllib.loads(POLICY_TOML))
# A window may start up to the booking horizon ahead of the moment the API checks it, which is
# a little after the moment the test computes it: this much earlier stays inside.
HORIZON_MARGIN = timedelta(minutes=1)
# How long the records writes and the warranty window may take to settle before it is a failure.
SETTLE_WITHIN = WARRANTY_WINDOW + timedelta(seconds=60)


# ---- the limits, as the types declare them -------------------------------------------------------


def string_limit(annotated: Any, name: str) -> Any:
    """A constraint of a constrained string type (max_length, pattern, ...)."""
    for constraint in get_args(annotated)[1:]:
        if isinstance(constraint, StringConstraints) and getattr(constraint, name) is not None:
            return getattr(constraint, name)
    raise LookupError(f"{annotated} declares no {name}")


def field_bounds(model: type[BaseModel], field: str) -> tuple[int, int]:
    """The inclusive (ge, le) bounds of an integer field."""
    low = high = None
    for constraint in model.model_fields[field].metadata:
        if isinstance(constraint, annotated_types.Ge):
            low = int(str(constraint.ge))
        if isinstance(constraint, annotated_types.Le):
            high = int(str(constraint.le))
    if low is None or high is None:
        raise LookupError(f"{model.__name__}.{field} declares no bounds")
    return low, high


def max_length(model: type[BaseModel], field: str) -> int:
    for constraint in model.model_fields[field].metadata:
        if isinstance(constraint, annotated_types.MaxLen):
            return constraint.max_length
    raise LookupError(f"{model.__name__}.{field} declares no max_length")


SHORT_TEXT_MAX: int = string_limit(ShortText, "max_length")
LONG_TEXT_MAX: int = string_limit(Text, "max_length")
EMAIL_MAX: int = string_limit(Email, "max_length")
PHOTO_REF_MAX: int = string_limit(PhotoRef, "max_length")
PHONE_PATTERN = re.compile(string_limit(Phone, "pattern"))
# The phone pattern's repeated part: how many characters may follow the first digit.
_PHONE_REPEAT = re.search(r"\{(\d+),(\d+)\}\$$", PHONE_PATTERN.pattern)
assert _PHONE_REPEAT is not None, "the phone pattern changed: update phones()"
PHONE_REST = (int(_PHONE_REPEAT[1]), int(_PHONE_REPEAT[2]))
QTY = field_bounds(QuotePart, "qty")
LABOUR_MINUTES = field_bounds(ServiceRecord, "labour_minutes")
SCORE = field_bounds(Survey, "attitude")
TECHNICIAN_ID_MAX = max_length(TechnicianRow, "id")
IDEMPOTENCY_KEY_MAX = max_length(IdempotencyKeyRow, "key")
LOCALES: tuple[str, ...] = get_args(Customer.model_fields["locale"].annotation)
assert QTY[1] == MAX_QTY, "a quote line's largest quantity is MAX_QTY"


# ---- what is sent, and how it must come back -----------------------------------------------------


class Amount(str):
    """An amount as sent (any spelling the API takes); it must come back as the same number."""


class Instant(str):
    """A time as sent (any UTC offset); it must come back as the same instant."""


def encoded(body: Json) -> bytes:
    """The body as a client sends it: UTF-8 JSON, characters unescaped."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def fits(body: Json) -> bool:
    """Within the API's request limit: a bigger body is a 413 by design, not an edge here."""
    return len(encoded(body)) <= MAX_BODY_BYTES


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 160 else f"{text[:150]}... ({len(text)} chars)"


def assert_kept(sent: object, answer: object, where: str) -> None:
    """The answer holds what was sent: texts without the whitespace around them, amounts as
    the same number, times as the same instant; keys the answer adds are not compared."""
    if isinstance(sent, Amount):
        assert answer is not None, f"{where}: sent {sent!r}, got nothing"
        assert Decimal(str(answer)) == Decimal(sent), f"{where}: sent {sent!r}, got {answer!r}"
    elif isinstance(sent, Instant):
        assert isinstance(answer, str), f"{where}: sent {sent!r}, got {answer!r}"
        assert datetime.fromisoformat(answer) == datetime.fromisoformat(sent), (
            f"{where}: sent {sent!r}, got {answer!r}"
        )
    elif isinstance(sent, str):
        if answer != sent.strip():
            pairs = zip(str(answer), sent.strip(), strict=False)
            differs = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
            raise AssertionError(
                f"{where}: sent {shown(sent)}, got {shown(answer)} (first difference at "
                f"{differs}; lengths {len(sent.strip())} and {len(str(answer))})"
            )
    elif isinstance(sent, dict):
        assert isinstance(answer, dict), f"{where}: sent an object, got {shown(answer)}"
        for key, value in sent.items():
            assert_kept(value, answer.get(key), f"{where}.{key}")
    elif isinstance(sent, list | tuple):
        assert isinstance(answer, list), f"{where}: sent a list, got {shown(answer)}"
        assert len(answer) == len(sent), f"{where}: sent {len(sent)} items, got {len(answer)}"
        for index, (one, other) in enumerate(zip(sent, answer, strict=True)):
            assert_kept(one, other, f"{where}[{index}]")
    else:
        assert answer == sent, f"{where}: sent {sent!r}, got {answer!r}"


# ---- strategies: texts ---------------------------------------------------------------------------

# One of each corner of Unicode a person's text may hold: CJK, an astral CJK ideograph and an
# emoji (4 bytes in UTF-8, two UTF-16 units), a combining mark, Hebrew and Arabic letters, a
# right-to-left override, a zero-width joiner, a byte-order mark, no-break, ideographic, line and
# paragraph separators (whitespace inside a text), private use, noncharacters and the last code
# point, and what JSON, SQL, HTML and format strings treat specially.
ODD_CHARACTERS = (
    "修\U00020000🔧\u0301\u05d0\u0627\u202e\u200d\ufeff\u00a0\u3000\u2028\u2029"
    "\ue000\ufdd0\uffff\U0010ffff\"\\'<>&{}%$;"
)
ANY_ENCODABLE = st.characters(codec="utf-8")  # everything but lone surrogates
# The first and last character: whitespace there is stripped by the types, so a text begins
# and ends with something else, and what must come back is the text without its padding.
VISIBLE = st.one_of(
    st.sampled_from([c for c in ODD_CHARACTERS if not c.isspace()]),
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
).filter(lambda c: not c.isspace())
# What ShortText and Text hold: no control characters (Text keeps newline and tab).
PLAIN = st.one_of(
    st.sampled_from(ODD_CHARACTERS),
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
)
WITH_LINE_BREAKS = st.one_of(PLAIN, st.sampled_from("\n\t"))
WITH_CONTROLS = st.one_of(st.sampled_from(ODD_CHARACTERS), ANY_ENCODABLE)
Padding = tuple[str, str]
SHORT_PADDING: Sequence[Padding] = (("", ""), (" ", ""), ("", "  "), ("\u3000", "\u00a0"))
LONG_PADDING: Sequence[Padding] = (*SHORT_PADDING, ("\n\t", "\n"), ("\t", " \n "))


def tiled(seed: str, size: int) -> str:
    return (seed * (size // len(seed) + 1))[:size]


@st.composite
def texts(
    draw: st.DrawFn,
    max_size: int,
    *,
    inner: st.SearchStrategy[str] = PLAIN,
    padding: Sequence[Padding] = SHORT_PADDING,
) -> str:
    """A text of 1 to max_size characters (often exactly max_size) once the padding around it is
    stripped: a drawn first and last character around a drawn pattern repeated to length."""
    size = draw(st.one_of(st.sampled_from((max_size, 1)), st.integers(1, max_size)))
    core = draw(VISIBLE)
    if size > 1:
        pattern = draw(st.text(inner, min_size=1, max_size=24))
        core += tiled(pattern, size - 2) + draw(VISIBLE)
    before, after = draw(st.sampled_from(padding))
    return before + core + after


def short_texts(max_size: int = SHORT_TEXT_MAX) -> st.SearchStrategy[str]:
    return texts(max_size)


def long_texts() -> st.SearchStrategy[str]:
    return texts(LONG_TEXT_MAX, inner=WITH_LINE_BREAKS, padding=LONG_PADDING)


def photo_refs() -> st.SearchStrategy[str]:
    """A photo reference: its type limits only the length, so control characters are in."""
    return texts(PHOTO_REF_MAX, inner=WITH_CONTROLS)


def sizes(low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from((low, high)), st.integers(low, high))


@st.composite
def phones(draw: st.DrawFn) -> str:
    """A phone number the pattern takes, from the shortest to the longest."""
    least, most = PHONE_REST
    rest = draw(sizes(least, most))
    middle = draw(st.text("0123456789 -", min_size=rest - 1, max_size=rest - 1))
    phone = (
        draw(st.sampled_from(("", "+")))
        + draw(st.sampled_from("0123456789"))
        + middle
        + draw(st.sampled_from("0123456789-"))
    )
    assert PHONE_PATTERN.fullmatch(phone), phone
    before, after = draw(st.sampled_from(SHORT_PADDING[:3]))
    return before + phone + after


EMAIL_CHARACTERS = WITH_CONTROLS.filter(lambda c: c != "@" and not c.isspace())


@st.composite
def emails(draw: st.DrawFn) -> str:
    """local@domain.tld of any characters but @ and whitespace (the type's pattern), up to the
    longest the type takes."""
    size = draw(sizes(5, EMAIL_MAX))
    local = draw(st.integers(1, size - 4))
    domain = draw(st.integers(1, size - local - 3))
    tld = size - local - domain - 2
    parts = [
        tiled(draw(st.text(EMAIL_CHARACTERS, min_size=1, max_size=12)), part)
        for part in (local, domain, tld)
    ]
    return f"{parts[0]}@{parts[1]}.{parts[2]}"


# ---- strategies: money, dates, windows -----------------------------------------------------------


@st.composite
def amounts(draw: st.DrawFn) -> Amount:
    """0.00 to MAX_AMOUNT, spelled as a person or a program may: 80.00, 80, 8E+1."""
    value = draw(
        st.one_of(
            st.sampled_from((CENT, MAX_AMOUNT, Decimal("0.00"))),
            st.decimals(min_value=0, max_value=MAX_AMOUNT, places=2),
        )
    )
    spelling = draw(st.sampled_from(("fixed", "shortest", "exponent")))
    if spelling == "fixed":
        return Amount(f"{value:.2f}")
    if spelling == "shortest":
        return Amount(f"{value.normalize():f}")
    return Amount(f"{value.normalize():E}")


def today() -> date:
    """The operator's today: the latest purchase date the API takes."""
    return local_date(datetime.now(UTC), POLICY)


def purchase_dates() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(EARLIEST.date()),
        st.builds(today),
        st.dates(min_value=EARLIEST.date(), max_value=today()),
    ).map(date.isoformat)


WindowStart = Literal["1970", "three hours ago", "in two minutes", "at the horizon"]
WindowEnd = Literal["a minute later", "in two hours", "just before 2200"]
# Shapes that are not over when sent: a one-minute window must start in the future.
WINDOW_SHAPES: Sequence[tuple[WindowStart, WindowEnd]] = (
    ("in two minutes", "a minute later"),
    ("at the horizon", "a minute later"),
    ("at the horizon", "just before 2200"),
    ("in two minutes", "just before 2200"),
    ("1970", "just before 2200"),
    ("1970", "in two hours"),
    ("three hours ago", "in two hours"),
)
UTC_OFFSETS = tuple(
    timedelta(hours=hours, minutes=minutes)
    for hours, minutes in ((0, 0), (14, 0), (-12, 0), (5, 45), (-9, -30))
)


@dataclass(frozen=True)
class Window:
    """A visit window, placed when it is sent: its edges are relative to that moment."""

    start: WindowStart
    end: WindowEnd
    utc_offset: timedelta
    microseconds: bool
    zulu: bool  # UTC written as Z rather than +00:00

    def at(self, now: datetime) -> Json:
        if not self.microseconds:
            now = now.replace(microsecond=0)
        horizon = POLICY.deadline(now, POLICY.limits.booking_horizon) - HORIZON_MARGIN
        start = {
            "1970": EARLIEST,
            "three hours ago": now - timedelta(hours=3),
            "in two minutes": now + timedelta(minutes=2),
            "at the horizon": horizon,
        }[self.start]
        last = LATEST - (timedelta(microseconds=1) if self.microseconds else timedelta(seconds=1))
        end = {
            "a minute later": start + timedelta(minutes=1),
            "in two hours": now + timedelta(hours=2),
            "just before 2200": last,
        }[self.end]
        return {"start": self._written(start), "end": self._written(end)}

    def _written(self, moment: datetime) -> Instant:
        text = moment.astimezone(timezone(self.utc_offset)).isoformat(
            timespec="microseconds" if self.microseconds else "seconds"
        )
        return Instant(text.replace("+00:00", "Z") if self.zulu else text)


@st.composite
def windows(draw: st.DrawFn) -> Window:
    start, end = draw(st.sampled_from(WINDOW_SHAPES))
    return Window(
        start=start,
        end=end,
        utc_offset=draw(st.sampled_from(UTC_OFFSETS)),
        microseconds=draw(st.booleans()),
        zulu=draw(st.booleans()),
    )


# ---- strategies: the bodies ----------------------------------------------------------------------


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def without_none(body: Json) -> Json:
    """Optional fields left out rather than sent as null."""
    return {key: value for key, value in body.items() if value is not None}


@st.composite
def bookings(draw: st.DrawFn) -> Json:
    category = draw(st.sampled_from(list(Category)))
    proof = draw(st.booleans())
    purchased = draw(purchase_dates() if proof else optional(purchase_dates()))
    customer = {
        "name": draw(short_texts()),
        "phone": draw(phones()),
        "email": draw(optional(emails())),
        "address": draw(long_texts()),
        "region": draw(short_texts()),
        "locale": draw(optional(st.sampled_from(LOCALES))),
    }
    appliance = {
        "category": category,
        "brand": draw(optional(short_texts())),
        "model": draw(optional(short_texts())),
        "serial": draw(optional(short_texts())),
        "gas_fired": draw(st.booleans()),
        "purchase_date": purchased,
        "proof_of_purchase": proof,
    }
    return {
        "customer": without_none(customer),
        "appliance": without_none(appliance),
        "fault": {"description": draw(long_texts())},
        "priority": draw(st.sampled_from(list(Priority))),
        "channel": draw(st.sampled_from(list(Channel))),
    }


def line_counts(least: int = 0) -> st.SearchStrategy[int]:
    return sizes(least, MAX_LINES)


@st.composite
def quote_items(draw: st.DrawFn) -> Json:
    if draw(st.booleans()):  # priced by the price list: named, no amount
        before, after = draw(st.sampled_from(SHORT_PADDING))
        return {"description": before + PRICE_LIST_ITEM + after}
    return {"description": draw(short_texts()), "amount": draw(amounts())}


@st.composite
def quote_parts(draw: st.DrawFn) -> Json:
    return without_none(
        {
            "part_no": draw(short_texts()),
            "description": draw(optional(short_texts())),
            "qty": draw(sizes(*QTY)),
            "unit_cost": draw(amounts()),
        }
    )


@st.composite
def diagnoses(draw: st.DrawFn) -> tuple[Json, Json]:
    """The diagnosis and a quote for it (sent when the customer pays, and at times anyway)."""
    diagnosis = without_none(
        {
            "fault_cause": draw(long_texts()),
            "plan": draw(long_texts()),
            "warranty_exclusion": draw(optional(st.sampled_from(list(Exclusion)))),
        }
    )
    items = draw(line_counts())
    parts = draw(line_counts())
    quote = {
        "items": draw(st.lists(quote_items(), min_size=items, max_size=items)),
        "parts": draw(st.lists(quote_parts(), min_size=parts, max_size=parts)),
    }
    return diagnosis, quote


@st.composite
def parts_requests(draw: st.DrawFn) -> Json:
    count = draw(line_counts(1))
    part = st.builds(
        lambda part_no, description, qty: without_none(
            {"part_no": part_no, "description": description, "qty": qty}
        ),
        short_texts(),
        optional(short_texts()),
        sizes(*QTY),
    )
    return {"parts": draw(st.lists(part, min_size=count, max_size=count))}


@st.composite
def service_records(draw: st.DrawFn) -> Json:
    replaced = draw(line_counts())
    part = st.builds(
        lambda part_no, qty, unit_cost: {"part_no": part_no, "qty": qty, "unit_cost": unit_cost},
        short_texts(),
        sizes(*QTY),
        amounts(),
    )
    photos = st.lists(photo_refs(), min_size=1, max_size=4)
    return {
        "repair_item": draw(short_texts()),
        "fault_cause": draw(long_texts()),
        "method": draw(long_texts()),
        "parts_replaced": draw(st.lists(part, min_size=replaced, max_size=replaced)),
        "labour_minutes": draw(sizes(*LABOUR_MINUTES)),
        "photos_before": draw(photos),
        "photos_after": draw(photos),
    }


@st.composite
def surveys(draw: st.DrawFn) -> Json:
    score = sizes(*SCORE)
    return without_none(
        {
            "attitude": draw(score),
            "quality": draw(score),
            "result": draw(score),
            "speed": draw(score),
            "comment": draw(optional(long_texts())),
        }
    )


@dataclass(frozen=True)
class Repair:
    """An order driven to its close, with what each step sends."""

    booking: Json
    preferred_window: Window | None
    appointment: Window
    hazard: str
    all_clear: str  # the supervisor's note clearing the hazard
    parts: Json
    diagnosis: Json
    quote: Json
    quote_anyway: bool  # quoted although the repair is free
    service_record: Json
    rework_reason: str | None  # the customer rejects the work once, with this reason
    signature: str | None
    survey: Json


def fitting(strategy: st.SearchStrategy[Json]) -> st.SearchStrategy[Json]:
    return strategy.filter(fits)


@st.composite
def repairs(draw: st.DrawFn) -> Repair:
    diagnosis, quote = draw(diagnoses().filter(lambda pair: fits(pair[0] | {"quote": pair[1]})))
    return Repair(
        booking=draw(fitting(bookings())),
        preferred_window=draw(optional(windows())),
        appointment=draw(windows()),
        hazard=draw(long_texts()),
        all_clear=draw(long_texts()),
        parts=draw(fitting(parts_requests())),
        diagnosis=diagnosis,
        quote=quote,
        quote_anyway=draw(st.booleans()),
        service_record=draw(fitting(service_records())),
        rework_reason=draw(optional(long_texts())),
        signature=draw(optional(short_texts())),
        survey=draw(surveys()),
    )


@dataclass(frozen=True)
class Cancellation:
    """An order cancelled before check-in, with what each step sends."""

    booking: Json
    preferred_window: Window | None
    declined_because: str | None  # the technician declines the offer first
    assigned: bool
    appointment: Window | None  # confirmed once assigned
    reschedule: Window | None
    reason: str
    by: Literal["staff", "customer"]


@st.composite
def cancellations(draw: st.DrawFn) -> Cancellation:
    assigned = draw(st.booleans())
    return Cancellation(
        booking=draw(fitting(bookings())),
        preferred_window=draw(optional(windows())),
        declined_because=draw(optional(long_texts())),
        assigned=assigned,
        appointment=draw(optional(windows())) if assigned else None,
        reschedule=draw(optional(windows())),
        reason=draw(long_texts()),
        by=draw(st.sampled_from(("staff", "customer"))),
    )


# ---- the largest and the smallest order, tried in every run --------------------------------------
# A few drawn examples may miss the far corners; these two always reach them.

SHORT_PATTERN = "修🔧e\u0301\u05d0\u0627\u202e\u200d\ufeff\u00a0\ue000\U0010ffff\"\\'{}%"
LONG_PATTERN = SHORT_PATTERN + "\n\t\u2028"
CONTROLS_PATTERN = SHORT_PATTERN + "\x00\x1b\x7f\r"


def full(size: int, pattern: str = SHORT_PATTERN, padding: Padding = ("", "")) -> str:
    """A text of exactly `size` characters once its padding is stripped."""
    core = "修" if size == 1 else "修" + tiled(pattern, size - 2) + "🔧"
    return padding[0] + core + padding[1]


def full_email() -> str:
    local, tld = tiled("é修\x00\x1b🔧.", EMAIL_MAX - 10), "中国"
    domain = tiled("例え", EMAIL_MAX - len(local) - len(tld) - 2)
    return f"{local}@{domain}.{tld}"


LARGEST_REPAIR = Repair(
    booking={
        "customer": {
            "name": full(SHORT_TEXT_MAX, padding=SHORT_PADDING[3]),
            "phone": "+8" + tiled("6 138-", PHONE_REST[1] - 1) + "0",
            "email": full_email(),
            "address": full(LONG_TEXT_MAX, LONG_PATTERN, LONG_PADDING[4]),
            "region": full(SHORT_TEXT_MAX),
            "locale": LOCALES[-1],
        },
        "appliance": {
            "category": Category.WATER_HEATER,
            "brand": full(SHORT_TEXT_MAX),
            "model": full(SHORT_TEXT_MAX),
            "serial": full(SHORT_TEXT_MAX),
            "gas_fired": True,
            "purchase_date": EARLIEST.date().isoformat(),
            "proof_of_purchase": True,
        },
        "fault": {"description": full(LONG_TEXT_MAX, LONG_PATTERN)},
        "priority": Priority.EMERGENCY,
        "channel": Channel.APP,
    },
    preferred_window=Window("at the horizon", "just before 2200", UTC_OFFSETS[1], True, False),
    appointment=Window("1970", "just before 2200", UTC_OFFSETS[2], False, False),
    hazard=full(LONG_TEXT_MAX, LONG_PATTERN),
    all_clear=full(LONG_TEXT_MAX, LONG_PATTERN, LONG_PADDING[5]),
    parts={
        "parts": [
            {"part_no": full(SHORT_TEXT_MAX), "description": full(SHORT_TEXT_MAX), "qty": QTY[1]}
        ]
        * MAX_LINES
    },
    diagnosis={
        "fault_cause": full(LONG_TEXT_MAX, LONG_PATTERN),
        "plan": full(LONG_TEXT_MAX, LONG_PATTERN),
        "warranty_exclusion": Exclusion.MISUSE,
    },
    quote={
        "items": [{"description": PRICE_LIST_ITEM}]
        + [{"description": full(SHORT_TEXT_MAX), "amount": Amount(str(MAX_AMOUNT))}]
        * (MAX_LINES - 1),
        "parts": [
            {
                "part_no": full(SHORT_TEXT_MAX),
                "description": full(SHORT_TEXT_MAX),
                "qty": QTY[1],
                "unit_cost": Amount(str(MAX_AMOUNT)),
            }
        ]
        * MAX_LINES,
    },
    quote_anyway=True,
    service_record={
        "repair_item": full(SHORT_TEXT_MAX),
        "fault_cause": full(LONG_TEXT_MAX, LONG_PATTERN),
        "method": full(LONG_TEXT_MAX, LONG_PATTERN),
        "parts_replaced": [
            {"part_no": full(SHORT_TEXT_MAX), "qty": QTY[1], "unit_cost": Amount(str(MAX_AMOUNT))}
        ]
        * MAX_LINES,
        "labour_minutes": LABOUR_MINUTES[1],
        "photos_before": [full(PHOTO_REF_MAX, CONTROLS_PATTERN)] * 4,
        "photos_after": [full(PHOTO_REF_MAX, CONTROLS_PATTERN)] * 4,
    },
    rework_reason=full(LONG_TEXT_MAX, LONG_PATTERN),
    signature=full(SHORT_TEXT_MAX),
    survey={
        "attitude": SCORE[1],
        "quality": SCORE[1],
        "result": SCORE[1],
        "speed": SCORE[1],
        "comment": full(LONG_TEXT_MAX, LONG_PATTERN),
    },
)
SMALLEST_CANCELLATION = Cancellation(
    booking={
        "customer": {
            "name": full(1),
            "phone": "0" * (PHONE_REST[0] + 1),
            "address": full(1, padding=LONG_PADDING[4]),
            "region": full(1),
        },
        "appliance": {
            "category": Category.ELECTRICAL,
            "purchase_date": today().isoformat(),
            "proof_of_purchase": True,
        },
        "fault": {"description": full(1)},
        "priority": Priority.LOW,
        "channel": Channel.PHONE,
    },
    preferred_window=Window("1970", "in two hours", UTC_OFFSETS[2], True, False),
    declined_because=full(LONG_TEXT_MAX, LONG_PATTERN),
    assigned=True,
    appointment=Window("in two minutes", "a minute later", UTC_OFFSETS[3], True, False),
    reschedule=Window("at the horizon", "a minute later", UTC_OFFSETS[0], False, True),
    reason=full(LONG_TEXT_MAX, LONG_PATTERN),
    by="customer",
)
assert all(
    fits(body)
    for body in (
        LARGEST_REPAIR.booking,
        LARGEST_REPAIR.diagnosis | {"quote": LARGEST_REPAIR.quote},
        LARGEST_REPAIR.parts,
        LARGEST_REPAIR.service_record,
    )
), "the largest order must fit in requests the API takes"


# ---- the service under test ----------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """The app and a worker on a task queue and records database of their own."""

    http: httpx.AsyncClient
    temporal: Client
    technician_id: str

    def by(self, role: str) -> Headers:
        claims = {"technician_id": self.technician_id} if role == "technician" else {}
        token = mint_token(
            AUTH_SECRET, subject=f"extreme-{role}", role=role, ttl=timedelta(hours=1), **claims
        )
        return {"Authorization": f"Bearer {token}"}

    async def post(
        self, path: str, body: Json | None, by: Headers, *, status: int = 200, **headers: str
    ) -> Json:
        """Send a request the strategies consider accepted: anything but `status` fails."""
        extra = dict(headers)
        content = None
        if body is not None:
            content = encoded(body)
            assert len(content) <= MAX_BODY_BYTES, f"the test drew a body past the limit: {path}"
            extra["Content-Type"] = "application/json"
        response = await self.http.post(path, content=content, headers=by | extra)
        assert response.status_code == status, (
            f"POST {path} answered {response.status_code}: {response.text[:2000]}"
        )
        answer: Json = response.json()
        return answer

    async def order(self, order_id: str) -> Json:
        response = await self.http.get(f"/v1/orders/{order_id}", headers=self.by("staff"))
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body

    async def settled(
        self, order_id: str, until: Callable[[Json], bool], what: str, within: timedelta
    ) -> Json:
        """The order once `until` holds, read again and again for at most `within`."""
        return await eventually(
            lambda: self.order(order_id),
            until,
            within=within.total_seconds(),
            explain=lambda order: (
                f"{order_id}: not {what}: stage {order['stage']}, "
                f"pending writes {order['pending_writes']}"
            ),
        )


def technician_json(technician_id: str) -> Json:
    """One technician who may take every job: every skill, every certificate, valid until the
    last day a visit can fall on."""
    last_day = (LATEST - timedelta(days=1)).date().isoformat()
    return {
        "id": technician_id,
        "name": "Zhang San",
        "phone": "+86 139 0000 1111",
        "skills": list(Category),
        "regions": ["pudong"],
        "certificates": [
            {"type": kind, "number": f"{kind}-1", "valid_until": last_day}
            for kind in CertificateType
        ],
        "shifts": ROUND_THE_CLOCK,
    }


@pytest.fixture
async def service(
    dev_server_env: WorkflowEnvironment, records_url: str, tmp_path: Path
) -> AsyncIterator[Service]:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(POLICY_TOML, encoding="utf-8")
    own = Settings(
        temporal_address=dev_server_env.client.service_client.config.target_host,
        task_queue=f"extreme-{uuid.uuid4().hex[:8]}",
        database_url=records_url,
        auth_secret=AUTH_SECRET,
        policy_file=policy_file,
    )
    assert own.policy == POLICY
    async with app_and_worker(dev_server_env.client, own) as (http, _):
        # The longest id the registry holds.
        technician_id = tiled(f"T-{uuid.uuid4().hex}_", TECHNICIAN_ID_MAX)
        registered = await http.post(
            "/v1/technicians",
            json=technician_json(technician_id),
            headers=Service(http, dev_server_env.client, technician_id).by("admin"),
        )
        assert registered.status_code == 201, registered.text
        yield Service(http, dev_server_env.client, technician_id)


# ---- driving an order ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Booked:
    order_id: str
    customer: Headers  # the customer's link token from the booking
    warranty: str
    sent: Json  # the booking as sent, windows placed

    @property
    def url(self) -> str:
        return f"/v1/orders/{self.order_id}"


def expected_warranty(booking: Json) -> str:
    appliance = booking["appliance"]
    if not appliance["proof_of_purchase"]:
        return WarrantyStatus.NO_PROOF
    until = date.fromisoformat(appliance["purchase_date"]) + POLICY.warranty.product.as_timedelta()
    return WarrantyStatus.IN_WARRANTY if today() <= until else WarrantyStatus.OUT_OF_WARRANTY


async def book(service: Service, booking: Json, preferred: Window | None) -> Booked:
    sent = booking | (
        {"preferred_window": preferred.at(datetime.now(UTC))} if preferred is not None else {}
    )
    # The longest Idempotency-Key the store keeps.
    key = tiled(f"{uuid.uuid4().hex}-", IDEMPOTENCY_KEY_MAX)
    created = await service.post(
        "/v1/orders", sent, service.by("staff"), status=201, **{"Idempotency-Key": key}
    )
    assert created["stage"] == "booked", created
    assert created["warranty"]["status"] == expected_warranty(booking), created["warranty"]
    return Booked(
        order_id=created["order_id"],
        customer={"Authorization": f"Bearer {created['customer_token']}"},
        warranty=created["warranty"]["status"],
        sent=sent,
    )


async def step(
    service: Service, order: Booked, path: str, body: Json | None, by: Headers, stage: str
) -> Json:
    answer = await service.post(f"{order.url}/{path}", body, by)
    assert answer["stage"] == stage, f"{path}: stage {answer['stage']}, expected {stage}"
    return answer


async def drive_repair(service: Service, repair: Repair) -> tuple[Booked, Json]:
    """Book the order and move it to its close; the bodies sent, by what they are."""
    order = await book(service, repair.booking, repair.preferred_window)
    technician, customer = service.by("technician"), order.customer
    sent: Json = {"preferred_window": order.sent.get("preferred_window")}
    assignment = {"technician_id": service.technician_id}
    await step(service, order, "assign", assignment, service.by("staff"), "scheduled")
    sent["appointment"] = repair.appointment.at(datetime.now(UTC))
    await step(service, order, "appointment", sent["appointment"], technician, "scheduled")
    await step(service, order, "check-in", None, technician, "on_site")
    hazard = {"description": repair.hazard}
    await step(service, order, "hazard", hazard, technician, "safety_stop")
    all_clear = {"note": repair.all_clear}
    await step(service, order, "hazard/clear", all_clear, service.by("supervisor"), "on_site")
    await step(service, order, "parts", repair.parts, technician, "waiting_parts")
    await step(service, order, "parts/arrived", None, service.by("staff"), "on_site")
    sent["parts_requested"] = repair.parts["parts"]
    chargeable = (
        order.warranty != WarrantyStatus.IN_WARRANTY or "warranty_exclusion" in repair.diagnosis
    )
    quoted = chargeable or repair.quote_anyway
    diagnosis = repair.diagnosis | ({"quote": repair.quote} if quoted else {})
    await step(service, order, "diagnosis", diagnosis, technician, "on_site")
    sent["diagnosis"] = repair.diagnosis
    if quoted and off_list(repair.quote):
        supervisor = service.by("supervisor")
        await step(service, order, "quote/authorize", None, supervisor, "on_site")
    if quoted:
        await step(service, order, "quote/approve", None, customer, "on_site")
        sent["quote"] = priced(repair.quote, chargeable=chargeable)
    await step(service, order, "service-record", repair.service_record, technician, "on_site")
    await step(service, order, "complete", None, technician, "awaiting_acceptance")
    if repair.rework_reason is not None:
        rejection = {"accepted": False, "reason": repair.rework_reason}
        await step(service, order, "acceptance", rejection, customer, "on_site")
        await step(service, order, "service-record", repair.service_record, technician, "on_site")
        await step(service, order, "complete", None, technician, "awaiting_acceptance")
    sent["service_record"] = repair.service_record
    acceptance = without_none({"accepted": True, "signature": repair.signature})
    await step(service, order, "acceptance", acceptance, customer, "in_warranty")
    sent["acceptance"] = {"signature": repair.signature, "deemed": False}
    await step(service, order, "survey", repair.survey, customer, "in_warranty")
    sent["survey"] = repair.survey
    sent["timeline"] = [
        ("stage:safety_stop", repair.hazard),
        ("stage:on_site", repair.all_clear),
        *([("stage:on_site", repair.rework_reason)] if repair.rework_reason else []),
    ]
    return order, sent


def off_list(quote: Json) -> bool:
    """An amount the price list does not give needs a supervisor before the customer sees it."""
    labour = POLICY.charges.labour
    return any(
        "amount" in item and labour.get(item["description"].strip()) != Decimal(item["amount"])
        for item in quote["items"]
    )


def priced(quote: Json, *, chargeable: bool) -> Json:
    """The quote as the order must show it: price-list items at their price, the total."""
    labour = POLICY.charges.labour
    items = [
        item | {"amount": Amount(str(labour[item["description"].strip()]))}
        if "amount" not in item
        else item
        for item in quote["items"]
    ]
    visit_fee = POLICY.charges.visit_fee if chargeable else None
    total = sum(
        (
            *(Decimal(item["amount"]) for item in items),
            *((Decimal(part["unit_cost"]) * part["qty"]).quantize(CENT) for part in quote["parts"]),
            visit_fee or Decimal(0),
        ),
        Decimal(0),
    )
    return {
        "items": items,
        "parts": quote["parts"],
        "visit_fee": None if visit_fee is None else Amount(str(visit_fee)),
        "total": Amount(str(total)),
        "status": "approved",
    }


async def drive_cancellation(service: Service, plan: Cancellation) -> tuple[Booked, Json]:
    order = await book(service, plan.booking, plan.preferred_window)
    technician = service.by("technician")
    sent: Json = {"preferred_window": order.sent.get("preferred_window"), "timeline": []}
    if plan.declined_because is not None:
        offered = await service.settled(
            order.order_id, lambda o: o["offer"] is not None, "offered", SETTLE_WITHIN
        )
        assert offered["offer"]["technician_id"] == service.technician_id, offered["offer"]
        body = {"reason": plan.declined_because}
        await step(service, order, "offer/decline", body, technician, "dispatching")
        sent["timeline"].append(("offer declined", plan.declined_because))
    stage = "dispatching"
    if plan.assigned:
        stage = "scheduled"
        body = {"technician_id": service.technician_id}
        await step(service, order, "assign", body, service.by("staff"), stage)
    if plan.appointment is not None:
        sent["appointment"] = plan.appointment.at(datetime.now(UTC))
        await step(service, order, "appointment", sent["appointment"], technician, stage)
    if plan.reschedule is not None:
        sent["preferred_window"] = plan.reschedule.at(datetime.now(UTC))
        sent["appointment"] = None  # to be confirmed again
        await step(service, order, "reschedule", sent["preferred_window"], order.customer, stage)
    canceller = order.customer if plan.by == "customer" else service.by("staff")
    await step(service, order, "cancel", {"reason": plan.reason}, canceller, "cancelled")
    sent["cancellation_reason"] = plan.reason
    sent["timeline"].append(("stage:cancelled", plan.reason))
    # The technician had committed to a time on an order the customer pays for: the visit fee.
    fee_due = sent.get("appointment") is not None and order.warranty != WarrantyStatus.IN_WARRANTY
    sent["charges"] = {"total": Amount(str(POLICY.charges.visit_fee if fee_due else 0))}
    return order, sent


# ---- checking the outcome ------------------------------------------------------------------------


def assert_booking_kept(booked: Booked, order: Json) -> None:
    sent = booked.sent
    assert_kept(sent["customer"], order["customer"], "customer")
    assert_kept(sent["appliance"], order["appliance"], "appliance")
    assert_kept(sent["fault"]["description"], order["fault"], "fault")
    for field in ("priority", "channel"):
        assert order[field] == sent[field], field
    assert_kept(sent["customer"]["region"], order["region"], "region")


def assert_timeline_shows(order: Json, entries: list[tuple[str, str]]) -> None:
    """Each (action, text) has an entry of that action whose detail holds the text."""
    for action, text in entries:
        assert any(
            entry["action"] == action and text.strip() in entry["detail"]
            for entry in order["timeline"]
        ), f"no {action} entry holds {shown(text.strip())}"


async def assert_recorded_and_never_failed(service: Service, order: Json) -> None:
    """The event log matches the timeline one to one, its chain holds, and the workflow's
    history has no failed workflow task."""
    order_id = order["order_id"]
    response = await service.http.get(
        f"/v1/orders/{order_id}/events", headers=service.by("auditor")
    )
    assert response.status_code == 200, response.text
    log = response.json()
    assert log["chain_ok"], f"{order_id}: chain broken at {log['first_bad_seq']}"
    events, timeline = log["events"], order["timeline"]
    assert len(events) == len(timeline), (
        f"{order_id}: {len(events)} events recorded for {len(timeline)} timeline entries"
    )
    for seq, (event, entry) in enumerate(zip(events, timeline, strict=True), start=1):
        assert event["seq"] == seq, event
        for field in ("actor", "action", "detail"):
            assert event[field] == entry[field], f"event {seq}.{field}: {shown(event[field])}"
        assert_kept(Instant(entry["at"]), event["at"], f"event {seq}.at")
    history = await service.temporal.get_workflow_handle(order_id).fetch_history()
    failures = [
        event.workflow_task_failed_event_attributes.failure.message
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert not failures, f"{order_id}: workflow task failed: {failures}"


def finished(stage: str) -> Callable[[Json], bool]:
    """At its end, with every event written to the records store."""
    return lambda order: order["stage"] == stage and order["pending_writes"]["records"] == 0


# ---- the tests -----------------------------------------------------------------------------------

A_FEW_EXAMPLES = settings(
    deadline=None,  # each example drives real servers for seconds
    derandomize=True,  # the same examples in every run, so CI is repeatable
    database=None,  # nothing kept between runs, nothing written beside the sources
    # Shrinking a failure would replay whole order lives for minutes: the first failing
    # example is reported as drawn.
    phases=(Phase.explicit, Phase.generate),
    # The app, the worker and the database are the test's own, shared by its examples.
    suppress_health_check=(HealthCheck.function_scoped_fixture, HealthCheck.too_slow),
)


@settings(A_FEW_EXAMPLES, max_examples=3)
@given(repair=repairs())
@example(repair=LARGEST_REPAIR)
async def test_an_order_of_extreme_values_is_repaired_and_closes(
    service: Service, repair: Repair
) -> None:
    """Every step takes the values, the order closes when its warranty window ends, and its
    records and history match what was sent."""
    booked, sent = await drive_repair(service, repair)
    order = await service.settled(
        booked.order_id, finished("closed"), "closed with every event recorded", SETTLE_WITHIN
    )
    assert_booking_kept(booked, order)
    for field in ("preferred_window", "appointment", "diagnosis", "parts_requested"):
        assert_kept(sent[field], order[field], field)
    for field in ("service_record", "acceptance", "survey"):
        assert_kept(sent[field], order[field], field)
    if "quote" in sent:
        assert_kept(sent["quote"], order["quote"], "quote")
        assert_kept(sent["quote"]["total"], order["charges"]["total"], "charges.total")
    else:
        assert order["quote"] is None
        assert Decimal(order["charges"]["total"]) == 0
    assert order["hazard"] is None
    assert order["rework_count"] == (1 if repair.rework_reason else 0)
    assert_timeline_shows(order, sent["timeline"])
    await assert_recorded_and_never_failed(service, order)


@settings(A_FEW_EXAMPLES, max_examples=2)
@given(plan=cancellations())
@example(plan=SMALLEST_CANCELLATION)
async def test_an_order_of_extreme_values_is_cancelled(
    service: Service, plan: Cancellation
) -> None:
    """Cancelled before check-in, the order keeps the reason, and its records and history
    match what was sent."""
    booked, sent = await drive_cancellation(service, plan)
    order = await service.settled(
        booked.order_id, finished("cancelled"), "cancelled with every event recorded", SETTLE_WITHIN
    )
    assert_booking_kept(booked, order)
    for field in ("preferred_window", "cancellation_reason", "charges"):
        assert_kept(sent[field], order[field], field)
    assert_kept(sent.get("appointment"), order["appointment"], "appointment")
    assert_timeline_shows(order, sent["timeline"])
    await assert_recorded_and_never_failed(service, order)
