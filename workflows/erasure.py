"""Erasing an order's personal data once `privacy.erase_personal_data_after` has passed since it
closed: a workflow of its own (`<order>-erasure`), which the order has started as it closes
(activities/erasure.py). The erasure destroys the order's personal-data key, which makes the
sealed copies in every history and archive unreadable (core/personal.py)."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.clocks import sleep_until

with workflow.unsafe.imports_passed_through():
    from models.order import ErasureInput

ERASE_TIMEOUT = timedelta(seconds=30)
# Erasing is owed, not optional: it is retried until the records store takes it.
ERASE_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=10))


@workflow.defn(name="PersonalDataErasure")
class PersonalDataErasureWorkflow:
    @workflow.run
    async def run(self, input: ErasureInput) -> None:
        await sleep_until(input.erase_at)
        await workflow.execute_activity(
            "erase_personal_data",
            input.order_id,
            start_to_close_timeout=ERASE_TIMEOUT,
            retry_policy=ERASE_RETRY,
        )
