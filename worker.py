"""python worker.py: run the order workflows and their activities."""

import asyncio
import signal
import sys

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities.dispatch import DispatchActivities
from activities.notifications import NotificationActivities
from activities.records import RecordActivities
from core.db import create_engine, prepare_schema
from core.log import configure_logging
from core.settings import Settings, load_settings
from core.temporal import connect
from workflows.complaint import ComplaintWorkflow
from workflows.repair_order import RepairOrderWorkflow

log = structlog.get_logger("worker")

WORKFLOWS = [RepairOrderWorkflow, ComplaintWorkflow]


def build_worker(
    client: Client,
    settings: Settings,
    records: RecordActivities,
    notifications: NotificationActivities,
    dispatch: DispatchActivities,
) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[
            records.record_order_event,
            notifications.send_notification,
            dispatch.find_candidates,
        ],
    )


async def run_worker(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    await prepare_schema(engine)
    client = await connect(settings)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    try:
        worker = build_worker(
            client,
            settings,
            RecordActivities(engine),
            NotificationActivities(engine),
            DispatchActivities(engine),
        )
        async with worker:
            log.info("worker started", task_queue=settings.task_queue)
            await stop.wait()
            log.info("worker stopping")
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    configure_logging()
    asyncio.run(run_worker(load_settings()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
