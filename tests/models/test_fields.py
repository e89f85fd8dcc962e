"""The constrained values of client fields: what they refuse, and what they keep."""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from models.fields import MAX_AMOUNT, Moment, Money, PastDate, ShortText, Text


def valid(kind: Any, value: Any) -> Any:
    return TypeAdapter(kind).validate_python(value)


def refusal(kind: Any, value: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(kind).validate_python(value)
    return str(refused.value)


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85"])
def test_text_refuses_control_characters(char: str) -> None:
    assert "control characters" in refusal(Text, f"not{char}cooling")
    assert "control characters" in refusal(ShortText, f"Li{char}Wei")


def test_text_refuses_lone_surrogates() -> None:
    refusal(Text, "not cooling \ud800")
    refusal(ShortText, "Li \udfff Wei")


def test_long_text_keeps_line_breaks_and_tabs_short_text_does_not() -> None:
    assert valid(Text, "line one\n\tline two") == "line one\n\tline two"
    assert "control characters" in refusal(ShortText, "Li\nWei")


def test_text_keeps_other_scripts_and_symbols() -> None:
    assert valid(ShortText, "李伟 ✓ 5号楼") == "李伟 ✓ 5号楼"


def test_lengths() -> None:
    assert valid(ShortText, "x" * 200)
    refusal(ShortText, "x" * 201)
    assert valid(Text, "x" * 2000)
    refusal(Text, "x" * 2001)
    refusal(Text, "   ")


def test_money_is_a_decimal_string_to_the_cent() -> None:
    assert valid(Money, "80") == Decimal("80.00")
    assert valid(Money, Decimal("45.5")) == Decimal("45.50")
    for number in (80, 80.0, True):
        assert "decimal string" in refusal(Money, number)


def test_money_is_bounded_so_any_total_fits_its_column() -> None:
    assert valid(Money, str(MAX_AMOUNT)) == MAX_AMOUNT
    refusal(Money, "100000.01")
    refusal(Money, "-1.00")
    refusal(Money, "1.005")


def test_moments_lie_in_a_range_local_time_holds() -> None:
    assert valid(Moment, "2026-12-02T10:00:00+08:00")
    assert "between" in refusal(Moment, "9999-12-31T23:59:59+00:00")
    assert "between" in refusal(Moment, "1969-12-31T23:59:59+00:00")
    refusal(Moment, datetime(2026, 12, 2, 10, 0))  # noqa: DTZ001 - a naive time is refused
    assert valid(Moment, datetime(2199, 12, 31, tzinfo=UTC))


def test_purchase_dates_are_not_before_1970() -> None:
    assert valid(PastDate, "1970-01-01") == date(1970, 1, 1)
    assert "1970" in refusal(PastDate, "1969-12-31")
