"""A deliberately incompatible change to the order workflow, for the replay gate's tests: the
same workflow (same name), with an activity call inserted in the middle of the order's life,
when the technician checks in. No order that was checked in replays against it."""

from datetime import timedelta
from typing import Any, cast

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.order import ActorInput, Order, OrderInput, OrderOutcome

from workflows.complaint import ComplaintWorkflow
from workflows.repair_order import RepairOrderWorkflow


@workflow.defn(name="RepairOrderWorkflow")
class ActivityInsertedAtCheckIn(RepairOrderWorkflow):
    @workflow.run
    async def run(self, input: OrderInput) -> OrderOutcome:
        return await super().run(input)

    # The same update, now with an activity call first.
    @workflow.update
    async def check_in(self, input: ActorInput) -> Order:  # type: ignore[override]
        await workflow.execute_activity(
            "find_candidates",
            self._candidate_query(),
            start_to_close_timeout=timedelta(seconds=30),
        )
        order: Order = await cast(Any, super()).check_in(input)
        return order

    @check_in.validator
    def _may_check_in(self, input: ActorInput) -> None:
        super()._may_check_in(input)


INCOMPATIBLE_WORKFLOWS: list[type] = [ActivityInsertedAtCheckIn, ComplaintWorkflow]
