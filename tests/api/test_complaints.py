"""Complaints through the HTTP API, against a real dev server, worker and records store: filing
one on an order, who may work it at which tier, the follow-up call, and the lists."""

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.client import Auth
from tests.api.drive import COMPLAINT, Drive, Driven, Json, act, messages_sent, problem, refused
from tests.waiting import eventually


async def file(api: httpx.AsyncClient, order: Driven, *, by: str = "customer") -> str:
    response = await api.post(
        f"{order.url}/complaints",
        json=COMPLAINT,
        headers=order.by(by),  # type: ignore[arg-type]
    )
    assert response.status_code == 201, response.text
    complaint_id: str = response.json()["complaint_id"]
    return complaint_id


async def read(api: httpx.AsyncClient, complaint_id: str, headers: dict[str, str]) -> Json:
    response = await api.get(f"/v1/complaints/{complaint_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def listed(api: httpx.AsyncClient, auth: Auth, **filters: Any) -> list[Json]:
    """Every complaint the list gives for these filters, following the cursor to the end."""
    items: list[Json] = []
    cursor = None
    while True:
        params = filters | ({"cursor": cursor} if cursor else {})
        response = await api.get("/v1/complaints", params=params, headers=auth("supervisor"))
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


class TestFiling:
    async def test_customer_files_and_the_order_shows_it(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("checked_in")
        complaint_id = await file(api, order)
        assert complaint_id == f"{order.order_id}-C1"

        shown = (await api.get(order.url, headers=order.by("staff"))).json()
        complaint = await read(api, complaint_id, order.by("customer"))
        assert shown["complaints"] == [
            {
                "complaint_id": complaint_id,
                "state": "open",
                "tier": 1,
                "filed_at": complaint["filed_at"],
            }
        ]
        assert shown["stage"] == "on_site"
        assert complaint["order_id"] == order.order_id
        assert (complaint["state"], complaint["tier"]) == ("open", 1)
        assert complaint["concerns_work"] is True
        assert complaint["technician_id"] == order.technician_id
        assert complaint["overdue"] is False
        assert complaint["deadlines"]["first_reply"] < complaint["deadlines"]["resolution"]

    async def test_the_same_idempotency_key_files_once(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("assigned")
        headers = order.by("customer") | {"Idempotency-Key": "complaint-call-1"}
        answers = [
            await api.post(f"{order.url}/complaints", json=COMPLAINT, headers=headers)
            for _ in range(2)
        ]
        assert [a.status_code for a in answers] == [201, 201]
        assert {a.json()["complaint_id"] for a in answers} == {f"{order.order_id}-C1"}
        shown = (await api.get(order.url, headers=order.by("staff"))).json()
        assert [c["complaint_id"] for c in shown["complaints"]] == [f"{order.order_id}-C1"]

    async def test_who_may_file(self, api: httpx.AsyncClient, drive: Drive) -> None:
        order = await drive("assigned")
        for role in ("technician", "auditor", "admin"):
            await refused(api, order, "complaints", by=order.by(role), status=403, json=COMPLAINT)
        assert await file(api, order, by="staff") == f"{order.order_id}-C1"

    async def test_malformed_complaint_is_422_and_files_nothing(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        order = await drive("assigned")
        body = refused(
            api,
            order,
            "complaints",
            by=order.by("customer"),
            status=422,
            json={"category": "attitude", "description": "rude"},
        )
        assert "concerns_work" in (await body)["detail"]
        shown = (await api.get(order.url, headers=order.by("staff"))).json()
        assert shown["complaints"] == []

    async def test_category_outside_the_list_is_422(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Causes are counted, so the category is one of the fixed list."""
        order = await drive("assigned")
        body = await refused(
            api,
            order,
            "complaints",
            by=order.by("customer"),
            status=422,
            json=COMPLAINT | {"category": "billing"},
        )
        assert "category" in body["detail"]
        assert "privacy" in body["detail"]
        shown = (await api.get(order.url, headers=order.by("staff"))).json()
        assert shown["complaints"] == []

    async def test_filing_tells_tier_1_staff_at_once(
        self,
        api: httpx.AsyncClient,
        drive: Drive,
        records_engine: AsyncEngine,
    ) -> None:
        """Staff hear of a new complaint when it is filed, not when its first deadline passes."""
        order = await drive("assigned")
        complaint_id = await file(api, order)

        (sent,) = await eventually(
            lambda: messages_sent(records_engine, order.order_id, "complaint_filed"), bool
        )
        assert sent.recipient == "staff"
        assert complaint_id in sent.body
        assert "attitude" in sent.body
        assert sent.status == "sent"

    async def test_a_cancelled_order_takes_a_complaint_of_its_own(
        self, api: httpx.AsyncClient, drive: Drive, auth: Auth, records_engine: AsyncEngine
    ) -> None:
        """The order stays cancelled and unchanged; the complaint runs, records itself and
        tells staff at once. A retry with the same Idempotency-Key files it once."""
        order = await drive("booked")
        cancelled = await api.post(
            f"{order.url}/cancel", json={"reason": "fixed it myself"}, headers=order.by("staff")
        )
        assert cancelled.status_code == 200, cancelled.text
        before = (await api.get(order.url, headers=order.by("staff"))).json()
        key = {"Idempotency-Key": "complaint-after-cancel"}
        answers = [
            await api.post(
                f"{order.url}/complaints", json=COMPLAINT, headers=order.by("customer") | key
            )
            for _ in range(2)
        ]
        assert [a.status_code for a in answers] == [201, 201], answers[0].text
        complaint_id = answers[0].json()["complaint_id"]
        assert answers[1].json()["complaint_id"] == complaint_id == f"{order.order_id}-C1"

        complaint = await read(api, complaint_id, order.by("customer"))
        assert (complaint["state"], complaint["tier"]) == ("open", 1)
        await eventually(
            lambda: listed(api, auth, state="open"),
            lambda items: complaint_id in [item["complaint_id"] for item in items],
        )

        (sent,) = await eventually(
            lambda: messages_sent(records_engine, order.order_id, "complaint_filed"), bool
        )
        assert complaint_id in sent.body
        after = (await api.get(order.url, headers=order.by("staff"))).json()
        assert (after["stage"], after["timeline"]) == ("cancelled", before["timeline"])

    async def test_unknown_order_is_404(self, api: httpx.AsyncClient, auth: Auth) -> None:
        response = await api.post(
            "/v1/orders/RF991231-ZZZZZZ/complaints", json=COMPLAINT, headers=auth("staff")
        )
        problem(response, 404)


class TestWorking:
    async def test_acknowledging_twice_is_409(self, api: httpx.AsyncClient, drive: Drive) -> None:
        order = await drive("assigned")
        complaint_id = await file(api, order)
        first = await act(api, complaint_id, "acknowledge", order.by("staff"))
        assert first.status_code == 200, first.text
        assert first.json()["state"] == "acknowledged"
        again = problem(await act(api, complaint_id, "acknowledge", order.by("staff")), 409)
        assert "acknowledged" in again["detail"]
        assert (await read(api, complaint_id, order.by("staff")))["timeline"] == first.json()[
            "timeline"
        ]

    async def test_unsatisfied_customer_sends_it_to_a_supervisor(
        self, api: httpx.AsyncClient, drive: Drive
    ) -> None:
        """Resolved with compensation, the customer is not satisfied: tier 2, where staff may
        not acknowledge it (403) and a supervisor does; satisfied at last, it closes."""
        order = await drive("assigned")
        complaint_id = await file(api, order)
        resolved = await act(
            api,
            complaint_id,
            "resolve",
            order.by("staff"),
            resolution="apologised and cleaned up",
            compensation="88.50",
        )
        assert resolved.status_code == 200, resolved.text
        assert (resolved.json()["state"], resolved.json()["compensation"]) == ("resolved", "88.50")

        reopened = await act(api, complaint_id, "follow-up", order.by("customer"), satisfied=False)
        assert reopened.status_code == 200, reopened.text
        assert (reopened.json()["state"], reopened.json()["tier"]) == ("open", 2)

        problem(await act(api, complaint_id, "acknowledge", order.by("staff")), 403)
        assert (await read(api, complaint_id, order.by("staff")))["state"] == "open"
        taken = await act(api, complaint_id, "acknowledge", order.by("supervisor"))
        assert taken.status_code == 200, taken.text
        assert (taken.json()["state"], taken.json()["tier"]) == ("acknowledged", 2)

        resolved = await act(
            api, complaint_id, "resolve", order.by("supervisor"), resolution="replaced the shelf"
        )
        assert resolved.status_code == 200, resolved.text
        closed = await act(api, complaint_id, "follow-up", order.by("staff"), satisfied=True)
        assert closed.status_code == 200, closed.text
        assert closed.json()["state"] == "closed"
        shown = await eventually(
            lambda: api.get(order.url, headers=order.by("staff")),
            lambda response: response.json()["complaints"][0]["state"] == "closed",
        )
        [summary] = shown.json()["complaints"]
        assert (summary["complaint_id"], summary["state"], summary["tier"]) == (
            complaint_id,
            "closed",
            2,
        )
        after = problem(await act(api, complaint_id, "acknowledge", order.by("supervisor")), 409)
        assert "closed" in after["detail"]

    async def test_follow_up_needs_a_resolution(self, api: httpx.AsyncClient, drive: Drive) -> None:
        order = await drive("assigned")
        complaint_id = await file(api, order)
        body = problem(
            await act(api, complaint_id, "follow-up", order.by("customer"), satisfied=True), 409
        )
        assert "resolved" in body["detail"]

    async def test_roles_and_bodies(self, api: httpx.AsyncClient, drive: Drive, auth: Auth) -> None:
        order = await drive("assigned")
        complaint_id = await file(api, order)
        for role in ("technician", "auditor", "customer"):
            problem(await act(api, complaint_id, "acknowledge", order.by(role)), 403)
        problem(await act(api, complaint_id, "resolve", order.by("staff")), 422)
        problem(
            await act(
                api, complaint_id, "resolve", order.by("staff"), resolution="x", compensation="-1"
            ),
            422,
        )
        other = {"Authorization": auth("customer", order_id="RF991231-ZZZZZZ")["Authorization"]}
        problem(await api.get(f"/v1/complaints/{complaint_id}", headers=other), 403)
        problem(
            await api.get(f"/v1/complaints/{complaint_id}", headers=order.by("technician")), 403
        )
        problem(await api.get("/v1/complaints/RF991231-ZZZZZZ-C1", headers=auth("staff")), 404)
        problem(await api.get("/v1/complaints/not-a-complaint", headers=auth("staff")), 404)
        assert (await read(api, complaint_id, order.by("auditor")))["state"] == "open"


class TestLists:
    async def test_filters_and_paging(
        self, api: httpx.AsyncClient, drive: Drive, auth: Auth
    ) -> None:
        order = await drive("assigned")
        ids = [await file(api, order) for _ in range(3)]
        acknowledged = await act(api, ids[1], "acknowledge", order.by("staff"))
        assert acknowledged.status_code == 200

        def mine(items: list[Json]) -> list[Json]:
            return [item for item in items if item["order_id"] == order.order_id]

        async def all_mine() -> list[Json]:
            return mine(await listed(api, auth, limit=1))

        everything = await eventually(
            all_mine,
            lambda items: (
                [(i["complaint_id"], i["state"]) for i in items]
                == [(ids[0], "open"), (ids[1], "acknowledged"), (ids[2], "open")]
            ),
        )
        assert [i["complaint_id"] for i in everything] == ids
        assert all(item["tier"] == 1 and item["overdue"] is False for item in everything)
        assert [i["complaint_id"] for i in mine(await listed(api, auth, state="open"))] == [
            ids[0],
            ids[2],
        ]
        assert mine(await listed(api, auth, tier=2)) == []
        assert mine(await listed(api, auth, overdue=True)) == []
        assert len(mine(await listed(api, auth, overdue=False))) == 3

    async def test_list_refuses_bad_input_and_other_roles(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        problem(await api.get("/v1/complaints?cursor=garbage", headers=auth("staff")), 422)
        problem(await api.get("/v1/complaints?tier=4", headers=auth("staff")), 422)
        problem(await api.get("/v1/complaints?state=lost", headers=auth("staff")), 422)
        for role, claims in (
            ("technician", {"technician_id": "T-1"}),
            ("customer", {"order_id": "RF991231-ZZZZZZ"}),
            ("admin", {}),
        ):
            problem(await api.get("/v1/complaints", headers=auth(role, **claims)), 403)


class TestAgainstTheTechnician:
    async def test_complaint_about_the_work_counts_against_the_technician(
        self, api: httpx.AsyncClient, drive: Drive, auth: Auth
    ) -> None:
        order = await drive("assigned")
        await file(api, order)
        not_work = await api.post(
            f"{order.url}/complaints",
            json=COMPLAINT | {"concerns_work": False, "category": "price"},
            headers=order.by("customer"),
        )
        assert not_work.status_code == 201

        # Both are in the records store before the figures are read.
        both = await eventually(
            lambda: listed(api, auth),
            lambda items: sum(i["order_id"] == order.order_id for i in items) == 2,
        )
        assert sum(i["order_id"] == order.order_id for i in both) == 2
        response = await api.get(
            f"/v1/technicians/{order.technician_id}/performance", headers=auth("staff")
        )
        assert response.status_code == 200, response.text
        assert response.json()["complaints_about_work"] == 1
