"""What the API accepts is what every later stage can hold: values that used to wedge an order
or stall its records are refused at the door (422, 413, 429), retries with one
Idempotency-Key act once, and answers carry the security headers."""

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.client import Auth
from tests.api.drive import Drive, book, new_technician_id, problem, state
from tests.factories import create_booking_json
from tests.waiting import eventually


def window_in(days: int) -> dict[str, str]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    return {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}


def booking_with(**changes: Any) -> dict[str, Any]:
    booking = create_booking_json()
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = booking
        for name in parents:
            target = target[name]
        target[leaf] = value
    return booking


class TestBookingRefusesWhatCannotBeHeld:
    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"preferred_window": window_in(365 * 3000)}, "preferred_window"),
            ({"preferred_window": window_in(200)}, "preferred_window.start"),
            ({"fault__description": "not cooling\x00"}, "fault.description"),
            ({"customer__name": "Li\nWei"}, "customer.name"),
            ({"customer__address": "88 Century Avenue \ud800"}, "customer.address"),
            ({"appliance__purchase_date": "1969-12-31"}, "appliance.purchase_date"),
            ({"customer__name": "L" * 201}, "customer.name"),
        ],
        ids=[
            "window-year-9999",
            "window-past-horizon",
            "nul-in-text",
            "newline-in-short-text",
            "lone-surrogate",
            "purchase-before-1970",
            "name-too-long",
        ],
    )
    async def test_refused_with_the_field_named(
        self, api: httpx.AsyncClient, auth: Auth, changes: dict[str, Any], field: str
    ) -> None:
        # Sent as JSON text with escapes, as any client may: a lone surrogate decodes server-side.
        response = await api.post(
            "/v1/orders",
            content=json.dumps(booking_with(**changes)),
            headers=auth("staff") | {"Content-Type": "application/json"},
        )
        body = problem(response, 422)
        assert field in body["detail"]

    async def test_long_text_keeps_line_breaks(self, api: httpx.AsyncClient, auth: Auth) -> None:
        created = await book(api, auth, fault={"description": "not cooling\n\tsince Monday"})
        order = (await api.get(f"/v1/orders/{created['order_id']}", headers=auth("staff"))).json()
        assert order["fault"] == "not cooling\n\tsince Monday"


class TestMoney:
    async def test_a_json_number_is_refused_naming_the_field(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("checked_in", out_of_warranty=True)
        before = await state(api, order)
        quote = {"items": [{"description": "replace thermostat", "amount": 80.0}]}
        response = await api.post(
            f"{order.url}/diagnosis",
            json={"fault_cause": "thermostat", "plan": "replace", "quote": quote},
            headers=order.by("technician"),
        )
        body = problem(response, 422)
        assert "quote.items.0.amount" in body["detail"]
        assert "decimal string" in body["detail"]
        assert await state(api, order) == before

    async def test_an_amount_past_what_any_total_may_hold_is_refused(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("checked_in", out_of_warranty=True)
        quote = {"items": [{"description": "replace thermostat", "amount": "99999999999.00"}]}
        response = await api.post(
            f"{order.url}/diagnosis",
            json={"fault_cause": "thermostat", "plan": "replace", "quote": quote},
            headers=order.by("technician"),
        )
        problem(response, 422)


class TestWindowsOnTheOrder:
    async def test_an_appointment_past_the_horizon_is_refused(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("assigned")
        before = await state(api, order)
        response = await api.post(
            f"{order.url}/appointment", json=window_in(120), headers=order.by("technician")
        )
        assert "start" in problem(response, 422)["detail"]
        assert await state(api, order) == before


class TestRequests:
    async def test_an_oversized_body_is_413(self, api: httpx.AsyncClient, auth: Auth) -> None:
        booking = booking_with(fault__description="x" * 1000)
        booking["padding"] = "y" * 70_000
        response = await api.post("/v1/orders", json=booking, headers=auth("staff"))
        problem(response, 413)

    async def test_an_oversized_body_sent_in_chunks_is_413(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """Without a Content-Length the body is counted as it comes, and refused past the limit."""

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"fault": {"description": "'
            for _ in range(20):
                yield b"y" * 8192
            yield b'"}}'

        headers = auth("staff") | {"Content-Type": "application/json"}
        response = await api.post("/v1/orders", content=chunks(), headers=headers)
        assert "content-length" not in response.request.headers
        assert "65536 bytes" in problem(response, 413)["detail"]

    @pytest.mark.parametrize("given", ["a" * 65, "id with spaces", "id/../x"])
    async def test_an_odd_request_id_is_replaced(self, api: httpx.AsyncClient, given: str) -> None:
        response = await api.get("/healthz", headers={"X-Request-ID": given})
        assert response.headers["X-Request-ID"] != given
        assert len(response.headers["X-Request-ID"]) == 32

    async def test_a_plain_request_id_is_kept(self, api: httpx.AsyncClient) -> None:
        response = await api.get("/healthz", headers={"X-Request-ID": "desk-42.call_7"})
        assert response.headers["X-Request-ID"] == "desk-42.call_7"

    async def test_answers_with_personal_data_are_not_cached(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        created = await book(api, auth)
        response = await api.get(f"/v1/orders/{created['order_id']}", headers=auth("staff"))
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"


class TestWarrantyClaims:
    async def test_the_same_key_claims_once_and_another_body_is_409(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("accepted")
        headers = order.by("customer") | {"Idempotency-Key": "claim-call-1"}
        claim = {"description": "not cooling again"}
        answers = [
            await api.post(f"{order.url}/warranty-claims", json=claim, headers=headers)
            for _ in range(2)
        ]
        assert [a.status_code for a in answers] == [201, 201]
        assert {a.json()["claim_order_id"] for a in answers} == {f"{order.order_id}-W1"}
        other = await api.post(
            f"{order.url}/warranty-claims", json={"description": "noisy"}, headers=headers
        )
        assert "Idempotency-Key" in problem(other, 409)["detail"]
        shown = (await api.get(order.url, headers=order.by("staff"))).json()
        assert shown["claims"] == [f"{order.order_id}-W1"]

    async def test_claims_past_the_policy_limit_are_429(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("accepted")
        statuses = []
        for n in range(4):  # the policy's default limit is 3
            response = await api.post(
                f"{order.url}/warranty-claims",
                json={"description": f"failure {n}"},
                headers=order.by("customer"),
            )
            statuses.append(response.status_code)
        assert statuses == [201, 201, 201, 429]
        assert response.headers["content-type"] == "application/problem+json"


class TestComplaints:
    async def test_more_than_the_daily_limit_is_429(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("assigned")
        complaint = {"category": "attitude", "description": "rude", "concerns_work": False}
        statuses = [
            (
                await api.post(
                    f"{order.url}/complaints", json=complaint, headers=order.by("customer")
                )
            ).status_code
            for _ in range(4)
        ]
        assert statuses == [201, 201, 201, 429]


class TestConcurrentActions:
    async def test_two_accepts_of_one_offer_take_it_once_and_the_order_stays_healthy(
        self, api: httpx.AsyncClient, drive: Drive, auth: Auth
    ) -> None:
        await new_technician_id(api, auth)  # someone qualified to offer it to
        url = f"/v1/orders/{(await book(api, auth))['order_id']}"
        settled = await eventually(
            lambda: api.get(url, headers=auth("staff")),
            lambda response: response.json()["offer"] is not None,
        )
        holder = auth("technician", technician_id=settled.json()["offer"]["technician_id"])
        answers = await asyncio.gather(
            *(api.post(f"{url}/offer/accept", headers=holder) for _ in range(2))
        )
        assert sorted(a.status_code for a in answers) == [200, 409]
        shown = await api.get(url, headers=auth("staff"))
        assert shown.status_code == 200
        assert shown.json()["stage"] == "scheduled"

    async def test_two_approvals_of_one_quote_approve_it_once(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("diagnosed", out_of_warranty=True)
        answers = await asyncio.gather(
            *(
                api.post(f"{order.url}/quote/approve", headers=order.by("customer"))
                for _ in range(2)
            )
        )
        assert sorted(a.status_code for a in answers) == [200, 409]
        timeline = (await api.get(order.url, headers=order.by("staff"))).json()["timeline"]
        assert [e["action"] for e in timeline].count("quote approved") == 1


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


class TestListsRefuseOddCursorsAndFilters:
    @pytest.mark.parametrize(
        "params",
        [
            {"from": "0001-01-01T00:00:00+14:00"},
            {"to": "9999-12-31T23:59:59-12:00"},
            {"cursor": cursor_of({"booked_at": "0001-01-01T00:00:00+14:00", "order_id": "x"})},
            {"cursor": cursor_of(["a", "b"])},
            {"cursor": "%%%"},
            {"cursor": "A" * 501},
            {"limit": "0"},
        ],
        ids=[
            "from-year-1",
            "to-year-9999",
            "cursor-year-1",
            "cursor-list",
            "cursor-junk",
            "cursor-long",
            "limit-0",
        ],
    )
    async def test_orders(self, api: httpx.AsyncClient, auth: Auth, params: dict[str, str]) -> None:
        response = await api.get("/v1/orders", params=params, headers=auth("staff"))
        problem(response, 422)

    @pytest.mark.parametrize(
        "cursor",
        [
            cursor_of(["0001-01-01T00:00:00+14:00", "RF1-C1"]),
            cursor_of(["2026-12-02T10:00:00", "RF1-C1"]),
            cursor_of({"a": 1}),
            cursor_of([1, 2]),
            "A" * 501,
        ],
        ids=["year-1", "naive", "object", "numbers", "long"],
    )
    async def test_complaints(self, api: httpx.AsyncClient, auth: Auth, cursor: str) -> None:
        response = await api.get(
            "/v1/complaints", params={"cursor": cursor}, headers=auth("supervisor")
        )
        problem(response, 422)


class TestConcurrentBookings:
    async def test_fifty_bookings_with_one_key_make_one_order(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        headers = auth("staff") | {"Idempotency-Key": f"desk-call-{uuid.uuid4().hex}"}
        booking = create_booking_json()
        answers = await asyncio.gather(
            *(api.post("/v1/orders", json=booking, headers=headers) for _ in range(50))
        )
        assert sorted({a.status_code for a in answers}) in ([200, 201], [201]), [
            a.text for a in answers if a.status_code not in (200, 201)
        ][:3]
        assert [a.status_code for a in answers].count(201) == 1
        assert len({a.json()["order_id"] for a in answers}) == 1
