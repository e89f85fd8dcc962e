"""GET /v1/price-list: the visit fee and each category's labour items, from the policy file."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.main import create_app
from core.settings import Settings
from tests.api.client import AUTH_SECRET, Auth, serve

POLICY = """
[charges]
currency = "CNY"
visit_fee = "60.00"
[charges.labour]
replace_fuse = "40.00"
replace_compressor = "300.00"
[charges.labour_by_category.air_conditioner]
replace_compressor = "450.00"
recharge_refrigerant = "180.00"
"""


@pytest.fixture
async def priced_api(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The API with a policy file that has a price list."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    priced = Settings(
        temporal_address=settings.temporal_address,
        task_queue=settings.task_queue,
        database_url=settings.database_url,
        auth_secret=AUTH_SECRET,
        policy_file=policy,
    )
    async for client in serve(create_app(priced)):
        yield client


def labour(body: dict[str, Any], category: str) -> dict[str, str]:
    (entry,) = [c for c in body["categories"] if c["category"] == category]
    return {line["item"]: line["price"] for line in entry["labour"]}


class TestPriceList:
    @pytest.mark.parametrize("role", ["staff", "supervisor", "technician", "customer"])
    async def test_each_category_has_the_common_items_and_its_own(
        self, priced_api: httpx.AsyncClient, auth: Auth, role: str
    ) -> None:
        answer = await priced_api.get(
            "/v1/price-list", headers=auth(role, technician_id="T-1", order_id="RF1")
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["currency"], body["visit_fee"]) == ("CNY", "60.00")
        assert labour(body, "refrigerator") == {
            "replace_compressor": "300.00",
            "replace_fuse": "40.00",
        }
        # The category's own price wins over the common one.
        assert labour(body, "air_conditioner") == {
            "recharge_refrigerant": "180.00",
            "replace_compressor": "450.00",
            "replace_fuse": "40.00",
        }

    async def test_without_a_price_list_only_the_visit_fee(
        self, api: httpx.AsyncClient, auth: Auth
    ) -> None:
        body = (await api.get("/v1/price-list", headers=auth("customer", order_id="RF1"))).json()
        assert body["visit_fee"] == "50.00"
        assert all(entry["labour"] == [] for entry in body["categories"])

    @pytest.mark.parametrize("role", ["auditor", "admin"])
    async def test_other_roles_are_refused(
        self, api: httpx.AsyncClient, auth: Auth, role: str
    ) -> None:
        assert (await api.get("/v1/price-list", headers=auth(role))).status_code == 403
        assert (await api.get("/v1/price-list")).status_code == 401
