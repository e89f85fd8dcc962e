"""An order's life through the HTTP API, as the staff console, the technicians' app and the
customer's link drive it: every order action's happy call, who may not take it, when it does
not fit, what a malformed body gets, and that a refused action changes nothing."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from tests.api.client import Auth
from tests.api.drive import (
    DIAGNOSIS,
    QUOTE,
    SERVICE_RECORD,
    Drive,
    Driven,
    Json,
    Role,
    Step,
    book,
    messages_sent,
    new_technician_id,
    problem,
    refused,
    state,
    window,
)
from tests.waiting import eventually

CENT = Decimal("0.01")
VISIT_FEE = Decimal("50.00")  # the policy's default
SURVEY: Json = {"attitude": 5, "quality": 4, "result": 5, "speed": 3, "comment": "quick"}


async def refused_for_roles(
    api: httpx.AsyncClient, order: Driven, path: str, roles: list[Role], json: Json | None = None
) -> dict[Role, int]:
    """Each role's status for an action that fits the order's stage; nothing changes."""
    statuses: dict[Role, int] = {}
    for role in roles:
        before = await state(api, order)
        response = await api.post(f"{order.url}/{path}", json=json, headers=order.by(role))
        statuses[role] = response.status_code
        if response.status_code == 403:
            problem(response, 403)
        assert await state(api, order) == before, f"{role} changed the order with {path}"
    return statuses


def all_forbidden(roles: list[Role]) -> dict[Role, int]:
    return dict.fromkeys(roles, 403)


# ---- before check-in ---------------------------------------------------------------------------


class TestReschedule:
    async def test_customer_moves_the_window(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """The new window shows as the preferred one; the order stays scheduled."""
        order = await drive("assigned")
        new = window(days=3)
        response = await api.post(f"{order.url}/reschedule", json=new, headers=order.by("customer"))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "scheduled")
        assert datetime.fromisoformat(body["preferred_window"]["start"]) == datetime.fromisoformat(
            new["start"]
        )

    async def test_staff_moves_a_confirmed_visit_and_the_time_must_be_confirmed_again(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The confirmed appointment is dropped; the technician must agree a new time."""
        order = await drive("appointment")
        response = await api.post(
            f"{order.url}/reschedule", json=window(days=3), headers=order.by("staff")
        )
        assert response.status_code == 200, response.text
        assert response.json()["stage"] == "scheduled"
        assert response.json()["appointment"] is None

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """The technician, auditors and admins cannot move the customer's visit."""
        order = await drive("assigned")
        roles: list[Role] = ["technician", "auditor", "admin"]
        statuses = await refused_for_roles(api, order, "reschedule", roles, window(days=3))
        assert statuses == all_forbidden(roles)

    async def test_after_check_in_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Once the technician is on site, the visit cannot be moved."""
        order = await drive("checked_in")
        body = await refused(
            api, order, "reschedule", by=order.by("customer"), status=409, json=window(days=3)
        )
        assert "on_site" in body["detail"]

    async def test_window_without_offset_is_422_naming_the_field(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A time without its UTC offset is refused, naming the field."""
        order = await drive("assigned")
        naive = {"start": "2030-01-01T10:00:00", "end": "2030-01-01T12:00:00+08:00"}
        body = await refused(api, order, "reschedule", by=order.by("staff"), status=422, json=naive)
        assert "body.start" in body["detail"]


class TestCancel:
    async def test_customer_cancels_a_scheduled_order(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The order is cancelled with the customer's reason."""
        order = await drive("assigned")
        response = await api.post(
            f"{order.url}/cancel", json={"reason": "fixed it myself"}, headers=order.by("customer")
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "cancelled")
        assert body["cancellation_reason"] == "fixed it myself"

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """The technician, auditors and admins cannot cancel an order."""
        order = await drive("assigned")
        roles: list[Role] = ["technician", "auditor", "admin"]
        statuses = await refused_for_roles(api, order, "cancel", roles, {"reason": "x"})
        assert statuses == all_forbidden(roles)

    async def test_after_check_in_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Once the technician is on site, the order can no longer be cancelled."""
        order = await drive("checked_in")
        body = await refused(
            api, order, "cancel", by=order.by("staff"), status=409, json={"reason": "too late"}
        )
        assert "on_site" in body["detail"]

    async def test_blank_reason_is_422_naming_the_field(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A cancellation needs a reason that says something."""
        order = await drive("assigned")
        body = await refused(
            api, order, "cancel", by=order.by("staff"), status=422, json={"reason": "   "}
        )
        assert "body.reason" in body["detail"]


class TestAssign:
    async def test_staff_assigns_a_technician(
        self, api: httpx.AsyncClient, auth: Auth, drive: Drive
    ) -> None:
        """The order is scheduled with the technician named."""
        order = await drive("booked")
        technician_id = await new_technician_id(api, auth)
        response = await api.post(
            f"{order.url}/assign", json={"technician_id": technician_id}, headers=order.by("staff")
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "scheduled")
        assert body["technician_id"] == technician_id

    async def test_staff_assigns_straight_after_booking(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """Booking by phone and assigning by hand at once works every time."""
        for _ in range(30):
            created = await book(api, auth)
            response = await api.post(
                f"/v1/orders/{created['order_id']}/assign",
                json={"technician_id": await new_technician_id(api, auth)},
                headers=auth("staff"),
            )
            assert response.status_code == 200, response.text

    async def test_supervisor_reassigns_and_the_first_technician_is_locked_out(
        self, api: httpx.AsyncClient, auth: Auth, drive: Drive
    ) -> None:
        """After reassignment the order belongs to the new technician only."""
        order = await drive("assigned")
        second = await new_technician_id(api, auth)
        response = await api.post(
            f"{order.url}/assign", json={"technician_id": second}, headers=order.by("supervisor")
        )
        assert response.status_code == 200, response.text
        assert response.json()["technician_id"] == second
        await refused(api, order, "check-in", by=order.by("technician"), status=403)
        checked_in = await api.post(
            f"{order.url}/check-in", headers=auth("technician", technician_id=second)
        )
        assert checked_in.status_code == 200, checked_in.text

    async def test_search_attribute_follows_the_technician(
        self, api: httpx.AsyncClient, auth: Auth, drive: Drive, temporal: Client
    ) -> None:
        """Operators find the order in the Web UI by its technician, also after reassignment."""
        order = await drive("assigned")

        async def found(technician_id: str) -> list[str]:
            query = f"WorkflowId = '{order.order_id}' AND TechnicianId = '{technician_id}'"
            return [wf.id async for wf in temporal.list_workflows(query)]

        assert await eventually(lambda: found(order.technician_id), bool) == [order.order_id]
        second = await new_technician_id(api, auth)
        response = await api.post(
            f"{order.url}/assign", json={"technician_id": second}, headers=order.by("staff")
        )
        assert response.status_code == 200, response.text
        assert await eventually(lambda: found(second), bool) == [order.order_id]
        assert await found(order.technician_id) == []

    async def test_other_roles_are_refused(
        self, api: httpx.AsyncClient, auth: Auth, drive: Drive
    ) -> None:
        """Technicians, customers, auditors and admins cannot assign."""
        order = await drive("assigned")
        roles: list[Role] = ["technician", "customer", "auditor", "admin"]
        body = {"technician_id": await new_technician_id(api, auth)}
        statuses = await refused_for_roles(api, order, "assign", roles, body)
        assert statuses == all_forbidden(roles)

    async def test_after_check_in_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, auth: Auth, drive: Drive
    ) -> None:
        """A technician on site is not replaced by assignment."""
        order = await drive("checked_in")
        body = await refused(
            api,
            order,
            "assign",
            by=order.by("staff"),
            status=409,
            json={"technician_id": await new_technician_id(api, auth)},
        )
        assert "on_site" in body["detail"]

    async def test_missing_technician_is_422_naming_the_field(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """An assignment names the technician."""
        order = await drive("booked")
        body = await refused(api, order, "assign", by=order.by("staff"), status=422, json={})
        assert "body.technician_id" in body["detail"]


class TestAppointment:
    async def test_assigned_technician_confirms_the_time(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The confirmed window shows on the order."""
        order = await drive("assigned")
        agreed = window(days=2)
        response = await api.post(
            f"{order.url}/appointment", json=agreed, headers=order.by("technician")
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "scheduled")
        assert datetime.fromisoformat(body["appointment"]["end"]) == datetime.fromisoformat(
            agreed["end"]
        )

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Only the technician confirms the time agreed with the customer."""
        order = await drive("assigned")
        roles: list[Role] = ["staff", "supervisor", "customer", "auditor", "admin"]
        statuses = await refused_for_roles(api, order, "appointment", roles, window())
        assert statuses == all_forbidden(roles)

    async def test_on_site_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A technician already on site has no appointment to confirm."""
        order = await drive("checked_in")
        body = await refused(
            api, order, "appointment", by=order.by("technician"), status=409, json=window()
        )
        assert "on_site" in body["detail"]

    async def test_missing_end_is_422_naming_the_field(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A window has a start and an end."""
        order = await drive("assigned")
        body = await refused(
            api,
            order,
            "appointment",
            by=order.by("technician"),
            status=422,
            json={"start": window()["start"]},
        )
        assert "body.end" in body["detail"]


# ---- on site -----------------------------------------------------------------------------------


class TestCheckIn:
    async def test_assigned_technician_checks_in(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The order is on site and the repair clock runs."""
        order = await drive("assigned")
        response = await api.post(f"{order.url}/check-in", headers=order.by("technician"))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "on_site")
        assert body["sla"]["arrival"]["stopped_at"] is not None
        assert "general_repair" in body["sla"]

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Only the technician checks in."""
        order = await drive("assigned")
        roles: list[Role] = ["staff", "supervisor", "customer", "auditor", "admin"]
        assert await refused_for_roles(api, order, "check-in", roles) == all_forbidden(roles)

    async def test_second_check_in_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A technician already on site cannot check in again."""
        order = await drive("checked_in")
        body = await refused(api, order, "check-in", by=order.by("technician"), status=409)
        assert "on_site" in body["detail"]


class TestDiagnosis:
    async def test_in_warranty_fault_needs_no_quote(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The diagnosis shows on the order; a free repair has no quote."""
        order = await drive("checked_in")
        response = await api.post(
            f"{order.url}/diagnosis", json=DIAGNOSIS, headers=order.by("technician")
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "on_site")
        assert body["diagnosis"]["fault_cause"] == DIAGNOSIS["fault_cause"]
        assert "quote" not in body  # the answer names only what the action changed

    async def test_out_of_warranty_fault_carries_a_quote_with_the_visit_fee(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The built-in policy publishes no labour prices: the quote's amount is off the list,
        so it waits for a supervisor, and then for the customer."""
        order = await drive("checked_in", out_of_warranty=True)
        response = await api.post(
            f"{order.url}/diagnosis",
            json=DIAGNOSIS | {"quote": QUOTE},
            headers=order.by("technician"),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["quote"]["status"] == "awaiting_supervisor"
        assert body["quote"]["total"] == str(Decimal("80.00") + Decimal("45.00") + VISIT_FEE)
        assert [(e["reason"], e["to"]) for e in body["escalations"]][-1] == (
            "quote_off_list",
            "supervisor",
        )
        authorized = await api.post(f"{order.url}/quote/authorize", headers=order.by("supervisor"))
        assert authorized.status_code == 200, authorized.text
        assert authorized.json()["quote"]["status"] == "pending"

    async def test_out_of_warranty_without_quote_is_409(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A chargeable repair cannot be diagnosed without the quote the customer must see."""
        order = await drive("checked_in", out_of_warranty=True)
        body = await refused(
            api, order, "diagnosis", by=order.by("technician"), status=409, json=DIAGNOSIS
        )
        assert "on_site" in body["detail"]
        assert "quote" in body["detail"]

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Only the technician diagnoses."""
        order = await drive("checked_in")
        roles: list[Role] = ["staff", "supervisor", "customer", "auditor", "admin"]
        statuses = await refused_for_roles(api, order, "diagnosis", roles, DIAGNOSIS)
        assert statuses == all_forbidden(roles)

    async def test_before_check_in_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Diagnosis happens on site."""
        order = await drive("assigned")
        body = await refused(
            api, order, "diagnosis", by=order.by("technician"), status=409, json=DIAGNOSIS
        )
        assert "scheduled" in body["detail"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            pytest.param({"plan": "replace it"}, "body.fault_cause", id="no fault cause"),
            pytest.param(
                DIAGNOSIS
                | {"quote": {"parts": [{"part_no": "P-1", "qty": 0, "unit_cost": "1.00"}]}},
                "body.quote.parts.0.qty",
                id="zero parts",
            ),
            pytest.param(
                DIAGNOSIS | {"quote": {"items": [{"description": "labour", "amount": "-5.00"}]}},
                "body.quote.items.0.amount",
                id="negative amount",
            ),
        ],
    )
    async def test_malformed_body_is_422_naming_the_field(
        self, api: httpx.AsyncClient, drive: Drive, body: Json, field: str
    ) -> None:
        """The technician's app learns which field is wrong; nothing is recorded."""
        order = await drive("checked_in", out_of_warranty=True)
        problem_body = await refused(
            api, order, "diagnosis", by=order.by("technician"), status=422, json=body
        )
        assert field in problem_body["detail"]


class TestQuoteAuthorize:
    async def test_the_customer_cannot_answer_before_the_supervisor(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("checked_in", out_of_warranty=True)
        response = await api.post(
            f"{order.url}/diagnosis",
            json=DIAGNOSIS | {"quote": QUOTE},
            headers=order.by("technician"),
        )
        assert response.status_code == 200, response.text
        for path in ("quote/approve", "quote/decline"):
            body = await refused(api, order, path, by=order.by("customer"), status=409)
            assert "wait for a supervisor's approval" in body["detail"]
        roles: list[Role] = ["staff", "technician", "customer", "auditor", "admin"]
        statuses = await refused_for_roles(api, order, "quote/authorize", roles)
        assert statuses == all_forbidden(roles)

    async def test_nothing_to_authorize_is_409(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """A quote already authorized (or none at all) waits for no supervisor."""
        order = await drive("diagnosed", out_of_warranty=True)
        body = await refused(api, order, "quote/authorize", by=order.by("supervisor"), status=409)
        assert "no quote waits for a supervisor" in body["detail"]


class TestQuoteApprove:
    @pytest.mark.parametrize("role", ["customer", "staff"])
    async def test_customer_or_staff_by_phone_approves(
        self, api: httpx.AsyncClient, drive: Drive, role: Role
    ) -> None:
        """The quote shows approved; the work may go on."""
        order = await drive("diagnosed", out_of_warranty=True)
        response = await api.post(f"{order.url}/quote/approve", headers=order.by(role))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "on_site")
        assert body["quote"]["status"] == "approved"

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """The technician cannot consent for the customer; auditors and admins change nothing."""
        order = await drive("diagnosed", out_of_warranty=True)
        roles: list[Role] = ["technician", "auditor", "admin"]
        assert await refused_for_roles(api, order, "quote/approve", roles) == all_forbidden(roles)

    async def test_before_the_visit_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """There is nothing to approve before the technician has been."""
        order = await drive("assigned", out_of_warranty=True)
        body = await refused(api, order, "quote/approve", by=order.by("customer"), status=409)
        assert "scheduled" in body["detail"]

    async def test_approving_twice_is_409(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """An approved quote is not waiting for an answer any more."""
        order = await drive("quote_approved", out_of_warranty=True)
        body = await refused(api, order, "quote/approve", by=order.by("customer"), status=409)
        assert "on_site" in body["detail"]


class TestQuoteDecline:
    @pytest.mark.parametrize("role", ["customer", "staff"])
    async def test_declined_quote_closes_with_the_visit_fee(
        self, api: httpx.AsyncClient, drive: Drive, role: Role
    ) -> None:
        """Nothing is repaired: only the visit fee is due and there is no warranty window."""
        order = await drive("diagnosed", out_of_warranty=True)
        response = await api.post(f"{order.url}/quote/decline", headers=order.by(role))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "closed")
        assert body["quote"]["status"] == "declined"
        assert body["charges"]["total"] == str(VISIT_FEE)
        assert "warranty_window" not in body  # none was opened

    async def test_acting_on_the_closed_order_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """After the decline the technician cannot finish the job."""
        order = await drive("diagnosed", out_of_warranty=True)
        declined = await api.post(f"{order.url}/quote/decline", headers=order.by("customer"))
        assert declined.status_code == 200, declined.text
        body = await refused(api, order, "complete", by=order.by("technician"), status=409)
        assert "closed" in body["detail"]

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """The technician cannot decline for the customer."""
        order = await drive("diagnosed", out_of_warranty=True)
        roles: list[Role] = ["technician", "auditor", "admin"]
        assert await refused_for_roles(api, order, "quote/decline", roles) == all_forbidden(roles)

    async def test_without_a_quote_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A free repair has no quote to decline."""
        order = await drive("diagnosed")
        body = await refused(api, order, "quote/decline", by=order.by("customer"), status=409)
        assert "on_site" in body["detail"]

    async def test_declined_extras_on_a_free_order_leave_the_repair_going(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """In warranty the quote holds extras only; declining them, the free repair goes on
        and ends in its warranty window."""
        order = await drive("diagnosed", quote=QUOTE)
        declined = await api.post(f"{order.url}/quote/decline", headers=order.by("customer"))
        assert declined.status_code == 200, declined.text
        assert declined.json()["stage"] == "on_site"
        technician = order.by("technician")
        for path, body in (("service-record", SERVICE_RECORD), ("complete", None)):
            response = await api.post(f"{order.url}/{path}", json=body, headers=technician)
            assert response.status_code == 200, response.text
        accepted = await api.post(
            f"{order.url}/acceptance", json={"accepted": True}, headers=order.by("customer")
        )
        assert accepted.status_code == 200, accepted.text
        read = (await api.get(order.url, headers=order.by("staff"))).json()
        assert read["stage"] == "in_warranty"
        assert read["quote"]["status"] == "declined"
        assert read["charges"]["total"] == "0.00"
        assert read["warranty_window"] is not None


class TestParts:
    async def test_technician_orders_parts_and_the_order_waits(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The order waits for parts and the parts clock runs."""
        order = await drive("diagnosed")
        parts = {"parts": [{"part_no": "CMP-9", "description": "compressor", "qty": 1}]}
        # The whole order, timeline and all, only for a caller who asks for it.
        prefer = {"Prefer": "return=representation"}
        response = await api.post(
            f"{order.url}/parts", json=parts, headers=order.by("technician") | prefer
        )
        assert response.status_code == 200, response.text
        assert response.headers["Preference-Applied"] == "return=representation"
        body = response.json()
        assert body["seq"] == len(body["timeline"])
        assert (body["order_id"], body["stage"]) == (order.order_id, "waiting_parts")
        assert "parts_dispatch" in body["sla"]
        assert body["sla"]["general_repair"]["paused"] is True
        assert "1 x CMP-9" in body["timeline"][-1]["detail"]

    async def test_the_customer_is_told_when_the_parts_are_expected(
        self, api: httpx.AsyncClient, drive: Drive, records_engine: AsyncEngine
    ) -> None:
        order = await drive("diagnosed")
        expected_by = "2099-01-05T10:00:00+08:00"
        parts = {"parts": [{"part_no": "CMP-9", "qty": 1}], "expected_by": expected_by}
        response = await api.post(f"{order.url}/parts", json=parts, headers=order.by("technician"))
        assert response.status_code == 200, response.text

        (row,) = await eventually(
            lambda: messages_sent(records_engine, order.order_id, "parts_awaited"),
            lambda rows: len(rows) == 1,
        )
        assert "2099-01-05 10:00" in row.body

    async def test_parts_expected_in_the_past_are_422(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("diagnosed")
        parts = {"parts": [{"part_no": "CMP-9", "qty": 1}], "expected_by": "2020-01-01T00:00:00Z"}
        body = await refused(api, order, "parts", by=order.by("technician"), status=422, json=parts)
        assert body["detail"] == "body.expected_by: must be in the future"

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Only the technician orders parts."""
        order = await drive("diagnosed")
        roles: list[Role] = ["staff", "supervisor", "customer", "auditor", "admin"]
        parts = {"parts": [{"part_no": "CMP-9", "qty": 1}]}
        assert await refused_for_roles(api, order, "parts", roles, parts) == all_forbidden(roles)

    async def test_while_waiting_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Parts are ordered on site, not while already waiting for them."""
        order = await drive("diagnosed")
        parts = {"parts": [{"part_no": "CMP-9", "qty": 1}]}
        first = await api.post(f"{order.url}/parts", json=parts, headers=order.by("technician"))
        assert first.status_code == 200, first.text
        body = await refused(api, order, "parts", by=order.by("technician"), status=409, json=parts)
        assert "waiting_parts" in body["detail"]

    async def test_zero_quantity_is_422_naming_the_field(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A part is ordered at least once."""
        order = await drive("diagnosed")
        body = await refused(
            api,
            order,
            "parts",
            by=order.by("technician"),
            status=422,
            json={"parts": [{"part_no": "CMP-9", "qty": 0}]},
        )
        assert "body.parts.0.qty" in body["detail"]

    async def test_empty_parts_list_is_422_naming_the_field(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Ordering no parts at all is a malformed request, not a server error."""
        order = await drive("diagnosed")
        body = await refused(
            api, order, "parts", by=order.by("technician"), status=422, json={"parts": []}
        )
        assert "body.parts" in body["detail"]


class TestPartsArrived:
    @pytest.mark.parametrize("role", ["staff", "technician"])
    async def test_parts_arrive_and_the_work_goes_on(
        self, api: httpx.AsyncClient, drive: Drive, role: Role
    ) -> None:
        """Back on site; the parts clock stops and the repair clock runs again."""
        order = await drive("diagnosed")
        parts = {"parts": [{"part_no": "CMP-9", "qty": 1}]}
        waiting = await api.post(f"{order.url}/parts", json=parts, headers=order.by("technician"))
        assert waiting.status_code == 200, waiting.text
        response = await api.post(f"{order.url}/parts/arrived", headers=order.by(role))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "on_site")
        assert body["sla"]["parts_dispatch"]["stopped_at"] is not None
        assert body["sla"]["general_repair"]["paused"] is False

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Customers, auditors and admins do not record deliveries."""
        order = await drive("diagnosed")
        parts = {"parts": [{"part_no": "CMP-9", "qty": 1}]}
        waiting = await api.post(f"{order.url}/parts", json=parts, headers=order.by("technician"))
        assert waiting.status_code == 200, waiting.text
        roles: list[Role] = ["customer", "auditor", "admin"]
        assert await refused_for_roles(api, order, "parts/arrived", roles) == all_forbidden(roles)

    async def test_no_parts_awaited_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Parts cannot arrive when none were ordered."""
        order = await drive("diagnosed")
        body = await refused(api, order, "parts/arrived", by=order.by("staff"), status=409)
        assert "on_site" in body["detail"]


class TestWorkshop:
    async def test_device_goes_to_the_workshop(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """The order is in the workshop and the workshop clock runs."""
        order = await drive("diagnosed")
        response = await api.post(f"{order.url}/workshop", headers=order.by("technician"))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "in_workshop")
        assert body["sla"]["workshop_repair"]["stopped_at"] is None

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Only the technician takes the device away."""
        order = await drive("diagnosed")
        roles: list[Role] = ["staff", "supervisor", "customer", "auditor", "admin"]
        assert await refused_for_roles(api, order, "workshop", roles) == all_forbidden(roles)

    async def test_before_check_in_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The device is taken from site, so not before the technician is there."""
        order = await drive("assigned")
        body = await refused(api, order, "workshop", by=order.by("technician"), status=409)
        assert "scheduled" in body["detail"]


class TestWorkshopReturn:
    async def test_device_comes_back(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Back on site; the workshop clock stops."""
        order = await drive("diagnosed")
        taken = await api.post(f"{order.url}/workshop", headers=order.by("technician"))
        assert taken.status_code == 200, taken.text
        response = await api.post(f"{order.url}/workshop/return", headers=order.by("technician"))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "on_site")
        assert body["sla"]["workshop_repair"]["stopped_at"] is not None

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Only the technician brings the device back."""
        order = await drive("diagnosed")
        taken = await api.post(f"{order.url}/workshop", headers=order.by("technician"))
        assert taken.status_code == 200, taken.text
        roles: list[Role] = ["staff", "supervisor", "customer", "auditor", "admin"]
        statuses = await refused_for_roles(api, order, "workshop/return", roles)
        assert statuses == all_forbidden(roles)

    async def test_not_in_the_workshop_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A device never taken away cannot come back."""
        order = await drive("diagnosed")
        body = await refused(api, order, "workshop/return", by=order.by("technician"), status=409)
        assert "on_site" in body["detail"]


class TestHazard:
    async def test_technician_stops_work_for_a_hazard(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The order is in a safety stop, escalated to a supervisor."""
        order = await drive("checked_in")
        response = await api.post(
            f"{order.url}/hazard", json={"description": "gas smell"}, headers=order.by("technician")
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "safety_stop")
        assert body["hazard"] == "gas smell"
        assert [e["to"] for e in body["escalations"]] == ["supervisor"]

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Only the technician on site reports a hazard."""
        order = await drive("checked_in")
        roles: list[Role] = ["staff", "supervisor", "customer", "auditor", "admin"]
        body = {"description": "gas smell"}
        assert await refused_for_roles(api, order, "hazard", roles, body) == all_forbidden(roles)

    async def test_before_check_in_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A hazard is reported from site."""
        order = await drive("assigned")
        body = await refused(
            api,
            order,
            "hazard",
            by=order.by("technician"),
            status=409,
            json={"description": "gas smell"},
        )
        assert "scheduled" in body["detail"]

    async def test_missing_description_is_422_naming_the_field(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A hazard report says what the danger is."""
        order = await drive("checked_in")
        body = await refused(api, order, "hazard", by=order.by("technician"), status=422, json={})
        assert "body.description" in body["detail"]


class TestHazardClear:
    async def test_supervisor_clears_the_safety_stop(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Staff cannot lift a safety stop; the supervisor can, and the work resumes on site."""
        order = await drive("checked_in")
        stopped = await api.post(
            f"{order.url}/hazard", json={"description": "live wire"}, headers=order.by("technician")
        )
        assert stopped.status_code == 200, stopped.text
        await refused(
            api, order, "hazard/clear", by=order.by("staff"), status=403, json={"note": "ok"}
        )
        response = await api.post(
            f"{order.url}/hazard/clear",
            json={"note": "mains isolated"},
            headers=order.by("supervisor"),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "on_site")
        assert body["hazard"] is None

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Nobody but a supervisor lifts a safety stop."""
        order = await drive("checked_in")
        stopped = await api.post(
            f"{order.url}/hazard", json={"description": "live wire"}, headers=order.by("technician")
        )
        assert stopped.status_code == 200, stopped.text
        roles: list[Role] = ["staff", "technician", "customer", "auditor", "admin"]
        statuses = await refused_for_roles(api, order, "hazard/clear", roles, {"note": "ok"})
        assert statuses == all_forbidden(roles)

    async def test_supervisor_may_cancel_during_a_safety_stop_but_staff_may_not(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A site that cannot be made safe is cancelled by the supervisor."""
        order = await drive("checked_in")
        stopped = await api.post(
            f"{order.url}/hazard",
            json={"description": "cracked wall"},
            headers=order.by("technician"),
        )
        assert stopped.status_code == 200, stopped.text
        body = await refused(
            api, order, "cancel", by=order.by("staff"), status=409, json={"reason": "unsafe"}
        )
        assert "safety_stop" in body["detail"]
        response = await api.post(
            f"{order.url}/cancel", json={"reason": "unsafe"}, headers=order.by("supervisor")
        )
        assert response.status_code == 200, response.text
        assert response.json()["stage"] == "cancelled"

    async def test_without_a_safety_stop_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """There is nothing to clear while the work runs normally."""
        order = await drive("checked_in")
        body = await refused(
            api, order, "hazard/clear", by=order.by("supervisor"), status=409, json={"note": "ok"}
        )
        assert "on_site" in body["detail"]

    async def test_missing_note_is_422_naming_the_field(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Clearing a stop records why the site is safe."""
        order = await drive("checked_in")
        stopped = await api.post(
            f"{order.url}/hazard", json={"description": "live wire"}, headers=order.by("technician")
        )
        assert stopped.status_code == 200, stopped.text
        body = await refused(
            api, order, "hazard/clear", by=order.by("supervisor"), status=422, json={}
        )
        assert "body.note" in body["detail"]


class TestServiceRecord:
    async def test_technician_records_the_repair(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The service record shows on the order."""
        order = await drive("diagnosed")
        response = await api.post(
            f"{order.url}/service-record", json=SERVICE_RECORD, headers=order.by("technician")
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "on_site")
        assert body["service_record"]["repair_item"] == "thermostat"
        assert body["service_record"]["labour_minutes"] == 45

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Only the technician writes the service record."""
        order = await drive("diagnosed")
        roles: list[Role] = ["staff", "supervisor", "customer", "auditor", "admin"]
        statuses = await refused_for_roles(api, order, "service-record", roles, SERVICE_RECORD)
        assert statuses == all_forbidden(roles)

    async def test_before_check_in_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The record is written on site."""
        order = await drive("assigned")
        body = await refused(
            api, order, "service-record", by=order.by("technician"), status=409, json=SERVICE_RECORD
        )
        assert "scheduled" in body["detail"]

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            pytest.param({"photos_before": []}, "body.photos_before", id="no photo before"),
            pytest.param({"labour_minutes": -1}, "body.labour_minutes", id="negative minutes"),
            pytest.param(
                {"parts_replaced": [{"part_no": "TH-220", "qty": 1}]},
                "body.parts_replaced.0.unit_cost",
                id="part without cost",
            ),
        ],
    )
    async def test_malformed_record_is_422_naming_the_field(
        self, api: httpx.AsyncClient, drive: Drive, change: Json, field: str
    ) -> None:
        """An incomplete record is refused, naming what is missing."""
        order = await drive("diagnosed")
        body = await refused(
            api,
            order,
            "service-record",
            by=order.by("technician"),
            status=422,
            json=SERVICE_RECORD | change,
        )
        assert field in body["detail"]


class TestComplete:
    async def test_technician_finishes_the_work(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """The order waits for the customer's acceptance; an in-warranty repair costs nothing."""
        order = await drive("service_record")
        response = await api.post(f"{order.url}/complete", headers=order.by("technician"))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "awaiting_acceptance")
        assert body["sla"]["general_repair"]["stopped_at"] is not None
        assert "charges" not in body  # nothing to charge: they stay as they were
        shown = (await api.get(order.url, headers=order.by("staff"))).json()
        assert shown["charges"]["total"] == "0.00"

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Only the technician declares the work finished."""
        order = await drive("service_record")
        roles: list[Role] = ["staff", "supervisor", "customer", "auditor", "admin"]
        assert await refused_for_roles(api, order, "complete", roles) == all_forbidden(roles)

    async def test_before_check_in_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Work is finished on site."""
        order = await drive("assigned")
        body = await refused(api, order, "complete", by=order.by("technician"), status=409)
        assert "scheduled" in body["detail"]

    async def test_without_service_record_is_409(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The service record comes before the work can be finished."""
        order = await drive("diagnosed")
        body = await refused(api, order, "complete", by=order.by("technician"), status=409)
        assert "on_site" in body["detail"]
        assert "service record" in body["detail"]

    async def test_quote_not_approved_is_409(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Chargeable work cannot be finished before the customer approved the quote."""
        order = await drive("diagnosed", out_of_warranty=True)
        recorded = await api.post(
            f"{order.url}/service-record", json=SERVICE_RECORD, headers=order.by("technician")
        )
        assert recorded.status_code == 200, recorded.text
        body = await refused(api, order, "complete", by=order.by("technician"), status=409)
        assert "on_site" in body["detail"]
        assert "quote" in body["detail"]


# ---- after the work ----------------------------------------------------------------------------


class TestAcceptance:
    @pytest.mark.parametrize("role", ["customer", "staff"])
    async def test_customer_or_staff_by_phone_accepts(
        self, api: httpx.AsyncClient, drive: Drive, role: Role
    ) -> None:
        """Accepted work starts the post-repair warranty window."""
        order = await drive("completed")
        response = await api.post(
            f"{order.url}/acceptance",
            json={"accepted": True, "signature": "sig-42"},
            headers=order.by(role),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "in_warranty")
        assert body["acceptance"]["signature"] == "sig-42"
        assert body["acceptance"]["deemed"] is False
        ends_at = datetime.fromisoformat(body["warranty_window"]["ends_at"])
        assert ends_at - datetime.now(UTC) > timedelta(days=89)

    async def test_rejection_sends_the_order_back_for_rework(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A rejected repair is back on site with the same technician, rework counted."""
        order = await drive("completed")
        response = await api.post(
            f"{order.url}/acceptance",
            json={"accepted": False, "reason": "still warm inside"},
            headers=order.by("customer"),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "on_site")
        assert body["rework_count"] == 1
        assert "technician_id" not in body  # the same technician does the rework
        assert body["service_record"] is None
        again = await api.post(
            f"{order.url}/service-record", json=SERVICE_RECORD, headers=order.by("technician")
        )
        assert again.status_code == 200, again.text

    async def test_rejection_without_reason_is_422(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Rejecting the work needs a reason; the order still waits for the answer."""
        order = await drive("completed")
        body = await refused(
            api,
            order,
            "acceptance",
            by=order.by("customer"),
            status=422,
            json={"accepted": False},
        )
        assert "reason" in body["detail"]

    async def test_missing_answer_is_422_naming_the_field(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """An acceptance says whether the work is accepted."""
        order = await drive("completed")
        body = await refused(
            api, order, "acceptance", by=order.by("customer"), status=422, json={"reason": "hm"}
        )
        assert "body.accepted" in body["detail"]

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """The technician cannot accept their own work."""
        order = await drive("completed")
        roles: list[Role] = ["technician", "auditor", "admin"]
        statuses = await refused_for_roles(api, order, "acceptance", roles, {"accepted": True})
        assert statuses == all_forbidden(roles)

    async def test_before_the_work_is_finished_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """There is nothing to accept while the technician is still at work."""
        order = await drive("service_record")
        body = await refused(
            api, order, "acceptance", by=order.by("customer"), status=409, json={"accepted": True}
        )
        assert "on_site" in body["detail"]


class TestSurvey:
    @pytest.mark.parametrize("role", ["customer", "staff"])
    async def test_customer_or_staff_by_phone_answers(
        self, api: httpx.AsyncClient, drive: Drive, role: Role
    ) -> None:
        """The scores show on the order."""
        order = await drive("accepted")
        response = await api.post(f"{order.url}/survey", json=SURVEY, headers=order.by(role))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["order_id"], body["stage"]) == (order.order_id, "in_warranty")
        assert body["survey"] == SURVEY

    async def test_second_answer_is_409(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """The survey is answered once."""
        order = await drive("accepted")
        first = await api.post(f"{order.url}/survey", json=SURVEY, headers=order.by("customer"))
        assert first.status_code == 200, first.text
        body = await refused(
            api, order, "survey", by=order.by("staff"), status=409, json=SURVEY | {"speed": 1}
        )
        assert "in_warranty" in body["detail"]

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """The technician cannot rate their own visit."""
        order = await drive("accepted")
        roles: list[Role] = ["technician", "auditor", "admin"]
        assert await refused_for_roles(api, order, "survey", roles, SURVEY) == all_forbidden(roles)

    async def test_before_acceptance_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The survey follows accepted work."""
        order = await drive("completed")
        body = await refused(api, order, "survey", by=order.by("customer"), status=409, json=SURVEY)
        assert "awaiting_acceptance" in body["detail"]

    @pytest.mark.parametrize(("field", "score"), [("attitude", 0), ("speed", 6), ("result", -1)])
    async def test_score_outside_one_to_five_is_422(
        self, api: httpx.AsyncClient, drive: Drive, field: str, score: int
    ) -> None:
        """Scores run from 1 to 5, and the error names the score that does not."""
        order = await drive("accepted")
        body = await refused(
            api,
            order,
            "survey",
            by=order.by("customer"),
            status=422,
            json=SURVEY | {field: score},
        )
        assert f"body.{field}" in body["detail"]


class TestWarrantyClaims:
    async def test_customer_claims_and_opens_the_claim_order(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A claim answers 201 with `<order>-W1`, which the customer's own link opens."""
        order = await drive("accepted")
        response = await api.post(
            f"{order.url}/warranty-claims",
            json={"description": "not cooling again"},
            headers=order.by("customer"),
        )
        assert response.status_code == 201, response.text
        claim_id = response.json()["claim_order_id"]
        assert claim_id == f"{order.order_id}-W1"
        claim = await api.get(f"/v1/orders/{claim_id}", headers=order.by("customer"))
        assert claim.status_code == 200, claim.text
        assert claim.json()["priority"] == "high"
        assert claim.json()["claim_of"] == order.order_id
        original = (await api.get(order.url, headers=order.by("customer"))).json()
        assert original["claims"] == [claim_id]

    async def test_staff_claims_for_the_customer(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Staff file claims for the customer by phone; the second one is numbered W2."""
        order = await drive("accepted")
        claim_ids = []
        for _ in range(2):
            response = await api.post(
                f"{order.url}/warranty-claims",
                json={"description": "noisy again"},
                headers=order.by("staff"),
            )
            assert response.status_code == 201, response.text
            claim_ids.append(response.json()["claim_order_id"])
        assert claim_ids == [f"{order.order_id}-W1", f"{order.order_id}-W2"]

    async def test_another_customer_cannot_open_the_claim_order(
        self, api: httpx.AsyncClient, auth: Auth, drive: Drive
    ) -> None:
        """A link for another order does not open this order's claim order."""
        order = await drive("accepted")
        response = await api.post(
            f"{order.url}/warranty-claims",
            json={"description": "not cooling again"},
            headers=order.by("customer"),
        )
        assert response.status_code == 201, response.text
        stranger = await book(api, auth)
        claim = await api.get(
            f"/v1/orders/{response.json()['claim_order_id']}",
            headers={"Authorization": f"Bearer {stranger['customer_token']}"},
        )
        problem(claim, 403)

    async def test_other_roles_are_refused(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """Technicians, auditors and admins cannot open a claim."""
        order = await drive("accepted")
        roles: list[Role] = ["technician", "auditor", "admin"]
        body = {"description": "again"}
        statuses = await refused_for_roles(api, order, "warranty-claims", roles, body)
        assert statuses == all_forbidden(roles)

    async def test_before_acceptance_is_409_naming_the_stage(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Claims are made in the warranty window, after the work was accepted."""
        order = await drive("completed")
        body = await refused(
            api,
            order,
            "warranty-claims",
            by=order.by("customer"),
            status=409,
            json={"description": "again"},
        )
        assert "awaiting_acceptance" in body["detail"]

    async def test_missing_description_is_422_naming_the_field(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A claim says what is wrong again."""
        order = await drive("accepted")
        body = await refused(
            api, order, "warranty-claims", by=order.by("customer"), status=422, json={}
        )
        assert "body.description" in body["detail"]


# ---- across the routes -------------------------------------------------------------------------


TECHNICIAN_ACTIONS = [
    pytest.param("appointment", "assigned", window(), id="appointment"),
    pytest.param("check-in", "assigned", None, id="check-in"),
    pytest.param("diagnosis", "checked_in", DIAGNOSIS, id="diagnosis"),
    pytest.param("parts", "diagnosed", {"parts": [{"part_no": "P-1", "qty": 1}]}, id="parts"),
    pytest.param("workshop", "diagnosed", None, id="workshop"),
    pytest.param("hazard", "diagnosed", {"description": "gas"}, id="hazard"),
    pytest.param("service-record", "diagnosed", SERVICE_RECORD, id="service-record"),
    pytest.param("complete", "service_record", None, id="complete"),
]


class TestAnotherTechnician:
    @pytest.mark.parametrize(("path", "step", "body"), TECHNICIAN_ACTIONS)
    async def test_technician_of_another_order_is_refused(
        self,
        api: httpx.AsyncClient,
        auth: Auth,
        drive: Drive,
        path: str,
        step: Step,
        body: Json | None,
    ) -> None:
        """A technician acts only on orders assigned to them, even when the stage fits."""
        order = await drive(step)
        other = auth("technician", technician_id=await new_technician_id(api, auth))
        await refused(api, order, path, by=other, status=403, json=body)

    async def test_technician_of_another_order_cannot_read_it(
        self, api: httpx.AsyncClient, auth: Auth, drive: Drive
    ) -> None:
        """The assigned technician reads the order; another one gets 403."""
        order = await drive("checked_in")
        mine = await api.get(order.url, headers=order.by("technician"))
        assert mine.status_code == 200, mine.text
        other = await api.get(
            order.url, headers=auth("technician", technician_id=await new_technician_id(api, auth))
        )
        problem(other, 403)


CUSTOMER_ACTIONS = [
    pytest.param("reschedule", "assigned", window(days=3), id="reschedule"),
    pytest.param("cancel", "assigned", {"reason": "not needed"}, id="cancel"),
    pytest.param("quote/approve", "diagnosed", None, id="quote/approve"),
    pytest.param("quote/decline", "diagnosed", None, id="quote/decline"),
    pytest.param("acceptance", "completed", {"accepted": True}, id="acceptance"),
    pytest.param("survey", "accepted", SURVEY, id="survey"),
    pytest.param("warranty-claims", "accepted", {"description": "again"}, id="warranty-claims"),
]


class TestAnotherCustomer:
    @pytest.mark.parametrize(("path", "step", "body"), CUSTOMER_ACTIONS)
    async def test_customer_link_of_another_order_is_refused(
        self,
        api: httpx.AsyncClient,
        auth: Auth,
        drive: Drive,
        path: str,
        step: Step,
        body: Json | None,
    ) -> None:
        """A customer's link acts only on its own order, even when the stage fits."""
        order = await drive(step, out_of_warranty=True)
        stranger = await book(api, auth)
        headers = {"Authorization": f"Bearer {stranger['customer_token']}"}
        await refused(api, order, path, by=headers, status=403, json=body)

    async def test_customer_link_of_another_order_cannot_read_it(
        self, api: httpx.AsyncClient, auth: Auth, drive: Drive
    ) -> None:
        """Another customer's link gets 403 and none of this customer's details."""
        order = await drive("checked_in")
        stranger = await book(api, auth)
        response = await api.get(
            order.url, headers={"Authorization": f"Bearer {stranger['customer_token']}"}
        )
        body = problem(response, 403)
        assert "Li Wei" not in response.text
        assert "customer" not in body


class TestCharges:
    async def test_out_of_warranty_total_is_labour_parts_and_visit_fee_to_the_cent(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """The customer pays exactly the approved quote: two labour items, a part twice, the fee."""
        quote = {
            "items": [
                {"description": "replace start relay", "amount": "85.00"},
                {"description": "recharge refrigerant", "amount": "120.50"},
            ],
            "parts": [
                {"part_no": "RL-3", "description": "start relay", "qty": 2, "unit_cost": "17.35"}
            ],
        }
        order = await drive("completed", out_of_warranty=True, quote=quote)
        expected = (
            Decimal("85.00") + Decimal("120.50") + 2 * Decimal("17.35") + VISIT_FEE
        ).quantize(CENT)
        charges = order.answer["charges"]
        assert charges["total"] == str(expected) == "290.20"
        assert [(line["kind"], line["amount"]) for line in charges["lines"]] == [
            ("labour", "85.00"),
            ("labour", "120.50"),
            ("part", "34.70"),
            ("visit_fee", "50.00"),
        ]
        accepted = await api.post(
            f"{order.url}/acceptance", json={"accepted": True}, headers=order.by("customer")
        )
        assert accepted.status_code == 200, accepted.text
        read = (await api.get(order.url, headers=order.by("customer"))).json()
        assert read["charges"]["total"] == str(expected)
        assert read["quote"]["total"] == str(expected)

    async def test_amounts_given_without_cents_are_shown_to_the_cent(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """A labour price typed as "80" or "35.5" reads "80.00" and "35.50" on the bill."""
        quote = {
            "items": [
                {"description": "call-out repair", "amount": "80"},
                {"description": "clean condenser", "amount": "35.5"},
            ]
        }
        order = await drive("completed", out_of_warranty=True, quote=quote)
        charges = order.answer["charges"]
        assert [line["amount"] for line in charges["lines"]] == ["80.00", "35.50", "50.00"]
        shown = (await api.get(order.url, headers=order.by("staff"))).json()
        assert [item["amount"] for item in shown["quote"]["items"]] == ["80.00", "35.50"]
        assert charges["total"] == str(Decimal("80") + Decimal("35.5") + VISIT_FEE) == "165.50"
