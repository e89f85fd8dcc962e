"""The one way every process connects to Temporal, with the one data converter."""

import json
from contextlib import suppress
from functools import cache

from temporalio.client import Client, TLSConfig
from temporalio.converter import DataConverter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError

from core.codec import KeyRing, data_converter
from core.settings import Settings

# The engine marks a workflow whose task failed this many times in a row with the search
# attribute TemporalReportedProblems, which /readyz counts. A self-hosted server needs the same
# dynamic config value.
ENGINE_DYNAMIC_CONFIG = ("system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute=2",)


@cache
def _converter(ring: KeyRing) -> DataConverter:
    return data_converter(ring)


@cache
def _environment_ring() -> KeyRing:
    return Settings().key_ring


def converter(settings: Settings | None = None) -> DataConverter:
    """The data converter with these settings' key ring; without settings, the one the
    environment's REPAIRFLOW_PAYLOAD_KEYS names (the tools and the audit read with it)."""
    return _converter(settings.key_ring if settings is not None else _environment_ring())


# What operators watch in the engine, by the running workflows of the task queue it counts.
TROUBLE: dict[str, str] = {
    # The engine marks a workflow whose task failed repeatedly with this search attribute.
    "workflows_with_failing_task": "TemporalReportedProblems IS NOT NULL",
    "orders_with_stalled_writes": "WritesStalled = true",
}


async def count_trouble(client: Client, task_queue: str) -> dict[str, int | None]:
    """How many running workflows are in each kind of TROUBLE; None for a count the engine
    could not give (unknown, rather than the caller failing)."""
    running = f"TaskQueue = {json.dumps(task_queue)} AND ExecutionStatus = 'Running'"
    counts: dict[str, int | None] = dict.fromkeys(TROUBLE)
    for name, condition in TROUBLE.items():
        with suppress(RPCError):
            counts[name] = (await client.count_workflows(f"{running} AND {condition}")).count
    return counts


def dev_server_args() -> list[str]:
    """The dev server's command-line arguments for the engine settings above."""
    return [arg for value in ENGINE_DYNAMIC_CONFIG for arg in ("--dynamic-config-value", value)]


def worker_runtime(settings: Settings) -> Runtime | None:
    """The worker's SDK runtime, exposing the SDK's own metrics (workflow and activity task
    latencies, slots, polls, sticky cache) for Prometheus when a port is set."""
    if settings.worker_metrics_port is None:
        return None
    address = f"{settings.api_host}:{settings.worker_metrics_port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


async def connect(
    settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None
) -> Client:
    tls: bool | TLSConfig = settings.temporal_api_key is not None
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None,
        tls=tls,
        data_converter=converter(settings),
        lazy=lazy,
        runtime=runtime,
    )
