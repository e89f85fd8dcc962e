"""GET /v1/reports/kpis through the real API: an order driven through its lifecycle shows in the
figures, the CSV is the same report, and bad queries are refused with the reason."""

import csv
import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.kpis import DEFINITIONS, KpiGroup
from tests.api.client import Auth
from tests.api.drive import Drive, problem
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
KPIS = "/v1/reports/kpis"


async def report(api: httpx.AsyncClient, auth: Auth, **query: str) -> dict[str, Any]:
    response = await api.get(KPIS, params=query, headers=auth("auditor"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestKpiReport:
    async def test_an_accepted_order_shows_in_its_technicians_figures(
        self, api: httpx.AsyncClient, auth: Auth, drive: Drive
    ) -> None:
        """One order, assigned, checked in, completed and accepted by the customer: the
        technician's figures count one accepted order, fixed the first time, with response,
        arrival and repair times; the performance route says the same."""
        order = await drive("accepted")
        query = {"technician_id": order.technician_id}

        def settled(body: dict[str, Any]) -> bool:
            return bool(body["groups"] and body["groups"][0]["accepted"] == 1)

        body = await eventually(lambda: report(api, auth, **query), settled)
        (group,) = body["groups"]
        assert group["key"] is None
        assert (group["orders"], group["open"], group["cancelled"]) == (1, 0, 0)
        assert group["first_response_hours"]["count"] == 1
        assert group["arrival_hours"]["count"] == 1
        assert group["first_response_hours"]["p80"] <= group["arrival_hours"]["p80"]
        assert group["first_time_fix_rate"] == {"value": 1.0, "numerator": 1, "denominator": 1}
        assert group["rework_rate"]["value"] == 0.0
        assert group["completion_rate"]["value"] == 1.0
        assert group["completion_rate"]["met"] is True
        # A minute-long repair is within every default target.
        assert group["mttr_hours"]["met"] is True
        assert group["resolution_hours"]["met"] is True
        assert group["mttr_hours_without_deemed"]["count"] == 1
        assert group["response_within_sla"] == {
            "value": 1.0,
            "numerator": 1,
            "denominator": 1,
            "target": 0.8,
            "met": True,
        }
        assert group["satisfaction"]["quality"]["responses"] == 0
        assert group["satisfaction"]["quality"]["met"] is None
        assert body["targets"]["mttr_hours"] == 48

        by_priority = await report(api, auth, group_by="priority", **query)
        assert [g["key"] for g in by_priority["groups"]] == ["normal"]

        performance = await api.get(
            f"/v1/technicians/{order.technician_id}/performance", headers=auth("supervisor")
        )
        assert performance.status_code == 200, performance.text
        assert performance.json()["figures"] == group
        assert performance.json()["completed"] == 1

    async def test_csv_is_the_same_report(
        self, api: httpx.AsyncClient, auth: Auth, drive: Drive
    ) -> None:
        order = await drive("checked_in")
        query = {"technician_id": order.technician_id, "group_by": "category"}

        def arrived(body: dict[str, Any]) -> bool:
            return bool(body["groups"] and body["groups"][0]["arrival_hours"]["count"] == 1)

        body = await eventually(lambda: report(api, auth, **query), arrived)
        answer = await api.get(KPIS, params=query, headers=auth("staff") | {"Accept": "text/csv"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/csv")
        (row,) = list(csv.DictReader(io.StringIO(answer.text)))
        (group,) = body["groups"]
        assert row["key"] == group["key"] == "refrigerator"
        assert int(row["orders"]) == group["orders"] == 1
        assert float(row["arrival_hours.p80"]) == group["arrival_hours"]["p80"]
        assert row["completion_rate.value"] == ""  # nothing ended yet: no figure
        assert row["sla_breaches.response.normal"] == "0"

        empty = await api.get(
            KPIS,
            params={"technician_id": "T-NOBODY-HERE", "group_by": "day"},
            headers=auth("staff") | {"Accept": "text/csv"},
        )
        assert empty.status_code == 200
        header, *rows = empty.text.splitlines()
        assert rows == []
        assert header.split(",")[:3] == ["key", "orders", "open"]

    @pytest.mark.parametrize("role", ["technician", "customer", "admin"])
    async def test_other_roles_are_refused(
        self, api: httpx.AsyncClient, auth: Auth, role: str
    ) -> None:
        response = await api.get(KPIS, headers=auth(role, technician_id="T-1", order_id="RF1"))
        assert "may not" in problem(response, 403)["detail"]
        assert problem(await api.get(KPIS), 401)

    @pytest.mark.parametrize(
        ("query", "says"),
        [
            ({"group_by": "year"}, "group_by"),
            ({"priority": "urgent"}, "priority"),
            ({"from": "2026-12-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "query.to"),
            ({"from": "yesterday"}, "from"),
            ({"colour": "red"}, "colour"),
        ],
    )
    async def test_bad_query_is_422_naming_it(
        self, api: httpx.AsyncClient, auth: Auth, query: dict[str, str], says: str
    ) -> None:
        response = await api.get(KPIS, params=query, headers=auth("staff"))
        assert says in str(problem(response, 422))


class TestDefinitions:
    async def test_every_figure_is_defined_in_the_openapi_description(
        self, api: httpx.AsyncClient
    ) -> None:
        schema = (await api.get("/openapi.json")).json()
        described = schema["paths"][KPIS]["get"]["description"]
        group = schema["components"]["schemas"]["KpiGroup"]["properties"]
        for name, definition in DEFINITIONS.items():
            assert f"`{name}`" in described
            assert definition in str(group[name])

    def test_every_figure_is_in_the_readme_table_as_defined(self) -> None:
        readme = (ROOT / "README.md").read_text()
        rows = dict(re.findall(r"^\| `(\w+)` \| (.*) \|$", readme, flags=re.MULTILINE))
        figures = set(KpiGroup.model_fields) - {"key"}
        assert set(DEFINITIONS) == figures
        for name in figures:
            assert rows.get(name) == DEFINITIONS[name], f"the README's {name} differs"
