"""Recorded histories of representative orders must keep replaying against the current code.

Orders live for months, so a change to the workflow that no longer replays an order's history
would strand every order of that shape in production. `tests/histories/` holds one history per
workflow of each scenario below; regenerate them (only on purpose, after an intended and
versioned change) with

    REPAIRFLOW_RECORD_HISTORIES=1 .venv/bin/python -m pytest tests/workflows/test_replay.py

The recorded workflow id of each history is its file name without `.json`.
"""

import asyncio
import os
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHistory
from temporalio.worker import Replayer

from core.temporal import converter
from models.complaint import AfterClose, ComplaintInput
from models.notification import Contact
from models.order import (
    ActorInput,
    CancelInput,
    ComplaintState,
    HazardInput,
    NoteInput,
    PartRequest,
    PartsInput,
    QuoteItem,
    QuoteRequest,
    ReasonInput,
    Stage,
    WarrantyStatus,
)
from models.policy import Policy, Weekday
from models.technician import Schedule, Shift
from tests.factories import (
    create_appliance,
    create_booking,
    create_candidate,
    create_order_input,
    create_policy,
    create_quote_request,
)
from tests.harness import (
    TECHNICIAN,
    Handle,
    Harness,
    accept,
    acknowledge,
    assign,
    check_in,
    claim,
    close,
    confirm_appointment,
    customer_of,
    decline_quote,
    diagnose,
    file_complaint,
    filing,
    finish,
    follow_up,
    order_eventually,
    order_harness,
    reject,
    repair,
    resolve,
    staff,
    supervisor,
    technician,
)
from tests.servers import start_time_skipping_server
from workflows.complaint import ComplaintWorkflow
from workflows.registry import WORKFLOWS
from workflows.repair_order import RepairOrderWorkflow

HISTORIES = Path(__file__).parent.parent / "histories"
UNREPLAYABLE = (
    HISTORIES / "unreplayable"
)  # the wedged orders of tests/workflows/test_replay_clock.py
RECORDING = os.environ.get("REPAIRFLOW_RECORD_HISTORIES") == "1"

Scenario = Callable[[Harness], Awaitable[list[Handle]]]


async def book(harness: Harness, order_id: str, warranty: WarrantyStatus) -> Handle:
    """An order with a fixed id (the history's file name), booked now on the server's clock."""
    now = await harness.now()
    booking = create_booking(appliance=create_appliance(warranty, booked_on=now.date()))
    return await harness.start(
        create_order_input(order_id, booked_at=now, booking=booking, policy=create_policy())
    )


async def happy_path(harness: Harness) -> list[Handle]:
    """Out of warranty: assigned, appointment, quote approved, repaired, accepted, closed."""
    handle = await book(harness, "happy_path", WarrantyStatus.OUT_OF_WARRANTY)
    await repair(harness, handle, quote=create_quote_request())
    await accept(handle)
    return [handle]


async def stalled_write(harness: Harness) -> list[Handle]:
    """The records store refuses event 2 once: the order's writes stall, are tried again after
    the pause while the repair goes on, and the order closes with every event written."""
    harness.records.refused.add(2)
    handle = await book(harness, "stalled_write", WarrantyStatus.IN_WARRANTY)
    await repair(harness, handle)
    await accept(handle)
    return [handle]


async def rework(harness: Harness) -> list[Handle]:
    """In warranty: the first repair is rejected, redone, accepted, and the order closes."""
    handle = await book(harness, "rework", WarrantyStatus.IN_WARRANTY)
    await repair(harness, handle)
    await reject(handle)
    await finish(handle)
    await accept(handle)
    return [handle]


async def quote_declined(harness: Harness) -> list[Handle]:
    """Out of warranty: the customer declines the quote; the visit fee, and closed."""
    handle = await book(harness, "quote_declined", WarrantyStatus.OUT_OF_WARRANTY)
    await assign(handle)
    await confirm_appointment(harness, handle)
    await check_in(handle)
    await diagnose(handle, quote=create_quote_request())
    await decline_quote(handle)
    return [handle]


async def warranty_claim(harness: Harness) -> list[Handle]:
    """A claim on day 89 is repaired for free; the original closes once that is accepted."""
    original = await book(harness, "warranty_claim", WarrantyStatus.IN_WARRANTY)
    await repair(harness, original)
    await accept(original)
    await harness.env.sleep(timedelta(days=89))
    created = await claim(original)
    claim_order = harness.handle(created.claim_order_id)
    await assign(claim_order)
    await check_in(claim_order)
    await diagnose(claim_order)
    await finish(claim_order)
    await harness.env.sleep(timedelta(days=2))
    await accept(claim_order, actor=customer_of(original.id))
    return [original, claim_order]


async def cancellation(harness: Harness) -> list[Handle]:
    """Out of warranty: cancelled after the appointment was confirmed, for the visit fee."""
    handle = await book(harness, "cancellation", WarrantyStatus.OUT_OF_WARRANTY)
    await assign(handle)
    await confirm_appointment(harness, handle)
    await handle.execute_update(
        RepairOrderWorkflow.cancel, CancelInput(actor=staff(), reason="fixed it myself")
    )
    return [handle]


async def offer_accepted(harness: Harness) -> list[Handle]:
    """Dispatched by offers: the first technician declines, the next accepts and repairs."""
    harness.records.candidates = [create_candidate("T-300"), create_candidate(TECHNICIAN)]
    handle = await book(harness, "offer_accepted", WarrantyStatus.IN_WARRANTY)
    await order_eventually(handle, lambda o: o.offer is not None)
    await handle.execute_update(
        RepairOrderWorkflow.decline_offer,
        ReasonInput(actor=technician("T-300"), reason="on leave"),
    )
    await order_eventually(
        handle, lambda o: o.offer is not None and o.offer.technician_id == TECHNICIAN
    )
    await handle.execute_update(RepairOrderWorkflow.accept_offer, ActorInput(actor=technician()))
    await confirm_appointment(harness, handle)
    await check_in(handle)
    await diagnose(handle)
    await finish(handle)
    await accept(handle)
    return [handle]


async def complaint(harness: Harness) -> list[Handle]:
    """A complaint escalates unanswered, is resolved twice (the first answer does not satisfy),
    closes, and the repaired order closes after its window."""
    order = await book(harness, "complaint", WarrantyStatus.IN_WARRANTY)
    complaint = await file_complaint(harness, order)
    await harness.env.sleep(timedelta(days=2))
    await acknowledge(complaint, supervisor())
    await resolve(complaint, supervisor(), compensation=Decimal("50.00"))
    await follow_up(complaint, order.id, satisfied=False)
    await close(complaint, order.id)
    await repair(harness, order)
    await accept(order)
    return [order, complaint]  # type: ignore[list-item]


async def site_news(harness: Harness) -> list[Handle]:
    """In warranty, the customer kept informed: the visit two days ahead is reminded the day
    before; on site parts are awaited, the appliance goes to the workshop and back, work stops
    for a hazard until a supervisor clears it; repaired, accepted, closed."""
    handle = await book(harness, "site_news", WarrantyStatus.IN_WARRANTY)
    await assign(handle)
    await confirm_appointment(harness, handle, in_hours=48)
    await harness.env.sleep(timedelta(hours=47))
    await check_in(handle)
    parts = (PartRequest(part_no="TH-220", qty=1),)
    await handle.execute_update(
        RepairOrderWorkflow.request_parts, PartsInput(actor=technician(), parts=parts)
    )
    await handle.execute_update(RepairOrderWorkflow.parts_arrived, ActorInput(actor=staff()))
    await handle.execute_update(RepairOrderWorkflow.to_workshop, ActorInput(actor=technician()))
    await handle.execute_update(
        RepairOrderWorkflow.back_from_workshop, ActorInput(actor=technician())
    )
    await handle.execute_update(
        RepairOrderWorkflow.report_hazard, HazardInput(actor=technician(), description="smoke")
    )
    await handle.execute_update(
        RepairOrderWorkflow.clear_hazard, NoteInput(actor=supervisor(), note="cleared")
    )
    await diagnose(handle)
    await finish(handle)
    await accept(handle)
    return [handle]


async def extras_declined(harness: Harness) -> list[Handle]:
    """In warranty: quoted extras off the price list, authorized by a supervisor, re-quoted by a
    new diagnosis, declined by the customer; the free repair goes on, is accepted and closes."""
    handle = await book(harness, "extras_declined", WarrantyStatus.IN_WARRANTY)
    await assign(handle)
    await check_in(handle)
    off_list = QuoteRequest(items=(QuoteItem(description="descale", amount=Decimal("60")),))
    await diagnose(handle, quote=off_list)
    await handle.execute_update(RepairOrderWorkflow.authorize_quote, ActorInput(actor=supervisor()))
    await diagnose(handle, quote=create_quote_request())
    await decline_quote(handle)
    await finish(handle)
    await accept(handle)
    return [handle]


async def complaint_after_close(harness: Harness) -> list[Handle]:
    """A complaint on a cancelled order, a week after: it records itself and sends its own
    messages; acknowledged, resolved, the customer satisfied, closed."""
    order = await book(harness, "complaint_after_close", WarrantyStatus.IN_WARRANTY)
    await order.execute_update(
        RepairOrderWorkflow.cancel, CancelInput(actor=staff(), reason="fixed it myself")
    )
    await order_eventually(order, lambda o: o.stage == Stage.CANCELLED)
    await harness.env.sleep(timedelta(days=7))
    cancelled = await order.query(RepairOrderWorkflow.details)
    complaint_id = f"{order.id}-C1"
    complaint = await harness.env.client.start_workflow(
        ComplaintWorkflow.run,
        ComplaintInput(
            complaint_id=complaint_id,
            order_id=order.id,
            filing=filing(),
            filed_by=customer_of(order.id),
            filed_at=await harness.now(),
            technician_id=None,
            policy=create_policy(),
            after_close=AfterClose(
                customer=Contact(phone=cancelled.customer.phone, email=cancelled.customer.email)
            ),
        ),
        id=complaint_id,
        task_queue=harness.task_queue,
    )
    harness.started.insert(0, complaint_id)
    await acknowledge(complaint, staff())
    await resolve(complaint, staff())
    await follow_up(complaint, order.id, satisfied=True)
    return [order, complaint]  # type: ignore[list-item]


async def offer_after_the_weekend(harness: Harness) -> list[Handle]:
    """Booked on a Saturday night with technicians on shift Monday to Friday: the order waits
    for Monday 09:00, the offer runs on shift time, is accepted and the repair closes."""
    office = Schedule(shifts=(Shift(days=tuple(Weekday)[:5], start=time(9), end=time(18)),))
    harness.records.candidates = [create_candidate(TECHNICIAN, schedule=office)]
    zone = ZoneInfo(Policy().timezone)
    day = (await harness.now()).astimezone(zone).date() + timedelta(days=1)
    while day.weekday() != 5:
        day += timedelta(days=1)
    await harness.env.sleep(datetime.combine(day, time(23), zone) - await harness.now())
    handle = await book(harness, "offer_after_the_weekend", WarrantyStatus.IN_WARRANTY)
    await harness.env.sleep(timedelta(days=1, hours=10, minutes=5))
    await order_eventually(handle, lambda o: o.offer is not None)
    await handle.execute_update(RepairOrderWorkflow.accept_offer, ActorInput(actor=technician()))
    await check_in(handle)
    await diagnose(handle)
    await finish(handle)
    await accept(handle)
    return [handle]


SCENARIOS: dict[str, Scenario] = {
    "offer_accepted": offer_accepted,
    "happy_path": happy_path,
    "rework": rework,
    "quote_declined": quote_declined,
    "warranty_claim": warranty_claim,
    "cancellation": cancellation,
    "complaint": complaint,
    "stalled_write": stalled_write,
    "site_news": site_news,
    "extras_declined": extras_declined,
    "complaint_after_close": complaint_after_close,
    "offer_after_the_weekend": offer_after_the_weekend,
}
FINAL = {"cancellation": Stage.CANCELLED, "complaint_after_close": Stage.CANCELLED}


def recorded() -> list[Path]:
    """Every history kept, those recorded with earlier code in folders named after what has
    changed since (one-event-writes: before records events were written in batches;
    messages-as-activities: before messages were sent as local activities; ...; see the
    README's "Changing workflow code")."""
    return sorted(path for path in HISTORIES.rglob("*.json") if UNREPLAYABLE not in path.parents)


async def run_to_the_end(harness: Harness, handle: Handle, *, booked_here: bool) -> None:
    """Skip time until the order has finished.

    A handle from `start_workflow` skips time while awaiting its result; one on a child (a
    claim order) does not, so time is moved a day at a time until that order closes.
    """
    if booked_here:
        await handle.result()
        return
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        with suppress(TimeoutError):
            await asyncio.wait_for(harness.env.sleep(timedelta(days=1)), timeout=2)


class TestRecordHistories:
    @pytest.mark.skipif(not RECORDING, reason="set REPAIRFLOW_RECORD_HISTORIES=1 to record")
    @pytest.mark.parametrize("scenario", SCENARIOS)
    async def test_record_scenario(self, scenario: str) -> None:
        """Each scenario's orders run to their end; every workflow's history is written out."""
        # A time-skipping server of the scenario's own: the test server stops skipping time for
        # good once an abandoned child outlives its closed parent (the claim order of
        # `warranty_claim`), so no scenario shares one with another.
        async with (
            await start_time_skipping_server() as env,
            order_harness(env, workflows=WORKFLOWS) as harness,
        ):
            handles = await SCENARIOS[scenario](harness)
            histories = {}
            for index, handle in enumerate(handles):  # the order the scenario booked first
                await run_to_the_end(harness, handle, booked_here=index == 0)
                if handle.id.startswith(f"{scenario}-C"):
                    complaint = env.client.get_workflow_handle_for(ComplaintWorkflow.run, handle.id)
                    assert (await complaint.result()).state == ComplaintState.CLOSED
                else:
                    order = await handle.query(RepairOrderWorkflow.details)
                    assert order.stage == FINAL.get(scenario, Stage.CLOSED)
                histories[handle.id] = (await handle.fetch_history()).to_json()
        HISTORIES.mkdir(exist_ok=True)
        for stale in HISTORIES.glob("*.json"):
            if stale.stem == scenario or stale.stem.startswith(f"{scenario}-"):
                stale.unlink()
        for workflow_id, history in histories.items():
            (HISTORIES / f"{workflow_id}.json").write_text(history + "\n")


class TestReplay:
    @pytest.mark.parametrize(
        "path", recorded(), ids=lambda path: str(path.relative_to(HISTORIES).with_suffix(""))
    )
    async def test_recorded_history_replays(self, path: Path) -> None:
        """An order recorded with earlier code replays on the current code without a difference."""
        history = WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))
        replayer = Replayer(workflows=WORKFLOWS, data_converter=converter())
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"

    def test_every_scenario_has_a_recorded_history(self) -> None:
        """Deleting a scenario's history cannot make the replay gate pass by having less to do."""
        stems = {path.stem for path in recorded()}
        missing = [name for name in SCENARIOS if name not in stems]
        assert not missing, f"no recorded history for {missing}; record them (see module doc)"
        assert "warranty_claim-W1" in stems, "the claim order of warranty_claim is not recorded"
        assert "complaint-C1" in stems, "the complaint of the complaint scenario is not recorded"
        assert "complaint_after_close-C1" in stems, "the complaint on a closed order is missing"
