"""How long auditing one ordinary order takes in-process: what POST /v1/orders/{id}/replay does
after fetching the history (replay, timeline, records check), on the recorded histories.

    .venv/bin/python -m bench.replay_order [--rounds N] [NAME ...]

NAME is a recorded history in tests/histories/ (default: every order there; an order's
children come along). Prints the median and the slowest round per order, in milliseconds.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.testing import ActivityEnvironment

from activities.records import RecordActivities
from core.audit import (
    AuditedWorkflow,
    OrderHistory,
    Source,
    build_timeline,
    compare_records,
    read_export,
    replay,
)
from core.db import create_engine, prepare_schema
from core.temporal import converter
from models.order import RecordInput
from tests.payload_keys import TEST_PAYLOAD_KEYS
from workflows.registry import WORKFLOWS

HISTORIES = Path(__file__).parent.parent / "tests" / "histories"
# The recorded histories are encrypted with the tests' key ring.
os.environ.setdefault("REPAIRFLOW_PAYLOAD_KEYS", TEST_PAYLOAD_KEYS)


def load(name: str) -> OrderHistory:
    paths = [HISTORIES / f"{name}.json", *sorted(HISTORIES.glob(f"{name}-*.json"))]
    workflows = tuple(
        AuditedWorkflow(history, Source.FILE)
        for path in paths
        for history in read_export(path.read_text(), default_id=path.stem)
    )
    return OrderHistory(order_id=name, workflows=workflows)


async def write_records(order: OrderHistory, records: RecordActivities) -> None:
    for workflow in order.workflows:
        for event in workflow.history.events:
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_type.name == "record_order_event":
                [record] = await converter().decode(attributes.input.payloads, [RecordInput])
                await ActivityEnvironment().run(records.record_order_event, record)


async def main(names: list[str], rounds: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        engine = create_engine(f"sqlite:///{directory}/bench.db")
        await prepare_schema(engine)
        print(f"{'order':<16} {'events':>6} {'median ms':>10} {'max ms':>8}")
        for name in names:
            order = load(name)
            await write_records(order, RecordActivities(engine))
            timings = []
            for _ in range(rounds):
                started = time.perf_counter()
                outcomes = await replay([w.history for w in order.workflows], WORKFLOWS)
                await build_timeline(order)
                async with AsyncSession(engine) as session:
                    discrepancies = await compare_records(order, session)
                timings.append((time.perf_counter() - started) * 1000)
                if discrepancies or not all(o.deterministic for o in outcomes):
                    raise SystemExit(f"{name}: does not replay or its records disagree")
            events = sum(len(w.history.events) for w in order.workflows)
            print(
                f"{name:<16} {events:>6} {statistics.median(timings):>10.0f} {max(timings):>8.0f}"
            )
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.replay_order")
    parser.add_argument("names", nargs="*", metavar="NAME")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    orders = args.names or sorted({p.stem for p in HISTORIES.glob("*.json") if "-" not in p.stem})
    asyncio.run(main(orders, args.rounds))
    sys.stdout.flush()
