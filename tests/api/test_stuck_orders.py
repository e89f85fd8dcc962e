"""An order whose workflow task keeps failing (a bug in the workflow code, a history the code
cannot replay) is not left invisible: reading it says it is stuck, and /readyz counts it."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from api.main import create_app
from core.settings import Settings
from tests.api.client import Auth, serve
from tests.factories import create_booking_json
from tests.waiting import eventually


@workflow.defn(name="RepairOrderWorkflow")
class WedgedOrderWorkflow:
    """Stands in for order code that fails every workflow task it is given."""

    @workflow.run
    async def run(self, _: Any) -> None:
        raise RuntimeError("a bug in the order's workflow code")


@pytest.fixture
async def wedging_api(
    dev_server_env: WorkflowEnvironment, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app on a task queue of its own, served by a worker whose order code fails."""
    own = settings.model_copy(update={"task_queue": f"wedged-{uuid.uuid4().hex[:8]}"})
    async with Worker(
        dev_server_env.client,
        task_queue=own.task_queue,
        workflows=[WedgedOrderWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),  # the stand-in needs no sandbox
    ):
        async for http in serve(create_app(own)):
            yield http


async def test_a_stuck_order_says_so_and_readiness_counts_it(
    wedging_api: httpx.AsyncClient, auth: Auth
) -> None:
    ready = await wedging_api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["workflows_with_failing_task"] == 0

    booked = await wedging_api.post("/v1/orders", json=create_booking_json(), headers=auth("staff"))
    assert booked.status_code == 201, booked.text
    url = f"/v1/orders/{booked.json()['order_id']}"

    answer = await eventually(
        lambda: wedging_api.get(url, headers=auth("staff")),
        lambda answer: answer.json().get("workflow_task_failing"),
        explain=lambda answer: answer.text,
    )
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["title"] == "Order Stuck"
    assert body["workflow_task_attempts"] >= 2
    assert "stuck" in body["detail"]
    # No workflow internals or customer data in what the caller reads.
    assert "RuntimeError" not in answer.text
    assert "Li Wei" not in answer.text

    acted = await wedging_api.post(
        f"{url}/cancel", json={"reason": "customer called"}, headers=auth("staff")
    )
    assert acted.status_code == 503
    assert acted.json()["title"] == "Order Stuck"

    ready = await eventually(
        lambda: wedging_api.get("/readyz"),
        lambda ready: ready.json()["workflows_with_failing_task"],
        explain=lambda ready: ready.text,
    )
    assert ready.json()["workflows_with_failing_task"] == 1
