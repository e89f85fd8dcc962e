"""GET /v1/orders: order summaries from the records store, filtered, paged by keyset."""

import base64
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.main import create_app
from core.db import create_engine
from core.settings import Settings
from models.records import OrderRow
from tests.api.client import Auth, serve

BOOKED_AT = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
LIST_ITEM_FIELDS = {
    "order_id",
    "stage",
    "priority",
    "channel",
    "category",
    "region",
    "technician_id",
    "warranty_status",
    "sla_breached",
    "charges",
    "booked_at",
    "updated_at",
}


def create_order_row(order_id: str, **overrides: Any) -> OrderRow:
    fields: dict[str, Any] = {
        "order_id": order_id,
        "stage": "on_site",
        "priority": "normal",
        "channel": "phone",
        "category": "refrigerator",
        "region": "pudong",
        "technician_id": None,
        "warranty_status": "in_warranty",
        "sla_breached": False,
        "currency": "CNY",
        "total": Decimal("128.50"),
        "booked_at": BOOKED_AT,
        "updated_at": BOOKED_AT,
        "customer_name": "Li Wei",
        "customer_phone": "+86 138 0013 8000",
    }
    return OrderRow(**(fields | overrides))


async def store(engine: AsyncEngine, rows: Iterable[OrderRow]) -> None:
    """Orders straight into the read model, which is all the list reads."""
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        session.add_all(rows)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def page_through(
    api: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every item of a listing, following next_cursor; and how many pages it took."""
    items: list[dict[str, Any]] = []
    pages, cursor = 0, None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        response = await api.get("/v1/orders", params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= params.get("limit", 50)
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 100, "the listing never ends"


@pytest.fixture
async def listing(
    settings: Settings, records_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncEngine]]:
    """The API on a fresh records store of each engine, SQLite and PostgreSQL, and that store."""
    app = create_app(settings.model_copy(update={"database_url": records_url}))
    engine = create_engine(records_url)
    try:
        async for http in serve(app):  # its start-up migrates the store
            yield http, engine
    finally:
        await engine.dispose()


class TestPaging:
    async def test_250_orders_page_without_gap_or_repeat(
        self, listing: tuple[httpx.AsyncClient, AsyncEngine], auth: Auth
    ) -> None:
        """250 on-site orders of one technician come back once each, oldest first, whatever
        else is in the store, though many share a booking time (on SQLite and PostgreSQL)."""
        api, records_engine = listing
        technician, other = unique("T-LIST"), unique("T-OTHER")
        mine = [
            create_order_row(
                f"RF261120-L{i:05d}",
                technician_id=technician,
                # Seven orders per minute: paging must break ties by order id.
                booked_at=BOOKED_AT + timedelta(minutes=i // 7),
            )
            for i in range(250)
        ]
        noise = [
            create_order_row(f"RF261120-N{i:05d}", technician_id=technician, stage="scheduled")
            for i in range(20)
        ] + [
            create_order_row(f"RF261120-M{i:05d}", technician_id=other, stage="on_site")
            for i in range(20)
        ]
        await store(records_engine, mine + noise)

        items, pages = await page_through(
            api, auth("staff"), stage="on_site", technician_id=technician, limit=17
        )
        ids = [item["order_id"] for item in items]
        assert len(ids) == len(set(ids)), "an order came twice"
        assert set(ids) == {row.order_id for row in mine}, "an order is missing or foreign"
        assert pages == 15  # 250 / 17, rounded up
        booked = [datetime.fromisoformat(item["booked_at"]) for item in items]
        assert booked == sorted(booked)
        assert all(item["stage"] == "on_site" for item in items)
        assert all(item["technician_id"] == technician for item in items)

    async def test_orders_added_while_paging_shift_nothing(
        self, listing: tuple[httpx.AsyncClient, AsyncEngine], auth: Auth
    ) -> None:
        """An order booked between two pages neither pushes one out nor shows one twice."""
        api, records_engine = listing
        region = unique("paging")
        rows = [
            create_order_row(
                f"RF261120-P{i:05d}", region=region, booked_at=BOOKED_AT + timedelta(hours=i)
            )
            for i in range(10)
        ]
        await store(records_engine, rows)
        first = (
            await api.get(
                "/v1/orders", params={"region": region, "limit": 4}, headers=auth("staff")
            )
        ).json()
        # Booked before the cursor: an offset-based list would now repeat the fourth order.
        await store(records_engine, [create_order_row("RF261120-P0000X", region=region)])
        rest, _ = await page_through(
            api, auth("staff"), region=region, limit=4, cursor=first["next_cursor"]
        )
        ids = [item["order_id"] for item in first["items"] + rest]
        assert ids == [row.order_id for row in rows]

    async def test_last_page_has_no_cursor(
        self, api: httpx.AsyncClient, auth: Auth, records_engine: AsyncEngine
    ) -> None:
        """A listing that fits one page says so; an empty one too."""
        region = unique("short")
        await store(records_engine, [create_order_row("RF261120-S00001", region=region)])
        body = (
            await api.get("/v1/orders", params={"region": region}, headers=auth("staff"))
        ).json()
        assert [item["order_id"] for item in body["items"]] == ["RF261120-S00001"]
        assert body["next_cursor"] is None
        empty = await api.get(
            "/v1/orders", params={"region": unique("none")}, headers=auth("staff")
        )
        assert empty.json() == {"items": [], "next_cursor": None}


class TestFilters:
    async def test_each_filter_narrows_the_list(
        self, api: httpx.AsyncClient, auth: Auth, records_engine: AsyncEngine
    ) -> None:
        """Priority, SLA breach and the booking-time range select exactly the matching orders."""
        region = unique("filters")
        rows = [
            create_order_row("RF261120-F00001", region=region, priority="emergency"),
            create_order_row("RF261120-F00002", region=region, sla_breached=True),
            create_order_row(
                "RF261120-F00003", region=region, booked_at=BOOKED_AT + timedelta(days=1)
            ),
            create_order_row(
                "RF261120-F00004", region=region, booked_at=BOOKED_AT + timedelta(days=2)
            ),
        ]
        await store(records_engine, rows)

        async def ids(**params: Any) -> list[str]:
            response = await api.get(
                "/v1/orders", params={"region": region} | params, headers=auth("supervisor")
            )
            assert response.status_code == 200, response.text
            return [item["order_id"] for item in response.json()["items"]]

        assert await ids(priority="emergency") == ["RF261120-F00001"]
        assert await ids(sla_breached="true") == ["RF261120-F00002"]
        assert await ids(sla_breached="false", priority="normal") == [
            "RF261120-F00003",
            "RF261120-F00004",
        ]
        # In Shanghai time: from 21 Nov 10:00 (= 02:00 UTC, inclusive) to 22 Nov 10:00 (exclusive).
        assert await ids(
            **{"from": "2026-11-21T10:00:00+08:00", "to": "2026-11-22T10:00:00+08:00"}
        ) == ["RF261120-F00003"]
        assert await ids(**{"from": "2026-11-21T02:00:01Z"}) == ["RF261120-F00004"]
        assert await ids(stage="closed") == []

    async def test_items_are_summaries_without_personal_data(
        self, api: httpx.AsyncClient, auth: Auth, records_engine: AsyncEngine
    ) -> None:
        """A list item has the order's summary fields, charges as a decimal string, no name or
        phone."""
        region = unique("summary")
        await store(
            records_engine,
            [create_order_row("RF261120-D00001", region=region, technician_id="T-0042")],
        )
        response = await api.get("/v1/orders", params={"region": region}, headers=auth("auditor"))
        (item,) = response.json()["items"]
        assert set(item) == LIST_ITEM_FIELDS
        assert item["charges"] == {"currency": "CNY", "total": "128.50"}
        assert item["booked_at"] == "2026-11-20T02:00:00Z"
        assert (item["stage"], item["technician_id"]) == ("on_site", "T-0042")
        assert "Li Wei" not in response.text
        assert "138" not in response.text


class TestTechnicianSeesOwnOrders:
    async def test_technician_lists_only_their_orders(
        self, api: httpx.AsyncClient, auth: Auth, records_engine: AsyncEngine
    ) -> None:
        """Without a technician filter a technician's token lists their orders, no one else's."""
        region = unique("tech")
        technician = unique("T-OWN")
        await store(
            records_engine,
            [
                create_order_row("RF261120-T00001", region=region, technician_id=technician),
                create_order_row("RF261120-T00002", region=region, technician_id="T-SOMEONE"),
                create_order_row("RF261120-T00003", region=region, technician_id=None),
            ],
        )
        headers = auth("technician", technician_id=technician)
        items, _ = await page_through(api, headers, region=region)
        assert [item["order_id"] for item in items] == ["RF261120-T00001"]
        own = await api.get(
            "/v1/orders", params={"region": region, "technician_id": technician}, headers=headers
        )
        assert [item["order_id"] for item in own.json()["items"]] == ["RF261120-T00001"]
        staff = await api.get("/v1/orders", params={"region": region}, headers=auth("staff"))
        assert len(staff.json()["items"]) == 3

    async def test_another_technicians_orders_are_403(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """Asking for someone else's orders is refused, not silently narrowed."""
        response = await api.get(
            "/v1/orders",
            params={"technician_id": "T-SOMEONE"},
            headers=auth("technician", technician_id="T-ME"),
        )
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"

    @pytest.mark.parametrize("role", ["customer", "admin"])
    async def test_other_roles_are_403(self, api: httpx.AsyncClient, auth: Auth, role: str) -> None:
        """Customers and admins do not list orders."""
        claims = {"order_id": "RF261120-AAAAAA"} if role == "customer" else {}
        response = await api.get("/v1/orders", headers=auth(role, **claims))
        assert response.status_code == 403


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


class TestBadInput:
    @pytest.mark.parametrize(
        "params",
        [
            {"stage": "teleported"},
            {"priority": "whenever"},
            {"sla_breached": "perhaps"},
            {"from": "2026-11-20T10:00:00"},  # no offset
            {"to": "yesterday"},
            {"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"},
            {"limit": "0"},
            {"limit": "201"},
            {"cursor": "not a cursor"},
            {"cursor": b64(b"not json")},
            {"cursor": b64(b'{"booked_at": "2026-11-20T02:00:00", "order_id": "RF261120-AAAAAA"}')},
            {"cursor": b64(b'{"booked_at": "2026-11-20T02:00:00Z"}')},
            {"cursor": b64(b'["2026-11-20T02:00:00Z", "RF261120-AAAAAA"]')},
            {"cursor": "x" * 600},
            {"stages": "on_site"},  # a misspelt filter would otherwise list everything
        ],
    )
    async def test_bad_filters_are_422_problems(
        self, api: httpx.AsyncClient, auth: Auth, params: dict[str, str]
    ) -> None:
        """Unknown values, naive times, bad limits and garbage cursors: 422 problem+json."""
        response = await api.get("/v1/orders", params=params, headers=auth("staff"))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 422

    async def test_cursor_round_trips(
        self, api: httpx.AsyncClient, auth: Auth, records_engine: AsyncEngine
    ) -> None:
        """A cursor the list gave out is accepted back and continues after the last order."""
        region = unique("cursor")
        await store(
            records_engine,
            [create_order_row(f"RF261120-C0000{i}", region=region) for i in range(3)],
        )
        first = (
            await api.get(
                "/v1/orders", params={"region": region, "limit": 2}, headers=auth("staff")
            )
        ).json()
        assert first["next_cursor"] is not None
        rest = (
            await api.get(
                "/v1/orders",
                params={"region": region, "limit": 2, "cursor": first["next_cursor"]},
                headers=auth("staff"),
            )
        ).json()
        assert [item["order_id"] for item in rest["items"]] == ["RF261120-C00002"]
        assert rest["next_cursor"] is None
