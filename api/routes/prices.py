"""The price list: what a visit and each labour item cost, per category, from the policy."""

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from api.deps import SettingsDep, role
from api.errors import problems
from models.catalog import Category
from models.order import Actor, Role

router = APIRouter(prefix="/v1/price-list", tags=["price list"])


class LabourItem(BaseModel):
    item: str
    price: Decimal


class CategoryPrices(BaseModel):
    category: Category
    labour: list[LabourItem]


class PriceList(BaseModel):
    currency: str
    visit_fee: Decimal
    categories: list[CategoryPrices]


@router.get("", responses=problems(401, 403))
async def price_list(
    _: Annotated[
        Actor,
        Depends(role(Role.STAFF, Role.SUPERVISOR, Role.TECHNICIAN, Role.CUSTOMER)),
    ],
    settings: SettingsDep,
) -> PriceList:
    """The visit fee (charged on an out-of-warranty visit) and, per category, the labour items
    a quote takes its prices from (policy `[charges.labour]` and
    `[charges.labour_by_category.<category>]`); a quote line that names an item without an
    amount takes its price from here."""
    charges = settings.policy.charges
    return PriceList(
        currency=charges.currency,
        visit_fee=charges.visit_fee,
        categories=[
            CategoryPrices(
                category=category,
                labour=[
                    LabourItem(item=item, price=price)
                    for item, price in sorted(charges.labour_for(category).items())
                ],
            )
            for category in Category
        ],
    )
