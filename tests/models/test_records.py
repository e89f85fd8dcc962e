from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from models.records import OrderRow


class TestUtcDateTime:
    async def test_instant_with_offset_reads_back_as_the_same_aware_instant(
        self, records_store: AsyncEngine
    ) -> None:
        """A booking at 10:00 in Shanghai is stored and read back as 02:00 UTC, not 10:00."""
        engine = records_store
        shanghai = timezone(timedelta(hours=8))
        booked = datetime(2026, 11, 20, 10, 0, tzinfo=shanghai)
        async with AsyncSession(engine) as session, session.begin():
            session.add(
                OrderRow(
                    order_id="RF261120-AAAAAA",
                    stage="dispatching",
                    priority="normal",
                    channel="phone",
                    category="refrigerator",
                    region="pudong",
                    warranty_status="in_warranty",
                    currency="CNY",
                    total=Decimal("0.00"),
                    booked_at=booked,
                    updated_at=booked,
                )
            )
        async with AsyncSession(engine) as session:
            row = await session.get(OrderRow, "RF261120-AAAAAA")
        assert row is not None
        assert row.booked_at == booked
        assert row.booked_at.tzinfo is not None
        assert row.booked_at.utcoffset() == timedelta(0)
        assert row.booked_at == datetime(2026, 11, 20, 2, 0, tzinfo=UTC)

    async def test_naive_datetime_is_refused(self, records_store: AsyncEngine) -> None:
        """A time without a zone is a bug, and is refused rather than guessed."""
        engine = records_store
        naive = datetime(2026, 11, 20, 10, 0)  # noqa: DTZ001 - the point of the test
        with pytest.raises(StatementError, match="naive datetime"):
            async with AsyncSession(engine) as session, session.begin():
                session.add(
                    OrderRow(
                        order_id="RF261120-BBBBBB",
                        stage="dispatching",
                        priority="normal",
                        channel="phone",
                        category="refrigerator",
                        region="pudong",
                        warranty_status="in_warranty",
                        currency="CNY",
                        total=Decimal("0.00"),
                        booked_at=naive,
                        updated_at=naive,
                    )
                )
