import io
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from temporalio.client import Client, WorkflowExecutionStatus

from api.main import create_app
from core.settings import Settings
from models.order import ORDER_ID_PATTERN
from models.records import OrderRow
from tests.api.client import AUTH_SECRET, Auth, TokenFactory, serve
from tests.api.drive import book
from tests.factories import create_booking_json
from tests.waiting import eventually


class TestBookOrder:
    async def test_staff_books_an_order(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """Booking answers 201 with a readable order number, the stage and the warranty."""
        created = await book(api, auth)
        assert ORDER_ID_PATTERN.match(created["order_id"])
        assert created["stage"] == "booked"
        assert created["warranty"] == {"status": "in_warranty", "product_until": "2027-06-01"}

    async def test_order_number_carries_no_personal_data(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """Neither the name nor the phone number shows in the order number."""
        created = await book(api, auth)
        assert "Li" not in created["order_id"]
        assert "138" not in created["order_id"]

    @pytest.mark.parametrize(
        ("appliance", "status"),
        [
            ({"purchase_date": "2024-01-10", "proof_of_purchase": True}, "out_of_warranty"),
            ({"proof_of_purchase": False}, "no_proof"),
        ],
    )
    async def test_warranty_is_settled_at_booking(
        self, api: httpx.AsyncClient, auth: Auth, appliance: dict[str, Any], status: str
    ) -> None:
        """An old purchase is out of warranty; no proof of purchase is never free."""
        created = await book(api, auth, appliance={"category": "washing_machine", **appliance})
        assert created["warranty"]["status"] == status

    async def test_customer_token_reads_its_own_order(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """The customer's link opens their order, with their own details."""
        created = await book(api, auth)
        response = await api.get(
            f"/v1/orders/{created['order_id']}",
            headers={"Authorization": f"Bearer {created['customer_token']}"},
        )
        assert response.status_code == 200
        assert response.json()["customer"]["phone"] == "+86 138 0013 8000"

    async def test_malformed_body_is_422_naming_the_field(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """A bad phone number is refused, and the error says which field."""
        booking = create_booking_json()
        booking["customer"]["phone"] = "call me maybe"
        response = await api.post("/v1/orders", json=booking, headers=auth("staff"))
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert "body.customer.phone" in response.json()["detail"]

    async def test_unknown_category_is_422(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """Only the published categories can be booked."""
        booking = create_booking_json(
            appliance={"category": "spaceship", "proof_of_purchase": False}
        )
        response = await api.post("/v1/orders", json=booking, headers=auth("staff"))
        assert response.status_code == 422
        assert "body.appliance.category" in response.json()["detail"]

    @pytest.mark.parametrize(
        ("field", "overrides"),
        [
            (
                "preferred_window.end",
                {
                    "preferred_window": {
                        "start": "2020-01-01T09:00:00+08:00",
                        "end": "2020-01-01T12:00:00+08:00",
                    }
                },
            ),
            (
                "appliance.purchase_date",
                {
                    "appliance": {
                        "category": "refrigerator",
                        "purchase_date": "2099-01-01",
                        "proof_of_purchase": True,
                    }
                },
            ),
        ],
    )
    async def test_impossible_dates_are_422(
        self, api: httpx.AsyncClient, auth: Auth, field: str, overrides: dict[str, Any]
    ) -> None:
        """A visit window already over, or a purchase in the future, is refused and named."""
        response = await api.post(
            "/v1/orders", json=create_booking_json(**overrides), headers=auth("staff")
        )
        assert response.status_code == 422
        assert f"body.{field}" in response.json()["detail"]

    async def test_order_shows_the_appliance(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """The technician can see what they are repairing: brand, purchase date, gas."""
        created = await book(api, auth)
        order = (await api.get(f"/v1/orders/{created['order_id']}", headers=auth("staff"))).json()
        assert order["appliance"]["brand"] == "Haier"
        assert order["appliance"]["purchase_date"] == "2026-06-01"
        assert order["appliance"]["gas_fired"] is False

    async def test_technician_may_not_book(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """Only staff book orders."""
        response = await api.post(
            "/v1/orders", json=create_booking_json(), headers=auth("technician", technician_id="T1")
        )
        assert response.status_code == 403
        assert response.json()["status"] == 403


class TestIdempotencyKey:
    async def test_same_key_same_body_returns_the_same_order(
        self, api: httpx.AsyncClient, auth: Auth, temporal: Client, settings: Settings
    ) -> None:
        """A retried booking answers 200 with the first order and starts nothing new."""
        key = uuid.uuid4().hex
        headers = auth("staff") | {"Idempotency-Key": key}
        first = await api.post("/v1/orders", json=create_booking_json(), headers=headers)
        second = await api.post("/v1/orders", json=create_booking_json(), headers=headers)
        assert (first.status_code, second.status_code) == (201, 200)
        assert second.json()["order_id"] == first.json()["order_id"]
        started = [
            wf
            async for wf in temporal.list_workflows(
                f"TaskQueue = '{settings.task_queue}' AND WorkflowId = '{first.json()['order_id']}'"
            )
        ]
        assert len(started) == 1

    async def test_same_key_other_body_is_409(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """Reusing a key for a different booking is refused."""
        headers = auth("staff") | {"Idempotency-Key": uuid.uuid4().hex}
        first = await api.post("/v1/orders", json=create_booking_json(), headers=headers)
        other = create_booking_json(fault={"description": "door does not close"})
        second = await api.post("/v1/orders", json=other, headers=headers)
        assert first.status_code == 201
        assert second.status_code == 409
        assert "Idempotency-Key" in second.json()["detail"]


class TestAuthentication:
    async def test_missing_token_is_401(self, api: httpx.AsyncClient) -> None:
        """No token, no access."""
        response = await api.post("/v1/orders", json=create_booking_json())
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"

    @pytest.mark.parametrize(
        "bad_token",
        [
            pytest.param(lambda mint: mint("staff")[:-4] + "AAAA", id="tampered signature"),
            pytest.param(
                lambda mint: mint("staff", secret="another-secret-" * 4), id="wrong secret"
            ),
            pytest.param(lambda mint: mint("staff", ttl=timedelta(seconds=-5)), id="expired"),
            pytest.param(lambda mint: mint("staff", aud="someone-else"), id="wrong audience"),
            pytest.param(lambda mint: mint("staff", iss="someone-else"), id="wrong issuer"),
            pytest.param(lambda mint: mint("emperor"), id="unknown role"),
            pytest.param(
                lambda _: jwt.encode(
                    {"sub": "x", "role": "staff", "iss": "repairflow", "aud": "repairflow"},
                    AUTH_SECRET,
                    algorithm="HS256",
                ),
                id="no exp",
            ),
            pytest.param(
                lambda _: jwt.encode(
                    {
                        "sub": "x",
                        "role": "staff",
                        "iss": "repairflow",
                        "aud": "repairflow",
                        "exp": 2**40,
                    },
                    AUTH_SECRET,
                    algorithm="HS512",
                ),
                id="other algorithm",
            ),
            pytest.param(
                lambda _: jwt.encode(
                    {
                        "sub": "x",
                        "role": "staff",
                        "iss": "repairflow",
                        "aud": "repairflow",
                        "exp": 2**40,
                    },
                    "",
                    algorithm="none",
                ),
                id="unsigned",
            ),
        ],
    )
    async def test_bad_token_is_401(
        self, api: httpx.AsyncClient, token: TokenFactory, bad_token: Callable[[TokenFactory], str]
    ) -> None:
        """Tampered, expired, foreign or unsigned tokens are refused and nothing is booked."""
        response = await api.post(
            "/v1/orders",
            json=create_booking_json(),
            headers={"Authorization": f"Bearer {bad_token(token)}"},
        )
        assert response.status_code == 401


class TestGetOrder:
    @pytest.mark.parametrize("order_id", ["RF000101-ZZZZZZ", "x" * 3000, "RF'; DROP TABLE orders"])
    async def test_unknown_order_is_404(
        self, api: httpx.AsyncClient, auth: Auth, order_id: str
    ) -> None:
        """An order number that does not exist, however odd, is a 404."""
        response = await api.get(f"/v1/orders/{order_id}", headers=auth("staff"))
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"

    async def test_customer_token_of_another_order_is_403(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """A customer link opens only its own order."""
        mine, theirs = await book(api, auth), await book(api, auth)
        response = await api.get(
            f"/v1/orders/{theirs['order_id']}",
            headers={"Authorization": f"Bearer {mine['customer_token']}"},
        )
        assert response.status_code == 403

    async def test_auditor_sees_no_personal_data(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """An auditor reads the order but not the customer's name, phone or address."""
        created = await book(api, auth)
        response = await api.get(f"/v1/orders/{created['order_id']}", headers=auth("auditor"))
        assert response.status_code == 200
        customer = response.json()["customer"]
        assert customer["region"] == "pudong"
        assert customer["name"] is None
        assert customer["phone"] is None
        assert customer["address"] is None

    async def test_unassigned_technician_is_403(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """A technician only reads orders assigned to them."""
        created = await book(api, auth)
        response = await api.get(
            f"/v1/orders/{created['order_id']}", headers=auth("technician", technician_id="T-OTHER")
        )
        assert response.status_code == 403

    async def test_order_shows_its_timeline(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """The order lists what happened, who did it and when."""
        created = await book(api, auth)
        order = (await api.get(f"/v1/orders/{created['order_id']}", headers=auth("staff"))).json()
        assert order["stage"] == "dispatching"
        assert [entry["action"] for entry in order["timeline"]] == ["booked", "stage:dispatching"]
        assert order["timeline"][0]["actor"] == "staff:test-staff"


class TestCancel:
    async def test_staff_cancels_before_check_in(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """Cancelling answers 200 with the order now cancelled."""
        created = await book(api, auth)
        response = await api.post(
            f"/v1/orders/{created['order_id']}/cancel",
            json={"reason": "customer fixed it"},
            headers=auth("staff"),
        )
        assert response.status_code == 200
        assert response.json()["order_id"] == created["order_id"]
        assert response.json()["stage"] == "cancelled"

    async def test_cancelling_a_cancelled_order_is_409_saying_why(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """The second cancel is refused and names the stage the order is in."""
        created = await book(api, auth)
        url = f"/v1/orders/{created['order_id']}/cancel"
        await api.post(url, json={"reason": "first"}, headers=auth("staff"))
        response = await api.post(url, json={"reason": "second"}, headers=auth("staff"))
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert "cancelled" in response.json()["detail"]
        order = (await api.get(f"/v1/orders/{created['order_id']}", headers=auth("staff"))).json()
        assert [e["detail"] for e in order["timeline"] if e["action"] == "stage:cancelled"] == [
            "first"
        ]

    async def test_customer_cancels_own_order(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """The customer can cancel through their link."""
        created = await book(api, auth)
        response = await api.post(
            f"/v1/orders/{created['order_id']}/cancel",
            json={"reason": "not needed"},
            headers={"Authorization": f"Bearer {created['customer_token']}"},
        )
        assert response.status_code == 200
        assert response.json()["stage"] == "cancelled"

    async def test_cancel_without_reason_is_422(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """A cancellation needs a reason; without one nothing changes."""
        created = await book(api, auth)
        response = await api.post(
            f"/v1/orders/{created['order_id']}/cancel", json={}, headers=auth("staff")
        )
        assert response.status_code == 422
        order = (await api.get(f"/v1/orders/{created['order_id']}", headers=auth("staff"))).json()
        assert order["stage"] == "dispatching"

    async def test_auditor_may_not_cancel(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """Auditors change nothing."""
        created = await book(api, auth)
        response = await api.post(
            f"/v1/orders/{created['order_id']}/cancel",
            json={"reason": "x"},
            headers=auth("auditor"),
        )
        assert response.status_code == 403


class TestOperatorsSee:
    async def test_search_attributes_follow_the_stage(
        self, api: httpx.AsyncClient, auth: Auth, temporal: Client
    ) -> None:
        """Operators find the order in the Web UI by stage, priority, category and region."""
        created = await book(api, auth, priority="high")
        query = (
            f"WorkflowId = '{created['order_id']}' AND OrderStage = 'dispatching' AND "
            "OrderPriority = 'high' AND OrderCategory = 'refrigerator' AND OrderRegion = 'pudong' "
            "AND SlaBreached = false"
        )

        async def matches() -> list[str]:
            return [wf.id async for wf in temporal.list_workflows(query)]

        assert await eventually(matches, bool) == [created["order_id"]]

    async def test_read_model_row_follows_the_order(
        self, api: httpx.AsyncClient, auth: Auth, records_engine: AsyncEngine
    ) -> None:
        """The records store holds one row per order, at its current stage, without delay."""
        created = await book(api, auth)
        await api.post(
            f"/v1/orders/{created['order_id']}/cancel", json={"reason": "x"}, headers=auth("staff")
        )

        async def row() -> OrderRow | None:
            async with AsyncSession(records_engine) as session:
                return await session.get(OrderRow, created["order_id"])

        stored = await eventually(row, lambda r: r is not None and r.stage == "cancelled")
        assert stored is not None
        assert stored.stage == "cancelled"
        order = (await api.get(f"/v1/orders/{created['order_id']}", headers=auth("staff"))).json()
        assert stored.last_seq == len(order["timeline"])


class TestPrivacy:
    async def test_no_personal_data_in_log_lines(
        self, api: httpx.AsyncClient, auth: Auth, temporal: Client, log_output: io.StringIO
    ) -> None:
        """Booking, reading and cancelling an order logs neither name, phone, email nor address."""
        created = await book(api, auth)
        order_url = f"/v1/orders/{created['order_id']}"
        await api.get(order_url, headers=auth("staff"))
        await api.post(f"{order_url}/cancel", json={"reason": "x"}, headers=auth("staff"))
        # The worker's record writes and messages log too: a cancelled order closes once the
        # last of them is done.
        workflow = temporal.get_workflow_handle(created["order_id"])
        await eventually(workflow.describe, lambda d: d.status == WorkflowExecutionStatus.COMPLETED)
        logged = log_output.getvalue()
        assert created["order_id"] in logged
        customer = create_booking_json()["customer"]
        for personal in ("name", "phone", "email", "address"):
            i = logged.find(customer[personal])
            assert i < 0, logged[max(0, i - 400) : i + 100]


class TestEngineDown:
    async def test_unreachable_engine_is_503_with_retry_after(
        self, settings: Settings, auth: Auth
    ) -> None:
        """With the workflow engine down, calls answer 503 and say when to retry."""
        down = settings.model_copy(update={"temporal_address": "127.0.0.1:1"})
        async for http in serve(create_app(down)):
            booking = await http.post(
                "/v1/orders", json=create_booking_json(), headers=auth("staff")
            )
            read = await http.get("/v1/orders/RF000101-ZZZZZZ", headers=auth("staff"))
            ready = await http.get("/readyz")
        for response in (booking, read, ready):
            assert response.status_code == 503
            assert response.headers["retry-after"]
        assert (ready.json()["workflow_engine"], ready.json()["database"]) == ("down", "up")

    async def test_unreachable_database_is_named_by_readyz(
        self, settings: Settings, auth: Auth
    ) -> None:
        app = create_app(settings)
        async for http in serve(app):
            engine = app.state.engine.sync_engine

            def refuse(*_: object) -> None:
                raise OperationalError("SELECT 1", {}, ConnectionError("connection refused"))

            event.listen(engine, "before_cursor_execute", refuse)
            try:
                ready = await http.get("/readyz")
                read = await http.get("/v1/orders", headers=auth("staff"))
            finally:
                event.remove(engine, "before_cursor_execute", refuse)
        for response in (ready, read):
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"]
        assert (ready.json()["workflow_engine"], ready.json()["database"]) == ("up", "down")
        assert ready.json()["detail"] == "unreachable: database"


class TestHealth:
    async def test_ready_when_engine_and_database_answer(self, api: httpx.AsyncClient) -> None:
        """Liveness and readiness both answer 200 on a healthy service."""
        assert (await api.get("/healthz")).status_code == 200
        ready = await api.get("/readyz")
        assert ready.status_code == 200
        assert (ready.json()["workflow_engine"], ready.json()["database"]) == ("up", "up")
