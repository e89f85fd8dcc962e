"""The records query layer on each engine: keyset pages, the cursor codec, the look-ups the
technician registry and dispatch share, and the readiness probe."""

import base64
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import SQLModel

from core.cursor import BadCursor
from core.db import create_engine
from core.queries import (
    COMPLAINT_CURSOR,
    ORDER_CURSOR,
    ComplaintPosition,
    OrderPosition,
    list_complaints,
    list_orders,
    list_technicians,
    open_orders,
    order_events,
    ratings,
    records_reachable,
)
from models.catalog import Category
from models.order import ComplaintState
from models.records import ComplaintRow, OrderRow, TechnicianRow

AT = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def create_order_row(order_id: str, **overrides: Any) -> OrderRow:
    fields: dict[str, Any] = {
        "order_id": order_id,
        "stage": "on_site",
        "priority": "normal",
        "channel": "phone",
        "category": "refrigerator",
        "region": "pudong",
        "warranty_status": "in_warranty",
        "currency": "CNY",
        "total": Decimal("128.50"),
        "booked_at": AT,
        "updated_at": AT,
    }
    return OrderRow(**(fields | overrides))


def create_complaint_row(complaint_id: str, **overrides: Any) -> ComplaintRow:
    fields: dict[str, Any] = {
        "complaint_id": complaint_id,
        "order_id": complaint_id.split("-C")[0],
        "state": "open",
        "tier": 1,
        "category": "late",
        "concerns_work": False,
        "filed_at": AT,
        "first_reply_due": AT + timedelta(days=1),
        "resolution_due": AT + timedelta(days=5),
        "updated_at": AT,
    }
    return ComplaintRow(**(fields | overrides))


def create_technician_row(technician_id: str, **overrides: Any) -> TechnicianRow:
    fields: dict[str, Any] = {
        "id": technician_id,
        "name": "Wang Fang",
        "phone": "+86 139 0000 0000",
        "skills": ["refrigerator"],
        "regions": ["pudong"],
        "certificates": [],
        "created_at": AT,
        "updated_at": AT,
    }
    return TechnicianRow(**(fields | overrides))


async def store(engine: AsyncEngine, rows: Iterable[SQLModel]) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        session.add_all(rows)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


class TestCursorCodec:
    def test_order_position_round_trips(self) -> None:
        """A cursor decodes to the position it was made from, and carries no padding."""
        position = OrderPosition(booked_at=AT, order_id="RF261120-AAAAAA")
        cursor = ORDER_CURSOR.encode(position)
        assert "=" not in cursor
        assert ORDER_CURSOR.decode(cursor) == position

    def test_complaint_position_round_trips(self) -> None:
        """Microseconds and the offset survive the trip."""
        position = ComplaintPosition(AT.replace(microsecond=123456), "RF261120-AAAAAA-C1")
        assert COMPLAINT_CURSOR.decode(COMPLAINT_CURSOR.encode(position)) == position

    def test_cursors_given_out_before_still_continue(self) -> None:
        """Order cursors (unpadded JSON objects) and complaint cursors (padded JSON arrays with
        a +00:00 offset) given out by earlier versions are accepted back."""
        order = ORDER_CURSOR.decode(
            b64(b'{"booked_at":"2026-11-20T02:00:00Z","order_id":"RF261120-AAAAAA"}').rstrip("=")
        )
        assert order == OrderPosition(booked_at=AT, order_id="RF261120-AAAAAA")
        complaint = json.dumps([AT.isoformat(), "RF261120-AAAAAA-C1"]).encode()
        assert COMPLAINT_CURSOR.decode(b64(complaint)) == (AT, "RF261120-AAAAAA-C1")

    @pytest.mark.parametrize(
        "cursor",
        [
            "",
            "not a cursor",
            "é",
            b64(b"not json"),
            b64(b"\xff\xfe"),
            b64(b'{"booked_at": "2026-11-20T02:00:00", "order_id": "RF261120-AAAAAA"}'),
            b64(b'{"booked_at": "2026-11-20T02:00:00Z"}'),
            b64(b'{"booked_at": "2026-11-20T02:00:00Z", "order_id": ""}'),
            b64(b'{"booked_at": "2300-01-01T00:00:00Z", "order_id": "RF261120-AAAAAA"}'),
            b64(b'{"booked_at": "2026-11-20T02:00:00Z", "order_id": "A", "more": 1}'),
            b64(b'["2026-11-20T02:00:00Z", "RF261120-AAAAAA"]'),
        ],
    )
    def test_order_list_refuses_what_it_did_not_give_out(self, cursor: str) -> None:
        """Garbage, naive or out-of-range times, missing or extra keys, another list's shape."""
        with pytest.raises(BadCursor):
            ORDER_CURSOR.decode(cursor)

    @pytest.mark.parametrize(
        "cursor",
        [
            "garbage",
            b64(b'["2026-11-20T02:00:00", "RF261120-AAAAAA-C1"]'),
            b64(b'["2026-11-20T02:00:00Z"]'),
            b64(b'["2026-11-20T02:00:00Z", "RF261120-AAAAAA-C1", "more"]'),
            b64(b'["2026-11-20T02:00:00Z", 7]'),
            b64(json.dumps(["2026-11-20T02:00:00Z", "C" * 61]).encode()),
            b64(b'{"booked_at": "2026-11-20T02:00:00Z", "order_id": "RF261120-AAAAAA"}'),
        ],
    )
    def test_complaint_list_refuses_what_it_did_not_give_out(self, cursor: str) -> None:
        """Garbage, naive times, short or long arrays, ids of the wrong type or size."""
        with pytest.raises(BadCursor):
            COMPLAINT_CURSOR.decode(cursor)


async def orders_page(
    engine: AsyncEngine, limit: int, cursor: str | None = None, **filters: Any
) -> tuple[list[str], str | None]:
    async with AsyncSession(engine) as session:
        page = await list_orders(session, limit=limit, cursor=cursor, **filters)
    return [row.order_id for row in page.rows], page.next_cursor


class TestListOrders:
    async def test_ties_on_the_booking_time_page_by_order_id(
        self, records_store: AsyncEngine
    ) -> None:
        """Orders booked at the same instant split across pages without loss or repeat."""
        ids = [f"RF261120-T0000{i}" for i in range(5)]
        await store(records_store, [create_order_row(i) for i in reversed(ids)])
        first, cursor = await orders_page(records_store, 2)
        second, cursor = await orders_page(records_store, 2, cursor)
        third, cursor = await orders_page(records_store, 2, cursor)
        assert (first, second, third, cursor) == (ids[:2], ids[2:4], ids[4:], None)

    async def test_a_full_last_page_has_no_cursor(self, records_store: AsyncEngine) -> None:
        """`limit` rows left exactly: they come with no cursor, not with one to an empty page."""
        await store(records_store, [create_order_row(f"RF261120-F0000{i}") for i in range(3)])
        assert await orders_page(records_store, 3) == (
            [f"RF261120-F0000{i}" for i in range(3)],
            None,
        )
        assert await orders_page(records_store, 3, region="nowhere") == ([], None)

    async def test_orders_booked_before_the_cursor_do_not_shift_the_next_page(
        self, records_store: AsyncEngine
    ) -> None:
        """A page continues after the last order seen, whatever was added before it since."""
        await store(
            records_store,
            [
                create_order_row(f"RF261120-K0000{i}", booked_at=AT + timedelta(hours=i))
                for i in (1, 2, 3)
            ],
        )
        first, cursor = await orders_page(records_store, 2)
        await store(records_store, [create_order_row("RF261120-K00000", booked_at=AT)])
        assert first == ["RF261120-K00001", "RF261120-K00002"]
        assert await orders_page(records_store, 2, cursor) == (["RF261120-K00003"], None)

    async def test_from_is_inclusive_and_to_exclusive(self, records_store: AsyncEngine) -> None:
        """The booking window [from, to) holds orders booked at `from` and not those at `to`."""
        await store(
            records_store,
            [
                create_order_row(f"RF261120-W0000{i}", booked_at=AT + timedelta(hours=i))
                for i in (0, 1, 2)
            ],
        )
        window = await orders_page(
            records_store,
            10,
            booked_from=AT + timedelta(hours=1),
            booked_to=AT + timedelta(hours=2),
        )
        assert window == (["RF261120-W00001"], None)

    async def test_a_bad_cursor_is_refused_before_any_query(
        self, records_store: AsyncEngine
    ) -> None:
        """The route turns this into its 422 problem."""
        with pytest.raises(BadCursor):
            await orders_page(records_store, 10, "not a cursor")


class TestListComplaints:
    async def test_ties_on_the_filing_time_page_by_complaint_id(
        self, records_store: AsyncEngine
    ) -> None:
        """Complaints filed at the same instant split across pages without loss or repeat."""
        ids = [f"RF261120-AAAAAA-C{i}" for i in range(1, 6)]
        await store(records_store, [create_complaint_row(i) for i in ids])
        seen: list[str] = []
        cursor: str | None = None
        for _ in ids:
            async with AsyncSession(records_store) as session:
                page = await list_complaints(session, now=AT, limit=2, cursor=cursor)
            seen += [row.complaint_id for row in page.rows]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == ids

    async def test_overdue_is_judged_at_the_instant_given(self, records_store: AsyncEngine) -> None:
        """Open past the first-reply deadline, or unresolved past the resolution deadline."""
        await store(
            records_store,
            [
                create_complaint_row("RF261120-AAAAAA-C1"),
                create_complaint_row("RF261120-AAAAAA-C2", state="acknowledged"),
                create_complaint_row("RF261120-AAAAAA-C3", state="resolved"),
            ],
        )

        async def overdue(now: datetime, late: bool) -> list[str]:
            async with AsyncSession(records_store) as session:
                page = await list_complaints(session, overdue=late, now=now, limit=10)
            return [row.complaint_id for row in page.rows]

        after_first_reply = AT + timedelta(days=2)
        assert await overdue(after_first_reply, True) == ["RF261120-AAAAAA-C1"]
        after_resolution = AT + timedelta(days=6)
        assert await overdue(after_resolution, True) == [
            "RF261120-AAAAAA-C1",
            "RF261120-AAAAAA-C2",
        ]
        assert await overdue(after_resolution, False) == ["RF261120-AAAAAA-C3"]

    async def test_state_and_tier_filter_together(self, records_store: AsyncEngine) -> None:
        await store(
            records_store,
            [
                create_complaint_row("RF261120-AAAAAA-C1", tier=2),
                create_complaint_row("RF261120-AAAAAA-C2", tier=2, state="closed"),
                create_complaint_row("RF261120-AAAAAA-C3"),
            ],
        )
        async with AsyncSession(records_store) as session:
            page = await list_complaints(
                session, state=ComplaintState.OPEN, tier=2, now=AT, limit=10
            )
        assert [row.complaint_id for row in page.rows] == ["RF261120-AAAAAA-C1"]


class TestTechnicians:
    async def test_pages_by_id_after_filtering_by_skill_and_region(
        self, records_store: AsyncEngine
    ) -> None:
        """The cursor is the last id of a page; filters on skills and regions apply first."""
        await store(
            records_store,
            [
                create_technician_row("T1"),
                create_technician_row("T2", regions=["minhang"]),
                create_technician_row("T3"),
                create_technician_row("T4", skills=["washing_machine"]),
                create_technician_row("T5"),
            ],
        )
        async with AsyncSession(records_store) as session:
            first = await list_technicians(
                session, region="pudong", skill=Category.REFRIGERATOR, limit=2
            )
            rest = await list_technicians(
                session,
                region="pudong",
                skill=Category.REFRIGERATOR,
                limit=2,
                cursor=first.next_cursor,
            )
        assert ([row.id for row in first.rows], first.next_cursor) == (["T1", "T3"], "T3")
        assert ([row.id for row in rest.rows], rest.next_cursor) == (["T5"], None)

    async def test_workload_counts_open_orders_and_rating_averages_surveys(
        self, records_store: AsyncEngine
    ) -> None:
        """Finished orders leave the workload; unrated orders leave the rating."""
        await store(
            records_store,
            [
                create_order_row("RF261120-O00001", technician_id="T1", survey_score=Decimal("4")),
                create_order_row(
                    "RF261120-O00002",
                    technician_id="T1",
                    stage="closed",
                    survey_score=Decimal("4.5"),
                ),
                create_order_row("RF261120-O00003", technician_id="T1"),
                create_order_row("RF261120-O00004", technician_id="T2", stage="cancelled"),
            ],
        )
        async with AsyncSession(records_store) as session:
            assert await open_orders(session, ["T1", "T2", "T3"]) == {"T1": 2}
            assert await ratings(session, ["T1", "T2"]) == {"T1": Decimal("4.25")}


class TestOrderEvents:
    async def test_an_order_the_store_never_saw_is_none(self, records_store: AsyncEngine) -> None:
        async with AsyncSession(records_store) as session:
            assert await order_events(session, "RF261120-NOSUCH") is None

    async def test_an_order_with_no_events_yet_holds_its_chain(
        self, records_store: AsyncEngine
    ) -> None:
        await store(records_store, [create_order_row("RF261120-E00001")])
        async with AsyncSession(records_store) as session:
            checked = await order_events(session, "RF261120-E00001")
        assert checked is not None
        assert (list(checked.events), checked.first_bad_seq) == ([], None)


class TestRecordsReachable:
    async def test_a_store_that_answers_is_reachable(self, records_store: AsyncEngine) -> None:
        assert await records_reachable(records_store)

    async def test_a_store_that_cannot_be_opened_is_not(self, tmp_path: Path) -> None:
        engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'records.db'}")
        try:
            assert not await records_reachable(engine)
        finally:
            await engine.dispose()
