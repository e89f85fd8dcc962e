"""The Temporal servers tests run against, started from the binaries of the locked PyPI
packages in the environment, so nothing is downloaded: the time-skipping test server for
workflow logic and a real dev server for the API, both knowing the custom search attributes."""

import sys
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from core.temporal import converter, dev_server_args
from models.order import SEARCH_ATTRIBUTES

BIN = Path(sys.executable).parent


async def start_time_skipping_server() -> WorkflowEnvironment:
    """A time-skipping test server with the custom search attributes."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=converter(),
        test_server_existing_path=str(BIN / "temporal-test-server"),
    )
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.ValueType(key.indexed_value_type)
                    for key in SEARCH_ATTRIBUTES
                },
            )
        )
    except BaseException:
        await env.shutdown()
        raise
    return env


async def start_dev_server() -> WorkflowEnvironment:
    """A real dev server with the custom search attributes and the engine settings of
    command 1, in memory."""
    return await WorkflowEnvironment.start_local(
        data_converter=converter(),
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=dev_server_args(),
    )
