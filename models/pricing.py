"""Money: what a quote costs and what the customer pays, from the order's copy of the policy.

Pure code (no I/O, no clock): the workflow runs it, and a replay runs it again alike.
"""

from decimal import Decimal

from models.catalog import Category
from models.order import ChargeLine, Charges, Order, PricedItem, Quote, QuoteRequest, QuoteStatus
from models.policy import Policy


def visit_fee(policy: Policy) -> ChargeLine:
    return ChargeLine(kind="visit_fee", description="visit fee", amount=policy.charges.visit_fee)


def price(request: QuoteRequest, policy: Policy, category: Category, *, chargeable: bool) -> Quote:
    """Labour by item (amount given or from the category's price list), parts at cost, the
    visit fee."""
    labour = policy.charges.labour_for(category)
    return Quote(
        items=tuple(
            PricedItem(
                description=item.description,
                amount=item.amount if item.amount is not None else labour[item.description],
            )
            for item in request.items
        ),
        parts=request.parts,
        visit_fee=policy.charges.visit_fee if chargeable else None,
    )


def unpriced_items(request: QuoteRequest, policy: Policy, category: Category) -> list[str]:
    """Items that give no amount and are not on the category's price list either."""
    labour = policy.charges.labour_for(category)
    return [
        item.description
        for item in request.items
        if item.amount is None and item.description not in labour
    ]


def off_list_items(request: QuoteRequest, policy: Policy, category: Category) -> list[str]:
    """Labour items whose amount the category's price list does not give: not on it, or at
    another price. A supervisor approves them before the customer sees the quote."""
    labour = policy.charges.labour_for(category)
    return [
        item.description
        for item in request.items
        if item.amount is not None and labour.get(item.description) != item.amount
    ]


def settled_charges(order: Order) -> Charges:
    """The approved quote is what the customer pays; without one, the repair is free. A
    warranty claim is repaired free, quote or not, unless misuse found on it was quoted."""
    quote = order.quote if order.claim_of is None or order.chargeable else None
    approved = quote is not None and quote.status == QuoteStatus.APPROVED
    return Charges(
        currency=order.charges.currency, lines=quote.lines if quote is not None and approved else ()
    )


def charges_of(order: Order, lines: list[ChargeLine]) -> Charges:
    return Charges(currency=order.charges.currency, lines=tuple(lines))


def money(amount: Decimal, order: Order) -> str:
    return f"{amount} {order.charges.currency}"
