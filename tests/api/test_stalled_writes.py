"""An order whose records writes keep failing is not silent: reading it shows how many of its
events wait and since when, and /readyz counts it. (That the write resumes by itself once the
store accepts it again is tested on the time-skipping server, tests/workflows/
test_stalled_writes.py: here it would take the real ten minutes of the pause.)"""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from core.settings import Settings
from tests.api.client import Auth, app_and_worker
from tests.factories import create_booking_json
from tests.store_faults import refuse_events_from
from tests.waiting import eventually


@pytest.fixture
async def refusing_api(
    dev_server_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app and worker on a task queue of their own, with a records store that
    refuses every event after an order's first (and so every write that holds one)."""
    own = settings.model_copy(
        update={
            "task_queue": f"stalled-{uuid.uuid4().hex[:8]}",
            "database_url": f"sqlite:///{tmp_path / 'records.db'}",
        }
    )
    async with app_and_worker(dev_server_env.client, own) as (http, engine):
        await refuse_events_from(engine, 2)
        yield http


async def test_an_order_whose_records_writes_fail_says_so_and_readiness_counts_it(
    refusing_api: httpx.AsyncClient, auth: Auth
) -> None:
    ready = await refusing_api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["orders_with_stalled_writes"] == 0

    booking = create_booking_json()
    booked = await refusing_api.post("/v1/orders", json=booking, headers=auth("staff"))
    assert booked.status_code == 201, booked.text
    url = f"/v1/orders/{booked.json()['order_id']}"

    answer = await eventually(
        lambda: refusing_api.get(url, headers=auth("staff")),
        lambda answer: (
            answer.status_code != 200 or answer.json()["pending_writes"]["stalled_since"]
        ),
        explain=lambda answer: answer.text,
    )
    assert answer.status_code == 200, answer.text
    pending = answer.json()["pending_writes"]
    timeline = answer.json()["timeline"]
    assert pending["stalled_since"] is not None
    # The refused event went with the rest of the booking's events, in one transaction: all
    # of them wait, and the store has none of them yet.
    assert pending["records"] == len(timeline) >= 2
    listed = await refusing_api.get("/v1/orders", headers=auth("staff"))
    assert listed.json()["items"] == []

    ready = await eventually(
        lambda: refusing_api.get("/readyz"),
        lambda ready: ready.json()["orders_with_stalled_writes"],
        explain=lambda ready: ready.text,
    )
    assert ready.json()["orders_with_stalled_writes"] == 1
