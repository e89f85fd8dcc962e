"""What operators scrape at GET /metrics (Prometheus text format): the API's requests by route
and status with latency histograms (prometheus-fastapi-instrumentator), and business gauges read
from the records store and the engine at each scrape. No label carries personal data or an
order number: stages, priorities and routes only."""

import math

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from temporalio.client import Client

from core import queries
from core.temporal import count_trouble
from models.order import FINAL_STAGES, Priority, Stage

NAN = math.nan


class Metrics:
    """One registry per app, so that several apps in one process (the tests) do not clash."""

    def __init__(self, app: FastAPI) -> None:
        self.registry = CollectorRegistry()
        Instrumentator(
            should_group_status_codes=False,
            excluded_handlers=["/metrics"],
            registry=self.registry,
        ).instrument(app)
        self.open_orders = Gauge(
            "repairflow_open_orders",
            "Orders not closed or cancelled, by stage (records store).",
            ["stage"],
            registry=self.registry,
        )
        self.sla_breached = Gauge(
            "repairflow_sla_breached_open_orders",
            "Open orders with at least one SLA clock breached, by priority (records store).",
            ["priority"],
            registry=self.registry,
        )
        self.failed_notifications = Gauge(
            "repairflow_failed_notifications",
            "Notifications recorded as failed for good (records store).",
            registry=self.registry,
        )
        self.stalled_writes = Gauge(
            "repairflow_orders_with_stalled_writes",
            "Running orders with a records or notification write that keeps failing; their "
            "events wait in order (engine).",
            registry=self.registry,
        )
        self.failing_tasks = Gauge(
            "repairflow_workflows_with_failing_task",
            "Running workflows whose workflow task keeps failing (engine).",
            registry=self.registry,
        )

    async def scrape(self, engine: AsyncEngine, temporal: Client, task_queue: str) -> bytes:
        """Read the gauges now, then render everything. A part that cannot be read now (the
        database or the engine down) reads NaN rather than failing the scrape or showing an
        old value."""
        try:
            async with AsyncSession(engine) as session:
                now: queries.Gauges | None = await queries.gauges(session)
        except Exception:  # whatever the driver raises while the database is away
            now = None
        for stage in Stage:
            if stage not in FINAL_STAGES:
                count = now.open_orders.get(stage, 0) if now else NAN
                self.open_orders.labels(stage=str(stage)).set(count)
        for priority in Priority:
            count = now.sla_breached_open_orders.get(priority, 0) if now else NAN
            self.sla_breached.labels(priority=str(priority)).set(count)
        self.failed_notifications.set(now.failed_notifications if now else NAN)
        trouble = await count_trouble(temporal, task_queue)
        for gauge, name in (
            (self.stalled_writes, "orders_with_stalled_writes"),
            (self.failing_tasks, "workflows_with_failing_task"),
        ):
            known = trouble[name]
            gauge.set(known if known is not None else NAN)
        return generate_latest(self.registry)
