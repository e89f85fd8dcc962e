"""Orders driven through the API while the worker process is killed and started again, then
every history replayed with the replay gate.

The engine is a real dev server, the worker is `python worker.py` in its own process (so it
can be killed with SIGKILL), the API is the real app in this process. The test module runs a
reduced run; run it as a command to hunt for timing-dependent replay faults:

    .venv/bin/python -m tests.restart.harness --runs 20 --orders 12
"""

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from api.main import create_app
from core.settings import Settings
from core.tokens import mint_token
from tests.api.drive import SERVICE_RECORD
from tests.factories import ROUND_THE_CLOCK, create_booking_json
from tests.servers import start_dev_server
from tests.waiting import eventually
from worker import OK, replay_files

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET = "restart-harness-secret-long-enough-for-hmac-0123456789abcdefghijklmnopqrstuv"
# Short clocks, so that timers fire and are cancelled while updates arrive.
POLICY = """
[dispatch]
offer_timeout = "60s"
appointment_confirm = "3s"

[visit]
general_repair = "2s"

[acceptance]
timeout = "6s"
survey_delay = "2s"
"""
RETRYABLE = {502, 503, 504}
Json = dict[str, Any]


@dataclass
class Plan:
    """One run: how many orders, and when the worker is killed."""

    orders: int = 12
    # Seconds after the first booking at which the worker is killed (and started again).
    kill_after: tuple[float, ...] = (2.0,)
    # Kill once more just after the first order's work is completed.
    kill_after_first_completion: bool = True
    # The worker's workflow cache; a small one makes the worker replay constantly.
    cache_size: int | None = None
    seed: int = 0
    deadline: float = 180.0


@dataclass
class Report:
    order_ids: list[str] = field(default_factory=list)
    stages: dict[str, str] = field(default_factory=dict)
    stuck: dict[str, str] = field(default_factory=dict)
    failing_tasks: dict[str, str] = field(default_factory=dict)
    replay_status: int | None = None
    replay_output: str = ""
    kills: int = 0
    history_files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.stuck
            and not self.failing_tasks
            and self.replay_status == OK
            and all(stage == "in_warranty" for stage in self.stages.values())
        )

    def summary(self) -> str:
        lines = [
            f"orders {len(self.order_ids)}, kills {self.kills}, replay status "
            f"{self.replay_status}, ok {self.ok}"
        ]
        lines += [f"  stuck {order}: {why}" for order, why in self.stuck.items()]
        lines += [f"  failing task {wf}: {why}" for wf, why in self.failing_tasks.items()]
        lines += [
            f"  stage {order}: {stage}"
            for order, stage in self.stages.items()
            if stage != "in_warranty"
        ]
        if self.replay_status != OK:
            lines.append(self.replay_output)
        return "\n".join(lines)


class WorkerProcess:
    """`python worker.py` against the run's task queue, killed and started at will."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - the project's own worker
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class Driver:
    """One client per party, talking to the API as the apps do; retries what the engine could
    not take while the worker was down."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api

    @staticmethod
    def auth(role: str, **claims: Any) -> dict[str, str]:
        token = mint_token(
            SECRET, subject=f"harness-{role}", role=role, ttl=timedelta(hours=1), **claims
        )
        return {"Authorization": f"Bearer {token}"}

    async def order(self, order_id: str, attempts: int = 300) -> Json:
        for _ in range(attempts):
            response = await self.api.get(f"/v1/orders/{order_id}", headers=self.auth("staff"))
            if response.status_code == 200:
                body: Json = response.json()
                return body
            if response.status_code not in RETRYABLE:
                break
            await asyncio.sleep(0.2)
        raise AssertionError(f"reading {order_id}: {response.status_code} {response.text}")

    async def act(
        self,
        order_id: str,
        path: str,
        headers: dict[str, str],
        body: Json | None,
        done: Callable[[Json], bool],
    ) -> None:
        """POST the action until it is taken; after a retried call, a 409 whose order shows the
        action done means the first call went through."""
        retried = False
        while True:
            try:
                response = await self.api.post(
                    f"/v1/orders/{order_id}/{path}", json=body, headers=headers, timeout=30
                )
            except httpx.TimeoutException:
                retried = True
                continue
            if response.status_code == 200:
                return
            if response.status_code in RETRYABLE:
                retried = True
                await asyncio.sleep(0.3)
                continue
            if response.status_code == 409 and retried and done(await self.order(order_id)):
                return
            raise AssertionError(f"{path} on {order_id}: {response.status_code} {response.text}")


def window(days: int = 1) -> Json:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    return {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}


async def drive_order(driver: Driver, order_id: str, customer_token: str) -> str:
    """Offer accepted, appointment, check-in, diagnosis, service record, completion, acceptance.
    Returns the technician who took it."""
    offer = None
    while offer is None:
        order = await driver.order(order_id)
        offer = order["offer"]
        if offer is None:
            if order["technician_id"] is not None or order["escalations"]:
                raise AssertionError(f"{order_id} was not offered: {order['escalations']}")
            await asyncio.sleep(0.2)
    customer = {"Authorization": f"Bearer {customer_token}"}

    def past(*stages: str) -> Callable[[Json], bool]:
        return lambda order: order["stage"] not in stages

    def logged(action: str) -> Callable[[Json], bool]:
        return lambda order: any(e["action"] == action for e in order["timeline"])

    while True:  # an offer that expired while the worker was down goes to the next technician
        technician = driver.auth("technician", technician_id=offer["technician_id"])
        try:
            await driver.act(order_id, "offer/accept", technician, None, past("dispatching"))
            break
        except AssertionError:
            order = await driver.order(order_id)
            if order["offer"] is None or order["offer"] == offer:
                raise
            offer = order["offer"]
    await driver.act(order_id, "appointment", technician, window(), logged("appointment confirmed"))
    await driver.act(order_id, "check-in", technician, None, past("scheduled"))
    diagnosis = {"fault_cause": "thermostat stuck open", "plan": "replace the thermostat"}
    await driver.act(order_id, "diagnosis", technician, diagnosis, logged("diagnosed"))
    await driver.act(
        order_id, "service-record", technician, SERVICE_RECORD, logged("service record")
    )
    await driver.act(order_id, "complete", technician, None, past("on_site"))
    await driver.act(
        order_id,
        "acceptance",
        customer,
        {"accepted": True, "signature": "sig"},
        past("awaiting_acceptance"),
    )
    return str(offer["technician_id"])


@asynccontextmanager
async def dev_server() -> AsyncIterator[Client]:
    async with await start_dev_server() as env:
        yield env.client


async def wait_for_worker(client: Client, task_queue: str, started: float) -> None:
    """Until the restarted worker polls the task queue."""

    async def polling() -> bool:
        try:
            described = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
        except RPCError:  # a loaded engine may drop the call; ask again
            return False
        return any(p.last_access_time.ToSeconds() >= int(started) for p in described.pollers)

    await eventually(polling, bool, explain=lambda _: "the worker did not start polling")


async def run_once(client: Client, plan: Plan, workdir: Path) -> Report:
    rng = random.Random(plan.seed)  # noqa: S311 - kill moments, not secrets
    report = Report()
    target = client.service_client.config.target_host
    task_queue = f"restart-{uuid.uuid4().hex[:8]}"
    policy = workdir / "policy.toml"
    policy.write_text(POLICY)
    settings = Settings(
        temporal_address=target,
        task_queue=task_queue,
        database_url=f"sqlite:///{workdir / 'records.db'}",
        auth_secret=SECRET,
        policy_file=policy,
    )
    env = {
        **os.environ,
        "REPAIRFLOW_TEMPORAL_ADDRESS": target,
        "REPAIRFLOW_TASK_QUEUE": task_queue,
        "REPAIRFLOW_DATABASE_URL": settings.database_url,
        "REPAIRFLOW_POLICY_FILE": str(policy),
    }
    if plan.cache_size is not None:
        env["REPAIRFLOW_WORKFLOW_CACHE_SIZE"] = str(plan.cache_size)
    worker = WorkerProcess(env, workdir / "worker.log")
    app = create_app(settings)
    first_completed = asyncio.Event()
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://repairflow") as api:
                driver = Driver(api)
                started = time.time()
                worker.start()
                await wait_for_worker(client, task_queue, started)
                for n in range(plan.orders):
                    technician = {
                        "id": f"T-{n:03d}-{uuid.uuid4().hex[:6].upper()}",
                        "name": "Zhang San",
                        "phone": "+86 139 0000 1111",
                        "skills": ["refrigerator"],
                        "regions": ["pudong"],
                        "certificates": [
                            {
                                "type": "appliance_repair",
                                "number": "AR-1",
                                "valid_until": "2099-01-01",
                            }
                        ],
                        "shifts": ROUND_THE_CLOCK,
                    }
                    response = await api.post(
                        "/v1/technicians", json=technician, headers=driver.auth("admin")
                    )
                    assert response.status_code == 201, response.text

                async def one_order(n: int) -> None:
                    await asyncio.sleep(rng.uniform(0, 1.0))
                    purchased = datetime.now(UTC).date() - timedelta(days=100)
                    booking = create_booking_json()
                    booking["appliance"]["purchase_date"] = purchased.isoformat()
                    key = f"restart-{task_queue}-{n}"
                    while True:
                        response = await api.post(
                            "/v1/orders",
                            json=booking,
                            headers=driver.auth("staff") | {"Idempotency-Key": key},
                        )
                        if response.status_code in (200, 201):
                            break
                        assert response.status_code in RETRYABLE, response.text
                        await asyncio.sleep(0.3)
                    created = response.json()
                    report.order_ids.append(created["order_id"])
                    await drive_order(driver, created["order_id"], created["customer_token"])
                    first_completed.set()

                async def killer() -> None:
                    moments = sorted(plan.kill_after)
                    begun = time.monotonic()
                    for moment in moments:
                        await asyncio.sleep(max(0.0, moment - (time.monotonic() - begun)))
                        worker.kill()
                        report.kills += 1
                        await asyncio.sleep(rng.uniform(0, 0.5))
                        restarted = time.time()
                        worker.start()
                        await wait_for_worker(client, task_queue, restarted)
                    if plan.kill_after_first_completion:
                        await first_completed.wait()
                        worker.kill()
                        report.kills += 1
                        restarted = time.time()
                        worker.start()
                        await wait_for_worker(client, task_queue, restarted)

                drivers = [asyncio.create_task(one_order(n)) for n in range(plan.orders)]
                kills = asyncio.create_task(killer())
                done, pending = await asyncio.wait(drivers, timeout=plan.deadline)
                for task in pending:
                    task.cancel()
                for n, task in enumerate(drivers):
                    if task in done and task.exception() is not None:
                        report.stuck[f"order {n}"] = repr(task.exception())
                    elif task in pending:
                        report.stuck[f"order {n}"] = "did not finish in time"
                # No order finished: the kill after the first completion never comes.
                if not first_completed.is_set():
                    kills.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await kills
                for order_id in report.order_ids:
                    try:
                        report.stages[order_id] = (await driver.order(order_id, 5))["stage"]
                    except AssertionError as error:
                        report.stages[order_id] = str(error)
    finally:
        worker.stop()
    await collect_histories(client, task_queue, workdir, report)
    return report


async def collect_histories(client: Client, task_queue: str, workdir: Path, report: Report) -> None:
    """Every workflow of the run: no task still failing, and each history through the gate."""
    histories = workdir / "histories"
    histories.mkdir(exist_ok=True)
    async for execution in client.list_workflows(f'TaskQueue = "{task_queue}"'):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = await handle.fetch_history()
        failures = [
            event.workflow_task_failed_event_attributes.failure.message
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        ]
        if failures:
            report.failing_tasks[execution.id] = failures[-1]
        path = histories / f"{execution.id}.json"
        path.write_text(history.to_json())
        report.history_files.append(path)
    out = StringIO()
    report.replay_status = await replay_files(report.history_files, out=out)
    report.replay_output = out.getvalue()


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.restart.harness")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--orders", type=int, default=12)
    parser.add_argument("--cache-size", type=int, default=None)
    parser.add_argument("--random-kills", type=int, default=1, help="kills at random moments")
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs' files here")
    args = parser.parse_args(argv)
    failed = 0
    async with dev_server() as client:
        for run in range(args.runs):
            rng = random.Random(run)  # noqa: S311 - kill moments, not secrets
            plan = Plan(
                orders=args.orders,
                kill_after=tuple(rng.uniform(0.5, 6.0) for _ in range(args.random_kills)),
                cache_size=args.cache_size,
                seed=run,
            )
            with tempfile.TemporaryDirectory() as tmp:
                workdir = Path(tmp) if args.keep is None else args.keep / f"run-{run}"
                workdir.mkdir(parents=True, exist_ok=True)
                report = await run_once(client, plan, workdir)
                print(f"run {run}: kills at {plan.kill_after}: {report.summary()}", flush=True)
                failed += not report.ok
    print(f"{args.runs - failed} of {args.runs} runs passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
