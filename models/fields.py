"""The constrained values every client-supplied field is made of, for API bodies and workflow
inputs alike: whatever passes here, every later stage (the workflow, local-time text, the
records columns, the notification channels) can hold."""

import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, StringConstraints

from models.policy import CENT

# Local-time conversion, the records columns and people's plans all hold these with room.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# Any amount, and so any order's total (at most MAX_LINES lines of MAX_QTY), fits Numeric(12, 2).
MAX_AMOUNT = Decimal("100000.00")
MAX_LINES = 20
MAX_QTY = 1000


def _plain(keep: str) -> Any:
    """Refuse control characters (but those in `keep`) and lone surrogates: a database column
    or a message channel cannot hold them, and no person types them."""

    def check(text: str) -> str:
        for char in text:
            if char not in keep and unicodedata.category(char) in ("Cc", "Cs"):
                raise ValueError(f"must not contain control characters (found U+{ord(char):04X})")
        return text

    return AfterValidator(check)


# Long text keeps line breaks and tabs; short text (names, numbers, labels) keeps neither.
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), _plain("\n\t")
]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), _plain("")
]


def _decimal_string(value: Any) -> Any:
    """A JSON number is refused: 0.1 + 0.2 is not money. A Decimal made in code is fine."""
    if isinstance(value, bool | int | float):
        raise ValueError('must be a decimal string, like "80.00", not a number')
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_decimal_string, json_schema_input_type=str),
    Field(ge=0, le=MAX_AMOUNT, max_digits=12, decimal_places=2),
    AfterValidator(lambda d: d.quantize(CENT)),
]


def _in_range(moment: datetime) -> datetime:
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return moment


Moment = Annotated[AwareDatetime, AfterValidator(_in_range)]


def _not_before_1970(day: date) -> date:
    if day < EARLIEST.date():
        raise ValueError("must not be before 1970-01-01")
    return day


PastDate = Annotated[date, AfterValidator(_not_before_1970)]
