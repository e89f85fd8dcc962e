"""Scheduling a closed order's erasure: the order's activity starts the erasure workflow
(workflows/erasure.py) as a workflow of its own, not a child, so that the order's close and the
erasure's months of waiting are independent of each other."""

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from models.order import ErasureInput, erasure_workflow_id

ERASURE_WORKFLOW = "PersonalDataErasure"


class ErasureActivities:
    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name="schedule_erasure")
    async def schedule_erasure(self, input: ErasureInput) -> None:
        """Start the order's erasure, on the order's task queue; a retry finds it started and
        leaves it be."""
        try:
            await self.client.start_workflow(
                ERASURE_WORKFLOW,
                input,
                id=erasure_workflow_id(input.order_id),
                task_queue=activity.info().task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            activity.logger.info("erasure already scheduled", extra={"order_id": input.order_id})
