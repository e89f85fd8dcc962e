"""An error inside an accepted action (a bug, a value that slipped past every check) fails
that one update, never the workflow task: the order goes on answering and taking actions.

The bug is planted in a subclass of the real order workflow (tests/workflows/broken_pricing.py),
run on the time-skipping server."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from models.order import OrderInput, OrderOutcome, Stage
from tests.factories import create_quote_request
from tests.harness import (
    Handle,
    Harness,
    arrive,
    details,
    diagnose,
    finish,
    order_harness,
)
from tests.workflows.broken_pricing import BrokenPricing
from workflows.complaint import ComplaintWorkflow


class BrokenHarness(Harness):
    async def start(self, order_input: OrderInput | None = None) -> Handle:
        order_input = order_input or await self.order_input()
        self.started.append(order_input.order_id)
        return await self.env.client.start_workflow(
            "RepairOrderWithBrokenPricing",
            order_input,
            id=order_input.order_id,
            task_queue=self.task_queue,
            result_type=OrderOutcome,
        )


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    async with order_harness(
        time_skipping_env, workflows=[BrokenPricing, ComplaintWorkflow], harness=BrokenHarness
    ) as harness:
        yield harness


async def test_an_error_inside_an_action_fails_that_action_and_the_order_goes_on(
    harness: Harness,
) -> None:
    handle = await harness.book()
    await arrive(harness, handle)

    with pytest.raises(WorkflowUpdateFailedError) as failed:
        # A failing workflow task would leave the update unanswered: give up rather than hang.
        await asyncio.wait_for(diagnose(handle, quote=create_quote_request()), timeout=30)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "ActionFailed"
    assert cause.non_retryable
    assert "cannot diagnose" in cause.message
    assert "KeyError" in cause.message
    assert "138" not in cause.message

    # The order still answers and takes the next action: in warranty, no quote is needed.
    order = await details(handle)
    assert order.stage == Stage.ON_SITE
    assert order.quote is None
    await diagnose(handle)
    order = await finish(handle)
    assert order.stage == Stage.AWAITING_ACCEPTANCE

    history = await handle.fetch_history()
    assert not [
        event
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
