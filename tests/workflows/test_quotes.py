"""Quotes that fit the case: prices from the list (an amount off it waits for a supervisor
before the customer sees it), a new diagnosis replacing or withdrawing the quote, and misuse
found on a warranty-claim order charged only through a quote the customer consents to.

On the time-skipping test server with the harness's spies (tests/harness.py). The test
policy's price list has "replace thermostat" at 120.00 (tests/factories.py).
"""

from decimal import Decimal

from models.notification import Template
from models.order import (
    ActorInput,
    DiagnosisInput,
    Exclusion,
    QuoteItem,
    QuoteRequest,
    QuoteStatus,
    Stage,
    WarrantyStatus,
)
from tests.factories import create_diagnosis, create_quote_request
from tests.harness import (
    Handle,
    Harness,
    accept,
    act,
    approve_quote,
    arrive,
    assert_refused,
    assign,
    check_in,
    claim,
    complete,
    decline_quote,
    diagnose,
    finish,
    repair,
    sent_eventually,
    settled,
    submit_service_record,
    supervisor,
    technician,
)
from workflows.repair_order import RepairOrderWorkflow

OFF_LIST = QuoteRequest(items=(QuoteItem(description="descale the drain", amount=Decimal("60")),))
LIST_PRICE_GIVEN = QuoteRequest(
    items=(QuoteItem(description="replace thermostat", amount=Decimal("120")),)
)


def quotes_sent(harness: Harness, order_id: str) -> list[str]:
    return [
        m.params["total"] for m in harness.records.messages(Template.QUOTE_TO_APPROVE, order_id)
    ]


async def claim_order_of(harness: Harness, original: Handle) -> Handle:
    """A warranty claim on the accepted order. It is ended before its original at teardown:
    the test server stops skipping time for good once an abandoned child outlives its parent."""
    claim_order = harness.handle((await claim(original)).claim_order_id)
    harness.started.insert(harness.started.index(original.id), harness.started.pop())
    return claim_order


async def claim_on_site(harness: Harness) -> Handle:
    """A free repair, accepted, claimed again: the claim order's technician is on site."""
    original = await harness.book()
    await repair(harness, original)
    await accept(original)
    claim_order = await claim_order_of(harness, original)
    await assign(claim_order)
    await check_in(claim_order)
    return claim_order


class TestOffTheList:
    async def test_an_off_list_amount_waits_for_a_supervisor_before_the_customer(
        self, harness: Harness
    ) -> None:
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await arrive(harness, handle)
        order = await diagnose(handle, quote=OFF_LIST)
        assert order.quote is not None
        assert order.quote.status == QuoteStatus.AWAITING_SUPERVISOR
        assert [(e.to, e.reason) for e in order.escalations] == [("supervisor", "quote_off_list")]
        assert "off the price list: descale the drain" in order.timeline[-2].detail
        await assert_refused(
            handle,
            RepairOrderWorkflow.approve_quote,
            ActorInput(actor=technician()),
            "Forbidden",
            "role technician may not",
        )
        await assert_refused(
            handle,
            RepairOrderWorkflow.approve_quote,
            ActorInput(actor=supervisor()),
            "ActionRefused",
            "its off-list prices wait for a supervisor's approval",
        )
        await assert_refused(
            handle,
            RepairOrderWorkflow.authorize_quote,
            ActorInput(actor=technician()),
            "Forbidden",
            "role technician may not",
        )
        await settled(handle)
        assert quotes_sent(harness, handle.id) == []  # the customer has not seen it

        order = await act(
            handle, RepairOrderWorkflow.authorize_quote, ActorInput(actor=supervisor())
        )
        assert order.quote is not None
        assert order.quote.status == QuoteStatus.PENDING
        await sent_eventually(harness, Template.QUOTE_TO_APPROVE, handle.id)
        assert quotes_sent(harness, handle.id) == ["110.00 CNY"]  # 60.00 + the visit fee
        await approve_quote(handle)
        order = await finish(handle)
        assert order.charges.total == Decimal("110.00")

    async def test_the_list_price_given_as_an_amount_goes_straight_to_the_customer(
        self, harness: Harness
    ) -> None:
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await arrive(harness, handle)
        order = await diagnose(handle, quote=LIST_PRICE_GIVEN)
        assert order.quote is not None
        assert order.quote.status == QuoteStatus.PENDING
        assert order.escalations == []

    async def test_nothing_to_authorize_is_refused(self, harness: Harness) -> None:
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await arrive(harness, handle)
        await diagnose(handle, quote=create_quote_request())
        await assert_refused(
            handle,
            RepairOrderWorkflow.authorize_quote,
            ActorInput(actor=supervisor()),
            "ActionRefused",
            "no quote waits for a supervisor",
        )


class TestNewDiagnosis:
    async def test_a_new_quote_replaces_the_open_one_and_needs_consent_again(
        self, harness: Harness
    ) -> None:
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await arrive(harness, handle)
        await diagnose(handle, quote=create_quote_request())
        await approve_quote(handle)
        twice = create_quote_request(items=(QuoteItem(description="replace thermostat"),) * 2)
        order = await diagnose(handle, quote=twice)
        assert order.quote is not None
        assert (order.quote.status, order.quote.total) == (QuoteStatus.PENDING, Decimal("290.00"))
        assert order.timeline[-1].action == "quote replaced"
        await submit_service_record(handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.complete,
            ActorInput(actor=technician()),
            "ActionRefused",
            "the quote is not approved by the customer",
        )
        await sent_eventually(harness, Template.QUOTE_TO_APPROVE, handle.id, count=2)
        assert quotes_sent(harness, handle.id) == ["170.00 CNY", "290.00 CNY"]
        await approve_quote(handle)
        order = await complete(handle)
        assert order.charges.total == Decimal("290.00")

    async def test_a_diagnosis_without_a_quote_withdraws_it_on_a_free_order(
        self, harness: Harness
    ) -> None:
        handle = await harness.book()
        await arrive(harness, handle)
        await diagnose(handle, quote=create_quote_request())
        order = await diagnose(handle)
        assert order.quote is None
        assert order.timeline[-1].action == "quote withdrawn"
        order = await finish(handle)  # nothing left for the customer to answer
        assert order.stage == Stage.AWAITING_ACCEPTANCE
        assert order.charges.total == Decimal("0.00")


class TestMisuseOnAClaim:
    async def test_misuse_found_on_a_claim_is_charged_only_through_a_consented_quote(
        self, harness: Harness
    ) -> None:
        claim_order = await claim_on_site(harness)
        await assert_refused(
            claim_order,
            RepairOrderWorkflow.diagnose,
            DiagnosisInput(
                actor=technician(),
                diagnosis=create_diagnosis(warranty_exclusion=Exclusion.MISUSE),
            ),
            "ActionRefused",
            "a chargeable repair needs a quote",
        )
        order = await diagnose(claim_order, create_quote_request(), Exclusion.MISUSE)
        assert order.chargeable
        assert order.quote is not None
        assert order.quote.total == Decimal("170.00")  # with the visit fee
        await approve_quote(claim_order)
        order = await finish(claim_order)
        assert order.charges.total == Decimal("170.00")

    async def test_a_declined_quote_for_misuse_ends_the_claim_with_the_visit_fee(
        self, harness: Harness
    ) -> None:
        claim_order = await claim_on_site(harness)
        await diagnose(claim_order, create_quote_request(), Exclusion.MISUSE)
        order = await decline_quote(claim_order)
        assert order.stage == Stage.CLOSED
        assert order.charges.total == Decimal("50.00")

    async def test_a_claim_without_misuse_stays_free(self, harness: Harness) -> None:
        claim_order = await claim_on_site(harness)
        order = await diagnose(claim_order)
        assert not order.chargeable
        order = await finish(claim_order)
        assert order.charges.total == Decimal("0.00")
