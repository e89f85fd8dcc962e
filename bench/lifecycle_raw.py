"""The raw Temporal SDK ceiling that bench.lifecycle compares the product with: a minimal
workflow in which each step of an order's life is one update whose handler runs one trivial
activity. Its own module (not the bench's __main__), so that the workflow sandbox can import it.
"""

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel


class RawOrder(BaseModel):
    order_id: str
    steps: int


class RawStep(BaseModel):
    seq: int
    action: str


class RawStepDone(BaseModel):
    seq: int
    action: str
    done: int


@activity.defn(name="raw_lifecycle_step")
async def raw_step(step: RawStep) -> RawStepDone:
    return RawStepDone(seq=step.seq, action=step.action, done=step.seq + 1)


@workflow.defn(name="RawLifecycle")
class RawLifecycleWorkflow:
    """Waits for its steps; each step is an update that runs one activity. It completes once
    the last step's handler has finished."""

    def __init__(self) -> None:
        self.done = 0

    @workflow.run
    async def run(self, order: RawOrder) -> int:
        await workflow.wait_condition(
            lambda: self.done >= order.steps and workflow.all_handlers_finished()
        )
        return self.done

    @workflow.update
    async def step(self, step: RawStep) -> RawStepDone:
        result = await workflow.execute_activity(
            raw_step, step, start_to_close_timeout=timedelta(seconds=30)
        )
        self.done += 1
        return result
