"""The order harness (tests/harness.py) with the spy's activities serves every workflow test
module; a module that needs a real activity overrides `harness` with its own `order_harness`."""

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.harness import Harness, order_harness


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    async with order_harness(time_skipping_env) as harness:
        yield harness
