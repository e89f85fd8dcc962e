"""An ordinary order's life through the real service, against the raw Temporal SDK's ceiling on
the same dev server, in one run.

    .venv/bin/python -m bench.lifecycle [--orders 200] [--concurrency 40] [--json PATH]
                                        [--technicians N] [--histories DIR]

README command 1 (`scripts/dev.py up`) is started as tests/service.py starts it: free ports and
a temporary data directory of its own (dev server, worker, API; all stopped at the end, also
on an error or SIGTERM). Then:

1. raw: a minimal workflow (bench/lifecycle_raw.py) on a task queue and an in-process worker of
   its own, with the service's data converter: N workflows, C at a time, each taking as many
   steps as an ordinary order takes actions; a step is one update whose handler runs one
   trivial activity. Timed: the client's start_workflow and each execute_update.
2. product: N orders, C at a time, through the HTTP API with real tokens (signed with the
   secret command 1 keeps in its data directory; technicians registered by the admin as the
   API tests do): book (POST /v1/orders), wait for the offer (GET polling, the only wait the
   lifecycle needs), then offer/accept, appointment, check-in, diagnosis (in warranty: no
   quote), service record, complete, acceptance, ending in_warranty. Timed: the booking and
   each action; the wait for the offer is reported on its own (it counts in orders/s).
3. the histories of one raw workflow, one order of the run (in_warranty) and one more order
   whose warranty window lasts seconds (air conditioners, in the bench's policy) read once it
   is closed: size as `to_json()` (what `temporal workflow show --output json` prints), as
   compact JSON and as protobuf, and what the events are. With the default 24h survey delay
   and a window under two weeks, the closed sample has no survey and no warranty reminder.

Also the CPU seconds each process used in each phase (bench, dev server, worker, API, and the
rest of the machine): on a shared machine the wall-clock figures move with other load; the CPU
per action moves less. Prints both sides and the ratios product/raw, with the issue's targets.
"""

import argparse
import asyncio
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from google.protobuf.json_format import MessageToDict
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Worker

from bench.lifecycle_raw import RawLifecycleWorkflow, RawOrder, RawStep, raw_step
from core.codec import KeyRing, data_converter
from core.tokens import mint_token
from tests.api.drive import DIAGNOSIS, SERVICE_RECORD
from tests.factories import create_booking_json, create_technician_json
from tests.service import Service

Json = dict[str, Any]
# The ordinary lifecycle of an in-warranty order: no quote to approve.
ACTIONS = (
    "offer/accept",
    "appointment",
    "check-in",
    "diagnosis",
    "service-record",
    "complete",
    "acceptance",
)
RAW_TASK_QUEUE = "bench-raw-lifecycle"
TASK_QUEUE = "bench-repair-orders"
# Default clocks for the measured orders; the history sample (an air conditioner) closes a few
# seconds after acceptance.
SAMPLE_CATEGORY = "air_conditioner"
POLICY = f"""
[warranty.post_repair_by_category]
{SAMPLE_CATEGORY} = "3s"
"""
SKILLS = ["refrigerator", SAMPLE_CATEGORY]
NEXT_YEAR = (datetime.now(UTC) + timedelta(days=365)).date().isoformat()
OFFER_POLL_SECONDS = 0.1
OFFER_WAIT_SECONDS = 120.0
CLOSE_WAIT_SECONDS = 120.0
HTTP_TIMEOUT = 60.0
STOP_SECONDS = 60
TARGETS = {  # the targets, product against raw
    "actions_per_s": ("actions/s >= 0.8x raw steps/s", 0.8, ">="),
    "action_p50": ("action p50 <= 1.3x raw update p50", 1.3, "<="),
    "booking_p50": ("booking p50 <= 1.3x raw start p50", 1.3, "<="),
}
HISTORY_TARGET_BYTES = 40 * 1024


# ---- figures ---------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def latency(values: list[float]) -> Json:
    """Milliseconds."""
    return {
        "count": len(values),
        "p50_ms": percentile(values, 50) * 1000,
        "p90_ms": percentile(values, 90) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": max(values, default=math.nan) * 1000,
        "mean_ms": (sum(values) / len(values) * 1000) if values else math.nan,
    }


@dataclass
class Side:
    """One side of the comparison: what was timed, and what went wrong."""

    orders: int = 0
    completed: int = 0
    wall_s: float = 0.0
    starts: list[float] = field(default_factory=list)  # raw start / product booking
    steps: list[float] = field(default_factory=list)  # raw update / product action
    by_step: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    waits: list[float] = field(default_factory=list)  # product: booking answer -> offer seen
    polls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # the first few errors in full
    sample_ids: list[str] = field(default_factory=list)

    def failed(self, key: str, error: BaseException) -> None:
        self.errors[key] += 1
        if len(self.examples) < 5:
            self.examples.append(error_name(error))

    def figures(self) -> Json:
        wall = self.wall_s or math.nan
        return {
            "orders": self.orders,
            "completed": self.completed,
            "wall_s": self.wall_s,
            "orders_per_s": self.completed / wall,
            "steps_per_s": len(self.steps) / wall,
            "start": latency(self.starts),
            "step": latency(self.steps),
            "by_step": {name: latency(values) for name, values in self.by_step.items()},
            "offer_wait": latency(self.waits) if self.waits else None,
            "polls": self.polls,
            "errors": dict(self.errors),
            "error_examples": self.examples,
        }


def error_name(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:300]}"


# ---- the raw SDK ceiling -------------------------------------------------------------------


async def run_raw(client: Client, orders: int, concurrency: int) -> Side:
    side = Side(orders=orders)
    gate = asyncio.Semaphore(concurrency)
    run = uuid.uuid4().hex[:8]

    async def one(n: int) -> None:
        async with gate:
            stage = "start"
            try:
                began = time.perf_counter()
                handle = await client.start_workflow(
                    RawLifecycleWorkflow.run,
                    RawOrder(order_id=f"raw-{run}-{n}", steps=len(ACTIONS)),
                    id=f"raw-{run}-{n}",
                    task_queue=RAW_TASK_QUEUE,
                )
                side.starts.append(time.perf_counter() - began)
                for seq, action in enumerate(ACTIONS):
                    stage = action
                    began = time.perf_counter()
                    await handle.execute_update(
                        RawLifecycleWorkflow.step, RawStep(seq=seq, action=action)
                    )
                    took = time.perf_counter() - began
                    side.steps.append(took)
                    side.by_step[action].append(took)
                side.completed += 1
                if len(side.sample_ids) < 1:
                    side.sample_ids.append(handle.id)
            except Exception as error:
                side.failed(f"{stage}: {type(error).__name__}", error)

    began = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(orders)))
    side.wall_s = time.perf_counter() - began
    return side


# ---- the product through its HTTP API --------------------------------------------------------


class Refused(Exception):
    """An answer other than the one the lifecycle expects."""

    def __init__(self, what: str, response: httpx.Response) -> None:
        super().__init__(f"{what}: {response.status_code} {response.text[:200]}")
        self.key = f"{what}: HTTP {response.status_code}"


class Tokens:
    """Bearer headers signed with the service's development secret, minted once per party."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.cache: dict[tuple[str, str], dict[str, str]] = {}

    def __call__(self, role: str, technician_id: str = "") -> dict[str, str]:
        key = (role, technician_id)
        if key not in self.cache:
            claims = {"technician_id": technician_id} if technician_id else {}
            token = mint_token(
                self.secret,
                subject=f"bench-{role}",
                role=role,
                ttl=timedelta(hours=6),
                **claims,
            )
            self.cache[key] = {"Authorization": f"Bearer {token}"}
        return self.cache[key]


def booking(category: str = "refrigerator") -> Json:
    """In warranty (bought 100 days ago, with proof): free, so no quote to approve."""
    body = create_booking_json()
    purchased = datetime.now(UTC).date() - timedelta(days=100)
    body["appliance"] = body["appliance"] | {
        "category": category,
        "purchase_date": purchased.isoformat(),
    }
    return body


def visit_window() -> Json:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    return {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}


class Product:
    def __init__(self, api: httpx.AsyncClient, tokens: Tokens) -> None:
        self.api = api
        self.tokens = tokens

    async def register_technicians(self, count: int) -> list[str]:
        ids = []
        for n in range(count):
            technician = create_technician_json(
                id=f"T-BENCH-{n:03d}-{uuid.uuid4().hex[:6].upper()}",
                skills=SKILLS,
                certificates=[
                    {"type": "appliance_repair", "number": f"AR-{n}", "valid_until": NEXT_YEAR}
                ],
            )
            response = await self.api.post(
                "/v1/technicians", json=technician, headers=self.tokens("admin")
            )
            if response.status_code != 201:
                raise Refused("register technician", response)
            ids.append(str(technician["id"]))
        return ids

    async def read(self, order_id: str) -> Json:
        response = await self.api.get(f"/v1/orders/{order_id}", headers=self.tokens("staff"))
        if response.status_code != 200:
            raise Refused("read order", response)
        body: Json = response.json()
        return body

    async def book(self, category: str = "refrigerator") -> Json:
        response = await self.api.post(
            "/v1/orders", json=booking(category), headers=self.tokens("staff")
        )
        if response.status_code != 201:
            raise Refused("book", response)
        created: Json = response.json()
        return created

    async def wait_for_offer(self, order_id: str, side: Side | None = None) -> str:
        """The technician offered the job; raises if the order was escalated instead."""
        deadline = time.monotonic() + OFFER_WAIT_SECONDS
        while True:
            order = await self.read(order_id)
            if side is not None:
                side.polls += 1
            if order["offer"] is not None:
                return str(order["offer"]["technician_id"])
            if order["technician_id"] is not None or order["escalations"]:
                raise RuntimeError(f"not offered: {order['escalations']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no offer after {OFFER_WAIT_SECONDS:.0f}s")
            await asyncio.sleep(OFFER_POLL_SECONDS)

    def steps(self, technician_id: str, customer_token: str) -> list[tuple[str, Json, Any]]:
        technician = self.tokens("technician", technician_id)
        customer = {"Authorization": f"Bearer {customer_token}"}
        return [
            ("offer/accept", technician, None),
            ("appointment", technician, visit_window()),
            ("check-in", technician, None),
            ("diagnosis", technician, DIAGNOSIS),
            ("service-record", technician, SERVICE_RECORD),
            ("complete", technician, None),
            ("acceptance", customer, {"accepted": True, "signature": "bench"}),
        ]

    async def act(self, order_id: str, action: str, headers: Json, body: Any) -> Json:
        response = await self.api.post(
            f"/v1/orders/{order_id}/{action}", json=body, headers=headers
        )
        if response.status_code != 200:
            raise Refused(action, response)
        answer: Json = response.json()
        return answer

    async def drive(self, side: Side | None = None) -> str:
        """One ordinary order from booking to in_warranty, timed into `side`; its id."""
        stage, order_id = "book", ""
        try:
            began = time.perf_counter()
            created = await self.book()
            booked = time.perf_counter()
            if side is not None:
                side.starts.append(booked - began)
            order_id = str(created["order_id"])
            stage = "offer wait"
            technician_id = await self.wait_for_offer(order_id, side)
            if side is not None:
                side.waits.append(time.perf_counter() - booked)
            answer: Json = created
            for action, headers, body in self.steps(technician_id, created["customer_token"]):
                stage = action
                began = time.perf_counter()
                answer = await self.act(order_id, action, headers, body)
                if side is not None:
                    took = time.perf_counter() - began
                    side.steps.append(took)
                    side.by_step[action].append(took)
            if answer["stage"] != "in_warranty":
                stage = "end"
                raise RuntimeError(f"ended {answer['stage']}, not in_warranty")
            return order_id
        except Exception as error:
            key = error.key if isinstance(error, Refused) else f"{stage}: {type(error).__name__}"
            raise Failed(order_id, key, error) from error


class Failed(Exception):
    """An order that did not make it: `key` counts alike failures together."""

    def __init__(self, order_id: str, key: str, error: Exception) -> None:
        super().__init__(f"{order_id or '(not booked)'}: {error_name(error)}")
        self.key = key


async def run_product(product: Product, orders: int, concurrency: int) -> Side:
    side = Side(orders=orders)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            try:
                order_id = await product.drive(side)
            except Failed as failure:
                side.failed(failure.key, failure)
                return
            side.completed += 1
            if len(side.sample_ids) < 1:
                side.sample_ids.append(order_id)

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(orders)))
    side.wall_s = time.perf_counter() - began
    return side


async def closed_sample(product: Product) -> str:
    """One more ordinary order, of the category whose warranty window lasts seconds: its id,
    once it is closed."""
    created = await product.book(SAMPLE_CATEGORY)
    order_id = str(created["order_id"])
    technician_id = await product.wait_for_offer(order_id)
    for action, headers, body in product.steps(technician_id, created["customer_token"]):
        await product.act(order_id, action, headers, body)
    deadline = time.monotonic() + CLOSE_WAIT_SECONDS
    while (stage := (await product.read(order_id))["stage"]) != "closed":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{order_id} is {stage}, not closed, after {CLOSE_WAIT_SECONDS}s")
        await asyncio.sleep(0.5)
    return order_id


# ---- histories -----------------------------------------------------------------------------


def history_figures(history: WorkflowHistory) -> Json:
    """Its size and what it is made of: workflow tasks, activities by type, updates, timers,
    and the bytes (compact JSON) of each kind of event."""
    events = list(history.events)
    kinds: Counter[str] = Counter()
    kind_bytes: Counter[str] = Counter()
    activities: Counter[str] = Counter()
    activity_input_bytes: Counter[str] = Counter()
    for event in events:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
        kinds[kind] += 1
        kind_bytes[kind] += len(json.dumps(MessageToDict(event), separators=(",", ":")))
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            activities[attributes.activity_type.name] += 1
            activity_input_bytes[attributes.activity_type.name] += sum(
                len(p.data) for p in attributes.input.payloads
            )
    compact = json.dumps(history.to_json_dict(), separators=(",", ":"))
    return {
        "workflow_id": history.workflow_id,
        "events": len(events),
        "json_bytes": len(history.to_json().encode()),
        "compact_json_bytes": len(compact.encode()),
        "proto_bytes": History(events=events).ByteSize(),
        "workflow_tasks": kinds["workflow_task_completed"],
        "updates": kinds["workflow_execution_update_completed"],
        "activities": dict(activities),
        "activity_input_bytes": dict(activity_input_bytes),
        "timers_started": kinds["timer_started"],
        "timers_fired": kinds["timer_fired"],
        "timers_canceled": kinds["timer_canceled"],
        "search_attribute_upserts": kinds["upsert_workflow_search_attributes"],
        "event_counts": dict(kinds.most_common()),
        "event_bytes": dict(kind_bytes.most_common()),
    }


async def fetch_history(
    client: Client, workflow_id: str, name: str, kept: dict[str, str] | None = None
) -> Json:
    """The figures of a workflow's history; its JSON kept in `kept` under `name-<id>.json`."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    if kept is not None:
        kept[f"{name}-{workflow_id}.json"] = history.to_json()
    return history_figures(history)


# ---- the service ---------------------------------------------------------------------------


def process_snapshot(pid: int) -> list[tuple[int, bytes]]:
    """The process's direct children, with their command lines (to recognise them later)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == pid:
                children.append((int(entry.name), (entry / "cmdline").read_bytes()))
        except (OSError, ValueError, IndexError):
            continue
    return children


def still_running(pid: int, cmdline: bytes) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline
    except OSError:
        return False


# Command 1's children, told apart by their command lines.
PROCESS_ROLES = (("temporal", b"start-dev"), ("worker", b"worker.py"), ("api", b"-m\x00api"))


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every CPU of the machine spent on anything (not idle, not waiting for I/O)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(service: Service) -> dict[str, float]:
    """CPU seconds used so far by the bench (with its in-process worker), the service's dev
    server, worker and API, and the whole machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds = {"bench": usage.ru_utime + usage.ru_stime, "machine": machine_busy_seconds()}
    if service.process is not None:
        for pid, cmdline in process_snapshot(service.process.pid):
            for role, mark in PROCESS_ROLES:
                if mark in cmdline:
                    with suppress(OSError, ValueError, IndexError):
                        seconds[role] = process_cpu_seconds(pid)
    return seconds


def cpu_used(before: dict[str, float], after: dict[str, float], steps: int) -> Json:
    """Per process: CPU seconds between the two readings, and milliseconds per step; `others`
    is what the rest of the machine (other test runs) used meanwhile."""
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    ours = sum(value for name, value in used.items() if name != "machine")
    used["others"] = max(0.0, used.pop("machine") - ours)
    used["ours"] = ours
    return {
        name: {"cpu_s": value, "ms_per_step": value / steps * 1000 if steps else math.nan}
        for name, value in used.items()
    }


def stop_service(service: Service) -> None:
    """Ctrl-C to command 1, which stops its children in order; if it does not end in time,
    it and the children it started (each in a process group of its own) are killed."""
    process = service.process
    if process is None or process.poll() is not None:
        return
    children = process_snapshot(process.pid)
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pid, cmdline in children:
        if still_running(pid, cmdline):
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@contextmanager
def running_service(data_dir: Path) -> Iterator[Service]:
    policy = data_dir / "policy.toml"
    policy.write_text(POLICY)
    service = Service(data_dir)
    service.env["REPAIRFLOW_POLICY_FILE"] = str(policy)
    service.env["REPAIRFLOW_TASK_QUEUE"] = TASK_QUEUE
    try:
        service.up()
        yield service
    finally:
        stop_service(service)


# ---- the run -------------------------------------------------------------------------------


async def timed(what: str, work: Awaitable[Any]) -> Any:
    print(f"... {what}", flush=True)
    began = time.perf_counter()
    result = await work
    print(f"    done in {time.perf_counter() - began:.1f}s", flush=True)
    return result


async def benchmark(
    service: Service,
    secret: str,
    orders: int,
    concurrency: int,
    technicians: int,
    kept: dict[str, str],
) -> Json:
    """Both sides on the service's dev server; the sampled histories' JSON go into `kept`."""
    # SIGTERM cancels the run, so that the service is stopped on the way out (raising from a
    # plain signal handler could land inside the SDK's machinery and wedge the event loop).
    current = asyncio.current_task()
    if current is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, current.cancel)
    # The service's own converter and key ring (command 1 keeps the ring in its data directory).
    ring = KeyRing.parse((service.data_dir / "payload-keys").read_text())
    client = await Client.connect(
        f"localhost:{service.temporal_port}", data_converter=data_converter(ring)
    )
    async with Worker(
        client,
        task_queue=RAW_TASK_QUEUE,
        workflows=[RawLifecycleWorkflow],
        activities=[raw_step],
    ):
        await timed("raw: one warm-up workflow", run_raw(client, 1, 1))
        cpu_before = cpu_seconds(service)
        raw: Side = await timed(
            f"raw: {orders} workflows, {concurrency} at a time",
            run_raw(client, orders, concurrency),
        )
        raw_cpu = cpu_used(cpu_before, cpu_seconds(service), len(raw.steps))
        raw_history = (
            await fetch_history(client, raw.sample_ids[0], "raw", kept) if raw.sample_ids else None
        )

    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=service.url, timeout=HTTP_TIMEOUT, limits=limits) as http:
        product = Product(http, Tokens(secret))
        await timed(
            f"product: registering {technicians} technicians",
            product.register_technicians(technicians),
        )
        await timed("product: one warm-up order", product.drive())
        cpu_before = cpu_seconds(service)
        side: Side = await timed(
            f"product: {orders} orders, {concurrency} at a time",
            run_product(product, orders, concurrency),
        )
        product_cpu = cpu_used(cpu_before, cpu_seconds(service), len(side.steps))
        in_warranty = (
            await fetch_history(client, side.sample_ids[0], "in_warranty", kept)
            if side.sample_ids
            else None
        )
        closed: Json | None = None
        try:
            closed_id = await timed("product: one more order, to its close", closed_sample(product))
            closed = await fetch_history(client, closed_id, "closed", kept)
        except Exception as error:
            side.failed(f"closed sample: {type(error).__name__}", error)
    return {
        "orders": orders,
        "concurrency": concurrency,
        "technicians": technicians,
        "actions_per_order": list(ACTIONS),
        "temporal_address": f"localhost:{service.temporal_port}",
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "raw": raw.figures(),
        "product": side.figures(),
        "ratios": ratios(raw, side, raw_cpu, product_cpu),
        "cpu": {"raw": raw_cpu, "product": product_cpu},
        "history": {"raw": raw_history, "in_warranty": in_warranty, "closed": closed},
    }


def divide(a: float, b: float) -> float:
    """NaN rather than an error when a side has nothing to show."""
    return a / b if b and not math.isnan(b) else math.nan


def ratios(raw: Side, product: Side, raw_cpu: Json, product_cpu: Json) -> Json:
    r, p = raw.figures(), product.figures()
    return {
        "orders_per_s": divide(p["orders_per_s"], r["orders_per_s"]),
        "actions_per_s": divide(p["steps_per_s"], r["steps_per_s"]),
        "booking_p50": divide(p["start"]["p50_ms"], r["start"]["p50_ms"]),
        "booking_p99": divide(p["start"]["p99_ms"], r["start"]["p99_ms"]),
        "action_p50": divide(p["step"]["p50_ms"], r["step"]["p50_ms"]),
        "action_p99": divide(p["step"]["p99_ms"], r["step"]["p99_ms"]),
        "cpu_per_action": divide(
            product_cpu["ours"]["ms_per_step"], raw_cpu["ours"]["ms_per_step"]
        ),
    }


# ---- the report ------------------------------------------------------------------------------


def report(figures: Json) -> str:
    raw, product, ratio = figures["raw"], figures["product"], figures["ratios"]
    lines = [
        "",
        f"lifecycle: {figures['orders']} orders, {figures['concurrency']} at a time, "
        f"{len(figures['actions_per_order'])} actions each "
        f"({', '.join(figures['actions_per_order'])})",
        f"one dev server ({figures['temporal_address']}); {figures['cpus']} CPUs, load average "
        f"at the end {', '.join(f'{x:.2f}' for x in figures['load_average'])}",
        "",
        f"{'':<30}{'raw SDK':>12}{'product':>12}{'product/raw':>13}",
    ]

    def row(name: str, r: float, p: float, q: float | None = None) -> None:
        ratio_text = f"{q:>12.2f}x" if q is not None else ""
        lines.append(f"{name:<30}{r:>12.1f}{p:>12.1f}{ratio_text}")

    row("orders/s", raw["orders_per_s"], product["orders_per_s"], ratio["orders_per_s"])
    row(
        "actions/s (raw: steps/s)",
        raw["steps_per_s"],
        product["steps_per_s"],
        ratio["actions_per_s"],
    )
    row(
        "booking (raw: start) p50 ms",
        raw["start"]["p50_ms"],
        product["start"]["p50_ms"],
        ratio["booking_p50"],
    )
    row(
        "booking (raw: start) p99 ms",
        raw["start"]["p99_ms"],
        product["start"]["p99_ms"],
        ratio["booking_p99"],
    )
    row(
        "action (raw: update) p50 ms",
        raw["step"]["p50_ms"],
        product["step"]["p50_ms"],
        ratio["action_p50"],
    )
    row(
        "action (raw: update) p99 ms",
        raw["step"]["p99_ms"],
        product["step"]["p99_ms"],
        ratio["action_p99"],
    )
    row("wall s", raw["wall_s"], product["wall_s"])
    lines.append(
        f"{'completed / errors':<30}{raw['completed']:>8} / {sum(raw['errors'].values()):<2}"
        f"{product['completed']:>8} / {sum(product['errors'].values()):<2}"
    )
    for side_name, side in (("raw", raw), ("product", product)):
        for key, count in side["errors"].items():
            lines.append(f"  {side_name} error x{count}: {key}")
        lines += [f"  {side_name} e.g. {example}" for example in side["error_examples"]]
    if product["offer_wait"]:
        wait = product["offer_wait"]
        lines.append(
            f"product offer wait (booking answer -> offer seen, polled every "
            f"{OFFER_POLL_SECONDS * 1000:.0f} ms): p50 {wait['p50_ms']:.0f} ms, "
            f"p99 {wait['p99_ms']:.0f} ms; {product['polls']} reads"
        )
    lines += ["", f"{'per action (ms)':<30}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"]
    for name in figures["actions_per_order"]:
        for side_name, side in (("raw", raw), ("product", product)):
            if name in side["by_step"]:
                f = side["by_step"][name]
                lines.append(
                    f"  {side_name + ' ' + name:<28}{f['p50_ms']:>9.0f}{f['p90_ms']:>9.0f}"
                    f"{f['p99_ms']:>9.0f}{f['max_ms']:>9.0f}"
                )
    lines += [
        "",
        f"{'CPU s in the phase (ms/step)':<30}{'raw SDK':>16}{'product':>16}",
    ]
    cpu = figures["cpu"]
    for name in ("bench", "temporal", "worker", "api", "ours", "others"):
        cells = [
            f"{used[name]['cpu_s']:>7.1f} ({used[name]['ms_per_step']:>5.1f})"
            if name in used
            else f"{'-':>15}"
            for used in (cpu["raw"], cpu["product"])
        ]
        lines.append(f"  {name:<28}" + "".join(f"{c:>16}" for c in cells))
    lines.append(
        f"  product/raw CPU per action: {ratio['cpu_per_action']:.2f}x  (bench: the load "
        "generator, with the in-process raw worker in the raw phase; ours: bench + temporal + "
        "worker + api; others: the rest of the machine meanwhile)"
    )
    lines.append("")
    for name, history in figures["history"].items():
        if history is None:
            lines.append(f"history {name}: none (no order completed)")
            continue
        lines.append(
            f"history {name} ({history['workflow_id']}): {history['json_bytes']:,} bytes as "
            f"to_json() ({history['compact_json_bytes']:,} compact JSON, "
            f"{history['proto_bytes']:,} protobuf), {history['events']} events, "
            f"{history['workflow_tasks']} workflow tasks, {history['updates']} updates, "
            f"activities {history['activities']}, timers {history['timers_started']} started / "
            f"{history['timers_fired']} fired / {history['timers_canceled']} cancelled, "
            f"{history['search_attribute_upserts']} search attribute upserts"
        )
        biggest = list(history["event_bytes"].items())[:5]
        lines.append(
            "  bytes by event (compact): " + ", ".join(f"{kind} {size:,}" for kind, size in biggest)
        )
        lines.append(
            "  activity input bytes: "
            + ", ".join(f"{k} {v:,}" for k, v in history["activity_input_bytes"].items())
        )
    lines += ["", "targets:"]
    for key, (text, limit, sense) in TARGETS.items():
        value = ratio[key]
        met = value >= limit if sense == ">=" else value <= limit
        lines.append(f"  {text}: {value:.2f}x  {'met' if met else 'NOT met'}")
    closed = figures["history"]["closed"]
    if closed is not None:
        met = closed["json_bytes"] < HISTORY_TARGET_BYTES
        lines.append(
            f"  closed ordinary order's history < 40 KB: {closed['json_bytes'] / 1024:.1f} KB  "
            f"{'met' if met else 'NOT met'}"
        )
    return "\n".join(lines)


def clean(value: Any) -> Any:
    """JSON without NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.lifecycle",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument(
        "--technicians", type=int, default=None, help="registered (default: concurrency)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--histories", type=Path, default=None, help="write the sampled histories here"
    )
    args = parser.parse_args(argv)
    technicians = args.technicians or args.concurrency

    def on_term(signum: int, _: object) -> None:
        raise KeyboardInterrupt  # while the service starts: stop it on the way out

    signal.signal(signal.SIGTERM, on_term)
    histories: dict[str, str] = {}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="repairflow-bench-") as tmp,
            running_service(Path(tmp)) as service,
        ):
            print(f"service up: API {service.url}, Temporal localhost:{service.temporal_port}")
            secret = (service.data_dir / "auth-secret").read_text().strip()
            figures = asyncio.run(
                benchmark(service, secret, args.orders, args.concurrency, technicians, histories)
            )
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; the service was stopped", file=sys.stderr)
        return 130
    print(report(figures), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(clean(figures), indent=2) + "\n")
    if args.histories is not None:
        args.histories.mkdir(parents=True, exist_ok=True)
        for name, text in histories.items():
            (args.histories / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
