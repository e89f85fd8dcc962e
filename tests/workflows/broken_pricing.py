"""A workflow module for tests/workflows/test_action_failures.py: the real order with a bug
planted in it, written as a workflow module so the sandbox imports it as it does the real one."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.order import OrderInput, OrderOutcome, Quote, QuoteRequest

from workflows.repair_order import RepairOrderWorkflow


@workflow.defn(name="RepairOrderWithBrokenPricing")
class BrokenPricing(RepairOrderWorkflow):
    """The real order, but pricing a quote hits a lookup that is not there."""

    @workflow.init
    def __init__(self, input: OrderInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: OrderInput) -> OrderOutcome:
        return await super().run(input)

    def _price(self, request: QuoteRequest) -> Quote:
        raise KeyError("+86 138 0013 8000")  # a message that quotes a value
