"""python worker.py: run the order workflows and their activities (and archive the histories
of closed ones).

python worker.py replay FILE...     replay exported histories against this code
python worker.py replay --running   replay every running workflow of the task queue

The replay is the gate to run before deploying new worker code: it exits 1 if any history does
not replay (naming the workflow and the reason), 2 if a file cannot be read or the engine
cannot be reached, 0 if every history replays.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import NoReturn, TextIO

import structlog
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.dispatch import DispatchActivities
from activities.erasure import ErasureActivities
from activities.notifications import NotificationActivities
from activities.records import RecordActivities
from core.archive import keep_archiving
from core.audit import ReplayOutcome, UnreadableExport, read_export, replay, replay_each
from core.db import create_engine, prepare_schema
from core.log import configure_logging
from core.runner import TaskOrderRunner
from core.settings import Settings, load_settings
from core.temporal import connect, worker_runtime
from workflows.registry import WORKFLOWS

log = structlog.get_logger("worker")

OK, NONDETERMINISTIC, CANNOT_CHECK = 0, 1, 2


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
        max_cached_workflows=settings.workflow_cache_size,
        workflow_runner=TaskOrderRunner(),
        activities=[
            records.record_order_event,
            records.record_order_events,
            records.record_complaint,
            records.erase_personal_data,
            ErasureActivities(client).schedule_erasure,
            notifications.send_notification,
            dispatch.find_candidates,
        ],
    )


async def run_worker(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    await prepare_schema(engine)
    client = await connect(settings, runtime=worker_runtime(settings))
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    try:
        worker = build_worker(
            client,
            settings,
            RecordActivities(engine),
            NotificationActivities.from_settings(engine, settings),
            DispatchActivities(engine),
        )
        archiving = _in_background(
            keep_archiving(
                client,
                engine,
                task_queue=settings.task_queue,
                interval=timedelta(seconds=settings.archive_interval_seconds),
            )
        )
        async with worker, archiving:
            log.info(
                "worker started",
                task_queue=settings.task_queue,
                metrics_port=settings.worker_metrics_port,
            )
            await stop.wait()
            log.info("worker stopping")
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def _in_background(work: Coroutine[object, object, None]) -> AsyncIterator[None]:
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---- replay ----------------------------------------------------------------------------------


async def replay_files(
    paths: Sequence[Path], workflows: Sequence[type] = WORKFLOWS, out: TextIO | None = None
) -> int:
    """Replay the histories in files the API (GET /v1/orders/{id}/history) or
    `temporal workflow show --output json` exported."""
    out = out or sys.stdout
    unreadable = nondeterministic = False
    for path in paths:
        try:
            histories = read_export(await asyncio.to_thread(path.read_text), default_id=path.stem)
        except (OSError, UnicodeDecodeError, UnreadableExport) as error:
            print(f"unreadable        {path}: {error}", file=out)
            unreadable = True
            continue
        for outcome in await replay(histories, workflows):
            nondeterministic |= not _report(outcome, out, source=str(path))
    return NONDETERMINISTIC if nondeterministic else CANNOT_CHECK if unreadable else OK


async def replay_running(
    settings: Settings, workflows: Sequence[type] = WORKFLOWS, out: TextIO | None = None
) -> int:
    """Replay every running workflow of the task queue, straight from the engine."""
    out = out or sys.stdout
    status, replayed = OK, 0
    try:
        client = await connect(settings)
        query = f"TaskQueue = {json.dumps(settings.task_queue)} AND ExecutionStatus = 'Running'"
        histories = client.list_workflows(query).map_histories()
        async for outcome in replay_each(histories, workflows):
            replayed += 1
            if not _report(outcome, out, source="engine"):
                status = NONDETERMINISTIC
    except (RPCError, RuntimeError) as error:
        print(f"cannot reach the workflow engine at {settings.temporal_address}: {error}", file=out)
        return CANNOT_CHECK
    print(f"{replayed} running workflow(s) on {settings.task_queue} replayed", file=out)
    return status


def _report(outcome: ReplayOutcome, out: TextIO, *, source: str) -> bool:
    if outcome.deterministic:
        print(
            f"ok                {outcome.workflow_id}  ({outcome.events} events, {source})",
            file=out,
        )
    else:
        print(f"failed            {outcome.workflow_id}  ({source}): {outcome.error}", file=out)
    return outcome.deterministic


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python worker.py",
        description="Run the worker; `replay` checks histories against this code instead.",
    )
    commands = parser.add_subparsers(dest="command")
    replay_command = commands.add_parser(
        "replay",
        help="replay histories against this code (the gate before deploying it)",
        description="Exit status: 0 every history replays, 1 one does not, 2 unreadable input.",
    )
    replay_command.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="a history exported by the API or by `temporal workflow show --output json`",
    )
    replay_command.add_argument(
        "--running", action="store_true", help="replay every running workflow from the engine"
    )
    args = parser.parse_args(argv)
    if args.command == "replay" and bool(args.files) == args.running:
        replay_command.error("give FILE... or --running")
    return args


def exit_now(status: int) -> NoReturn:
    """Exit without the interpreter's teardown: native threads of the engine's bridge may still
    be winding down and can abort it (SIGABRT), which the gate must not report as its verdict."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(status)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    configure_logging()
    if args.command == "replay" and args.running:
        exit_now(asyncio.run(replay_running(load_settings())))
    if args.command == "replay":
        load_settings()  # the key ring the histories are encrypted with, or a clear refusal
        exit_now(asyncio.run(replay_files(args.files)))
    # The sandbox imports the workflow modules afresh for every workflow it starts: keep their
    # compiled code, or PYTHONDONTWRITEBYTECODE has each of those imports compile them again.
    sys.dont_write_bytecode = False
    asyncio.run(run_worker(load_settings()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
