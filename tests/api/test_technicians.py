import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from api.main import create_app
from core.settings import Settings
from tests.api.client import Auth, serve
from tests.factories import create_technician_json

NEXT_YEAR = (datetime.now(UTC) + timedelta(days=365)).date().isoformat()


async def register(api: httpx.AsyncClient, auth: Auth, **overrides: Any) -> dict[str, Any]:
    response = await api.post(
        "/v1/technicians", json=create_technician_json(**overrides), headers=auth("admin")
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


class TestCommit:
    async def test_a_write_the_database_refuses_at_commit_is_not_acknowledged(
        self, settings: Settings, auth: Auth
    ) -> None:
        """The session commits before the answer goes out: a database lost at that moment is a
        503 to retry, not a 201 for a technician who was never stored."""
        app = create_app(settings)
        async for http in serve(app):

            def database_gone(
                session: Session, api_engine: Engine = app.state.engine.sync_engine
            ) -> None:
                if session.bind is api_engine:  # the API's sessions only, not the worker's
                    raise OperationalError("COMMIT", {}, ConnectionError("connection closed"))

            technician = create_technician_json()
            event.listen(Session, "before_commit", database_gone)
            try:
                response = await http.post(
                    "/v1/technicians", json=technician, headers=auth("admin")
                )
            finally:
                event.remove(Session, "before_commit", database_gone)
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]
            found = await http.get(f"/v1/technicians/{technician['id']}", headers=auth("admin"))
            assert found.status_code == 404


class TestSchedule:
    async def test_shifts_days_off_and_on_call_are_kept_and_changed(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        schedule = {
            "shifts": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00"},
                {"days": ["sat"], "start": "22:00", "end": "06:00"},
            ],
            "days_off": ["2027-01-01"],
            "on_call": [{"start": "2027-01-02T20:00:00+08:00", "end": "2027-01-03T08:00:00+08:00"}],
        }
        technician = await register(api, auth, **schedule)
        assert technician["shifts"] == schedule["shifts"]
        assert technician["days_off"] == ["2027-01-01"]
        assert len(technician["on_call"]) == 1
        changed = await api.patch(
            f"/v1/technicians/{technician['id']}", json={"days_off": []}, headers=auth("admin")
        )
        assert changed.status_code == 200, changed.text
        assert (changed.json()["days_off"], changed.json()["shifts"]) == ([], schedule["shifts"])

    async def test_without_shifts_none_are_shown(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """No shifts: the policy's business hours apply."""
        technician = await register(api, auth, shifts=[])
        assert (technician["shifts"], technician["days_off"], technician["on_call"]) == ([], [], [])


class TestRegisterTechnician:
    async def test_admin_registers_a_technician(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """The registry answers with the technician, active, with no open orders yet."""
        technician = await register(api, auth)
        assert technician["status"] == "active"
        assert technician["open_orders"] == 0
        assert technician["skills"] == ["refrigerator", "gas_stove"]

    async def test_id_is_minted_when_none_is_given(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        """Without an id the registry gives one."""
        technician = await register(api, auth, id=None)
        assert technician["id"].startswith("T")

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("certificates", [{"type": "wizard", "number": "W-1", "valid_until": NEXT_YEAR}]),
            ("certificates", [{"type": "gas", "number": "G-1", "valid_until": "2020-01-01"}]),
            ("skills", ["time_machine"]),
            ("skills", []),
            ("shifts", [{"days": [], "start": "09:00", "end": "18:00"}]),
            ("shifts", [{"days": ["mon"], "start": "9am", "end": "18:00"}]),
            (
                "on_call",
                [{"start": "2027-01-02T08:00:00+08:00", "end": "2027-01-02T06:00:00+08:00"}],
            ),
            ("days_off", ["someday"]),
        ],
    )
    async def test_bad_input_is_422(
        self, api: httpx.AsyncClient, auth: Auth, field: str, value: Any
    ) -> None:
        """An unknown certificate type or category, or an expired new certificate, is refused."""
        response = await api.post(
            "/v1/technicians", json=create_technician_json(**{field: value}), headers=auth("admin")
        )
        assert response.status_code == 422
        assert field in response.json()["detail"]

    async def test_duplicate_id_is_409(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """The same id cannot be registered twice."""
        technician = await register(api, auth)
        response = await api.post(
            "/v1/technicians",
            json=create_technician_json(id=technician["id"]),
            headers=auth("admin"),
        )
        assert response.status_code == 409

    async def test_only_admin_registers(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """Staff read the registry but do not change it."""
        response = await api.post(
            "/v1/technicians", json=create_technician_json(), headers=auth("staff")
        )
        assert response.status_code == 403


class TestReadTechnicians:
    async def test_auditor_reads_without_phone(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """An auditor sees the registry entry but not the phone number."""
        technician = await register(api, auth)
        response = await api.get(f"/v1/technicians/{technician['id']}", headers=auth("auditor"))
        assert response.status_code == 200
        assert response.json()["phone"] is None
        staff_view = await api.get(f"/v1/technicians/{technician['id']}", headers=auth("staff"))
        assert staff_view.json()["phone"] == "+86 139 0000 1111"

    async def test_unknown_technician_is_404(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """An id not in the registry is a 404."""
        response = await api.get("/v1/technicians/T-NOBODY", headers=auth("staff"))
        assert response.status_code == 404

    async def test_technician_may_not_list(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """The registry is for the office, not the field."""
        response = await api.get("/v1/technicians", headers=auth("technician", technician_id="T1"))
        assert response.status_code == 403

    async def test_list_pages_without_gaps(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """Paging through the registry returns every technician once."""
        region = f"r-{uuid.uuid4().hex[:6]}"
        registered = {(await register(api, auth, regions=[region]))["id"] for _ in range(5)}
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"region": region, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await api.get("/v1/technicians", params=params, headers=auth("staff"))).json()
            seen += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(registered)


class TestUpdateTechnician:
    async def test_admin_suspends(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """A suspended technician shows as suspended."""
        technician = await register(api, auth)
        response = await api.patch(
            f"/v1/technicians/{technician['id']}",
            json={"status": "suspended"},
            headers=auth("admin"),
        )
        assert response.status_code == 200
        assert response.json()["status"] == "suspended"

    async def test_unknown_status_is_422(self, api: httpx.AsyncClient, auth: Auth) -> None:
        """Only active and suspended exist."""
        technician = await register(api, auth)
        response = await api.patch(
            f"/v1/technicians/{technician['id']}", json={"status": "retired"}, headers=auth("admin")
        )
        assert response.status_code == 422
