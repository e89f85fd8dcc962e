"""Dispatch through the API: offers, manual assignment and the registry's workload counts."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.api.client import Auth
from tests.factories import create_booking_json, create_technician_json
from tests.waiting import eventually


def new_region() -> str:
    return f"region-{uuid.uuid4().hex[:8]}"


async def register(api: httpx.AsyncClient, auth: Auth, region: str, **overrides: Any) -> str:
    technician = create_technician_json(regions=[region], **overrides)
    response = await api.post("/v1/technicians", json=technician, headers=auth("admin"))
    assert response.status_code == 201, response.text
    return str(technician["id"])


async def book(api: httpx.AsyncClient, auth: Auth, region: str) -> dict[str, Any]:
    booking = create_booking_json()
    booking["customer"]["region"] = region
    response = await api.post("/v1/orders", json=booking, headers=auth("staff"))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def order_of(api: httpx.AsyncClient, auth: Auth, order_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await api.get(f"/v1/orders/{order_id}", headers=auth("staff"))).json()
    return body


class TestOffer:
    async def test_only_the_offered_technician_answers_and_only_once(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """Another technician's accept is 403; the holder's accept schedules; a second is 409."""
        region = new_region()
        holder = await register(api, auth, region)
        other = await register(api, auth, region, skills=["television"])
        created = await book(api, auth, region)
        url = f"/v1/orders/{created['order_id']}"
        order = await eventually(
            lambda: order_of(api, auth, created["order_id"]),
            lambda o: o["offer"] is not None,
        )
        assert order["offer"]["technician_id"] == holder
        assert order["offer"]["expires_at"]

        for action in ("accept", "decline"):
            refused = await api.post(
                f"{url}/offer/{action}",
                json={"reason": "not mine"} if action == "decline" else None,
                headers=auth("technician", technician_id=other),
            )
            assert refused.status_code == 403, refused.text
        staff = await api.post(f"{url}/offer/accept", headers=auth("staff"))
        assert staff.status_code == 403

        accepted = await api.post(
            f"{url}/offer/accept", headers=auth("technician", technician_id=holder)
        )
        assert accepted.status_code == 200
        assert accepted.json()["stage"] == "scheduled"
        assert accepted.json()["technician_id"] == holder
        again = await api.post(
            f"{url}/offer/accept", headers=auth("technician", technician_id=holder)
        )
        assert again.status_code == 409
        assert "scheduled" in again.json()["detail"]

    async def test_decline_without_reason_is_422(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """A technician says why they turn a job down."""
        region = new_region()
        holder = await register(api, auth, region)
        created = await book(api, auth, region)
        await eventually(
            lambda: order_of(api, auth, created["order_id"]), lambda o: o["offer"] is not None
        )
        response = await api.post(
            f"/v1/orders/{created['order_id']}/offer/decline",
            json={},
            headers=auth("technician", technician_id=holder),
        )
        assert response.status_code == 422


class TestManualAssignment:
    async def test_suspended_technician_cannot_be_assigned(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """Staff cannot hand an order to a suspended technician; the order is unchanged."""
        region = new_region()
        suspended = await register(api, auth, region)
        await api.patch(
            f"/v1/technicians/{suspended}", json={"status": "suspended"}, headers=auth("admin")
        )
        created = await book(api, auth, region)
        before = await order_of(api, auth, created["order_id"])
        response = await api.post(
            f"/v1/orders/{created['order_id']}/assign",
            json={"technician_id": suspended},
            headers=auth("staff"),
        )
        assert response.status_code == 409
        assert "suspended" in response.json()["detail"]
        after = await order_of(api, auth, created["order_id"])
        assert after["technician_id"] is None
        assert after["stage"] == before["stage"]

    async def test_unqualified_technician_cannot_be_assigned(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """A television repairer is not sent to a refrigerator."""
        region = new_region()
        tv_only = await register(api, auth, region, skills=["television"])
        created = await book(api, auth, region)
        response = await api.post(
            f"/v1/orders/{created['order_id']}/assign",
            json={"technician_id": tv_only},
            headers=auth("staff"),
        )
        assert response.status_code == 409
        assert "refrigerator" in response.json()["detail"]

    async def test_unknown_technician_is_404(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """Assigning to an id that is not in the registry is a 404."""
        created = await book(api, auth, new_region())
        response = await api.post(
            f"/v1/orders/{created['order_id']}/assign",
            json={"technician_id": "T-NOBODY"},
            headers=auth("staff"),
        )
        assert response.status_code == 404


class TestWorkload:
    async def test_open_orders_follow_accepts_reassignments_cancellations_and_completions(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """The registry counts exactly the unfinished orders each technician holds."""
        region = new_region()
        first = await register(api, auth, region, skills=["refrigerator", "television"])
        second = await register(api, auth, region, skills=["refrigerator"])
        orders = [await book(api, auth, region) for _ in range(4)]
        urls = [f"/v1/orders/{o['order_id']}" for o in orders]

        async def assign(url: str, technician_id: str) -> None:
            response = await api.post(
                f"{url}/assign", json={"technician_id": technician_id}, headers=auth("staff")
            )
            assert response.status_code == 200, response.text

        kept, reassigned, cancelled, completed = urls
        # The first order is taken through an offer, whichever of the two is asked first.
        await eventually(lambda: order_of(api, auth, orders[0]["order_id"]), lambda o: o["offer"])
        offer = (await order_of(api, auth, orders[0]["order_id"]))["offer"]
        accepted = await api.post(
            f"{kept}/offer/accept",
            headers=auth("technician", technician_id=offer["technician_id"]),
        )
        assert accepted.status_code == 200
        holder = offer["technician_id"]
        other = second if holder == first else first
        await assign(reassigned, holder)
        await assign(reassigned, other)
        await assign(cancelled, holder)
        response = await api.post(
            f"{cancelled}/cancel", json={"reason": "x"}, headers=auth("staff")
        )
        assert response.status_code == 200
        await assign(completed, holder)
        tech = auth("technician", technician_id=holder)
        now = datetime.now(UTC)
        window = {
            "start": (now + timedelta(hours=1)).isoformat(),
            "end": (now + timedelta(hours=3)).isoformat(),
        }
        for step, body in [
            ("appointment", window),
            ("check-in", None),
            ("diagnosis", {"fault_cause": "loose wire", "plan": "fix it"}),
            (
                "service-record",
                {
                    "repair_item": "rewire",
                    "fault_cause": "loose wire",
                    "method": "rewired",
                    "labour_minutes": 30,
                    "photos_before": ["b.jpg"],
                    "photos_after": ["a.jpg"],
                },
            ),
            ("complete", None),
        ]:
            response = await api.post(f"{completed}/{step}", json=body, headers=tech)
            assert response.status_code == 200, response.text
        response = await api.post(
            f"{completed}/acceptance", json={"accepted": True}, headers=auth("staff")
        )
        assert response.status_code == 200

        async def counts() -> dict[str, int]:
            return {
                technician_id: (
                    await api.get(f"/v1/technicians/{technician_id}", headers=auth("staff"))
                ).json()["open_orders"]
                for technician_id in (holder, other)
            }

        expected = {holder: 1, other: 1}
        assert await eventually(counts, lambda c: c == expected) == expected


class TestOfferedTechnicianReads:
    async def test_offered_technician_reads_the_job_without_personal_data(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """The technician deciding on an offer sees what and where, not who or the address."""
        region = new_region()
        holder = await register(api, auth, region)
        created = await book(api, auth, region)
        await eventually(
            lambda: order_of(api, auth, created["order_id"]), lambda o: o["offer"] is not None
        )
        response = await api.get(
            f"/v1/orders/{created['order_id']}", headers=auth("technician", technician_id=holder)
        )
        assert response.status_code == 200
        order = response.json()
        assert order["category"] == "refrigerator"
        assert order["customer"]["region"] == region
        assert order["customer"]["phone"] is None
        assert order["customer"]["address"] is None


SERVICE_RECORD = {
    "repair_item": "rewire",
    "fault_cause": "loose wire",
    "method": "rewired",
    "labour_minutes": 30,
    "photos_before": ["b.jpg"],
    "photos_after": ["a.jpg"],
}


class TestPerformance:
    async def test_figures_count_reworks_and_acceptances(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """One order accepted after a rework: completed 1, rework rate 1, first-time fix 0."""
        region = new_region()
        technician_id = await register(api, auth, region)
        created = await book(api, auth, region)
        url = f"/v1/orders/{created['order_id']}"
        assigned = await api.post(
            f"{url}/assign", json={"technician_id": technician_id}, headers=auth("staff")
        )
        assert assigned.status_code == 200
        tech = auth("technician", technician_id=technician_id)
        for step, body in [
            ("check-in", None),
            ("diagnosis", {"fault_cause": "loose wire", "plan": "fix it"}),
            ("service-record", SERVICE_RECORD),
            ("complete", None),
        ]:
            assert (await api.post(f"{url}/{step}", json=body, headers=tech)).status_code == 200
        staff = auth("staff")
        rejected = await api.post(
            f"{url}/acceptance", json={"accepted": False, "reason": "leaks"}, headers=staff
        )
        assert rejected.status_code == 200
        for step, body in [("service-record", SERVICE_RECORD), ("complete", None)]:
            assert (await api.post(f"{url}/{step}", json=body, headers=tech)).status_code == 200
        accepted = await api.post(f"{url}/acceptance", json={"accepted": True}, headers=staff)
        assert accepted.status_code == 200

        async def figures() -> dict[str, Any]:
            response = await api.get(f"/v1/technicians/{technician_id}/performance", headers=tech)
            assert response.status_code == 200
            body: dict[str, Any] = response.json()
            return body

        performance = await eventually(figures, lambda f: f["completed"] == 1)
        assert performance["orders"] == 1
        assert performance["open_orders"] == 0
        assert performance["rework_rate"] == "1.000"
        assert performance["first_time_fix_rate"] == "0.000"
        assert performance["repeat_failure_rate"] == "0.000"

    async def test_another_technician_may_not_read_them(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """A technician reads only their own figures; an unknown technician is 404."""
        technician_id = await register(api, auth, new_region())
        other = auth("technician", technician_id="T-SOMEONE-ELSE")
        response = await api.get(f"/v1/technicians/{technician_id}/performance", headers=other)
        assert response.status_code == 403
        missing = await api.get("/v1/technicians/T-NOBODY/performance", headers=auth("auditor"))
        assert missing.status_code == 404


class TestCertificateOnTheVisitDay:
    async def test_visit_after_the_gas_certificate_lapses_is_refused(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """A gas certificate valid today but not on the visit day rules out that day: 409."""
        region = new_region()
        soon = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
        technician_id = await register(
            api,
            auth,
            region,
            certificates=[
                {"type": "appliance_repair", "number": "AR-1", "valid_until": "2099-01-01"},
                {"type": "gas", "number": "G-1", "valid_until": soon},
            ],
        )
        booking = create_booking_json()
        booking["customer"]["region"] = region
        booking["appliance"] = {"category": "gas_stove", "proof_of_purchase": False}
        created = (await api.post("/v1/orders", json=booking, headers=auth("staff"))).json()
        url = f"/v1/orders/{created['order_id']}"
        assigned = await api.post(
            f"{url}/assign", json={"technician_id": technician_id}, headers=auth("staff")
        )
        assert assigned.status_code == 200
        later = datetime.now(UTC) + timedelta(days=5)
        window = {"start": later.isoformat(), "end": (later + timedelta(hours=2)).isoformat()}
        confirmed = await api.post(
            f"{url}/appointment",
            json=window,
            headers=auth("technician", technician_id=technician_id),
        )
        assert confirmed.status_code == 409
        assert "gas" in confirmed.json()["detail"]
        customer = {"Authorization": f"Bearer {created['customer_token']}"}
        moved = await api.post(f"{url}/reschedule", json=window, headers=customer)
        assert moved.status_code == 409
        order = await order_of(api, auth, created["order_id"])
        assert order["appointment"] is None
        assert order["preferred_window"] is None
