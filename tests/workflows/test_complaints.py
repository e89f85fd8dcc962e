"""Complaints on the time-skipping test server, with the real business calendar.

A complaint is a child workflow of its order; the order logs its changes, records them and sends
the messages. Time is moved to a Friday 17:30 in Shanghai with `harness.env.sleep`, so deadlines
fall where lifecycle.md says they must.
"""

import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.workflow import UpdateMethodMultiParam

from models.complaint import (
    Complaint,
    ComplaintOutcome,
    FileComplaintInput,
    FollowUpInput,
    ResolveInput,
)
from models.notification import Recipient, Template
from models.order import (
    ActorInput,
    CancelInput,
    ComplaintState,
    ComplaintSummary,
    DiagnosisInput,
    Order,
    OrderOutcome,
    Stage,
    WarrantyStatus,
)
from models.policy import Policy
from tests.factories import create_diagnosis, create_policy, create_quote_request
from tests.harness import (
    ComplaintHandle,
    Handle,
    Harness,
    accept,
    acknowledge,
    arrive,
    assert_refused,
    close,
    customer_of,
    decline_quote,
    details,
    diagnose,
    file_complaint,
    filing,
    follow_up,
    repair,
    resolve,
    sent_eventually,
    settled,
    staff,
    supervisor,
    technician,
)
from tests.waiting import eventually
from workflows.complaint import ComplaintWorkflow
from workflows.repair_order import RepairOrderWorkflow

ArgT = TypeVar("ArgT")
SHANGHAI = ZoneInfo("Asia/Shanghai")
FRIDAY = 4
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def next_friday_evening(now: datetime) -> datetime:
    """The first Friday 17:30 in Shanghai at least a day after `now`."""
    day = now.astimezone(SHANGHAI).date() + timedelta(days=1)
    while day.weekday() != FRIDAY:
        day += timedelta(days=1)
    return datetime.combine(day, time(17, 30), SHANGHAI)


def local_minute(moment: datetime) -> str:
    return f"{moment.astimezone(SHANGHAI):%a %Y-%m-%d %H:%M}"


def at_local(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI)


async def sleep_until(harness: Harness, moment: datetime) -> None:
    await harness.env.sleep(moment - await harness.now())


async def file_on_friday_evening(
    harness: Harness, policy: Policy | None = None
) -> tuple[Handle, ComplaintHandle, datetime]:
    handle = await harness.book(policy=policy)
    friday = next_friday_evening(await harness.now())
    await sleep_until(harness, friday)
    return handle, await file_complaint(harness, handle), friday


async def complaint_of(handle: ComplaintHandle) -> Complaint:
    return await handle.query(ComplaintWorkflow.details)


async def complaint_eventually(
    handle: ComplaintHandle, expected: Callable[[Complaint], bool]
) -> Complaint:
    return await eventually(
        lambda: complaint_of(handle),
        expected,
        explain=lambda complaint: f"the complaint is at {complaint.timeline}",
    )


async def order_shows(order: Handle, complaint: ComplaintHandle) -> ComplaintSummary:
    """The order's summary of the complaint once it matches the complaint itself."""

    async def both() -> tuple[ComplaintSummary, Order]:
        current = await complaint_of(complaint)
        summary = ComplaintSummary(
            complaint_id=complaint.id,
            state=current.state,
            tier=current.tier,
            filed_at=current.filed_at,
        )
        return summary, await details(order)

    summary, _ = await eventually(
        both,
        lambda shown: shown[0] in shown[1].complaints,
        explain=lambda shown: f"the order never showed {shown[0]}",
    )
    return summary


async def assert_complaint_refused(
    handle: ComplaintHandle,
    update: UpdateMethodMultiParam[[ComplaintWorkflow, ArgT], Complaint],
    arg: ArgT,
    error_type: str,
    reason: str,
) -> None:
    """The update fails with `error_type` naming `reason`, and the complaint is unchanged."""
    before = await complaint_of(handle)
    with pytest.raises(WorkflowUpdateFailedError) as refusal:
        await handle.execute_update(update, arg, id=f"refused-{uuid.uuid4().hex}")
    cause = refusal.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == error_type, cause
    assert reason in cause.message
    assert await complaint_of(handle) == before


class TestFirstReplyDeadline:
    async def test_friday_evening_complaint_escalates_saturday_evening_with_daily_hours(
        self, harness: Harness
    ) -> None:
        """Monday-to-Sunday hours: one working day from Friday 17:30 ends Saturday 17:30, when
        the complaint climbs to a supervisor, who is told, and the order shows it."""
        order, complaint, friday = await file_on_friday_evening(harness)
        filed = await complaint_of(complaint)
        assert (filed.state, filed.tier) == (ComplaintState.OPEN, 1)
        saturday = at_local(friday.date() + timedelta(days=1), 17, 30)
        assert local_minute(filed.deadlines.first_reply) == local_minute(saturday)
        assert local_minute(filed.deadlines.resolution) == local_minute(
            at_local(friday.date() + timedelta(days=3), 17, 30)
        )

        await sleep_until(harness, saturday - timedelta(minutes=2))
        assert (await complaint_of(complaint)).tier == 1
        await harness.env.sleep(timedelta(minutes=4))
        escalated = await complaint_eventually(complaint, lambda c: c.tier == 2)
        assert escalated.state == ComplaintState.OPEN
        assert escalated.timeline[-1].action == "escalated"
        assert saturday <= escalated.timeline[-1].at < saturday + timedelta(minutes=1)

        shown_summary = await order_shows(order, complaint)
        assert (shown_summary.state, shown_summary.tier) == (ComplaintState.OPEN, 2)
        assert shown_summary.filed_at == (await complaint_of(complaint)).filed_at
        shown = await details(order)
        assert shown.escalations[-1].to == "supervisor"
        assert shown.escalations[-1].reason == "complaint_first_reply_overdue"
        entry = next(e for e in shown.timeline if e.action == "complaint escalated")
        assert entry.detail.startswith(f"{complaint.id}: to tier 2 (supervisor)")
        told = [
            m
            for m in harness.records.messages(Template.ESCALATION, order.id)
            if m.params.get("complaint_id") == complaint.id
        ]
        assert [m.recipient for m in told] == [Recipient.SUPERVISOR]

    async def test_with_weekday_hours_it_escalates_monday_evening(self, harness: Harness) -> None:
        _, complaint, friday = await file_on_friday_evening(
            harness, create_policy(business_hours={"days": WEEKDAYS})
        )
        monday = at_local(friday.date() + timedelta(days=3), 17, 30)
        assert local_minute((await complaint_of(complaint)).deadlines.first_reply) == (
            local_minute(monday)
        )
        await sleep_until(harness, monday - timedelta(minutes=2))
        assert (await complaint_of(complaint)).tier == 1
        await harness.env.sleep(timedelta(minutes=4))
        escalated = await complaint_eventually(complaint, lambda c: c.tier == 2)
        assert monday <= escalated.timeline[-1].at < monday + timedelta(minutes=1)

    async def test_a_public_holiday_in_between_moves_it_a_day(self, harness: Harness) -> None:
        """Weekdays only and Monday a holiday: Friday 17:30 is due Tuesday 17:30."""
        friday = next_friday_evening(await harness.now())
        monday = friday.date() + timedelta(days=3)
        policy = create_policy(business_hours={"days": WEEKDAYS, "holidays": [monday.isoformat()]})
        handle = await harness.book(policy=policy)
        await sleep_until(harness, friday)
        complaint = await file_complaint(harness, handle)
        tuesday = at_local(monday + timedelta(days=1), 17, 30)
        assert local_minute((await complaint_of(complaint)).deadlines.first_reply) == (
            local_minute(tuesday)
        )
        await sleep_until(harness, tuesday - timedelta(minutes=2))
        assert (await complaint_of(complaint)).tier == 1
        await harness.env.sleep(timedelta(minutes=4))
        await complaint_eventually(complaint, lambda c: c.tier == 2)

    async def test_escalation_stops_at_the_third_tier(self, harness: Harness) -> None:
        """Nobody answers for ten days: tier 2 on Saturday, tier 3 on Sunday, then both
        deadlines are recorded overdue at the top tier, and it climbs no further."""
        order, complaint, _ = await file_on_friday_evening(harness)
        await harness.env.sleep(timedelta(days=10))
        stuck = await complaint_eventually(complaint, lambda c: len(c.overdue) == 2)
        assert (stuck.state, stuck.tier) == (ComplaintState.OPEN, 3)
        assert [e.action for e in stuck.timeline] == [
            "filed",
            "escalated",
            "escalated",
            "overdue",
            "overdue",
        ]
        shown = await settled(order)
        complaint_escalations = [
            (e.reason, e.to) for e in shown.escalations if e.reason.startswith("complaint")
        ]
        assert complaint_escalations[:2] == [
            ("complaint_first_reply_overdue", "supervisor"),
            ("complaint_first_reply_overdue", "quality_manager"),
        ]
        # Both fall due on Monday evening, within moments of each other, at the top tier.
        assert sorted(complaint_escalations[2:]) == [
            ("complaint_first_reply_overdue", "quality_manager"),
            ("complaint_resolution_overdue", "quality_manager"),
        ]
        await harness.env.sleep(timedelta(days=5))
        assert (await complaint_of(complaint)).timeline == stuck.timeline


class TestWorkingAComplaint:
    async def test_staff_may_not_acknowledge_a_tier_2_complaint(self, harness: Harness) -> None:
        _, complaint, _ = await file_on_friday_evening(harness)
        await harness.env.sleep(timedelta(days=1, minutes=5))
        await complaint_eventually(complaint, lambda c: c.tier == 2)
        await assert_complaint_refused(
            complaint,
            ComplaintWorkflow.acknowledge,
            ActorInput(actor=staff()),
            "Forbidden",
            "tier 2",
        )
        acknowledged = await acknowledge(complaint, supervisor())
        assert acknowledged.state == ComplaintState.ACKNOWLEDGED

    async def test_acknowledging_twice_is_refused(self, harness: Harness) -> None:
        order = await harness.book()
        complaint = await file_complaint(harness, order)
        first = await acknowledge(complaint, staff())
        assert first.state == ComplaintState.ACKNOWLEDGED
        assert first.acknowledged_at is not None
        await assert_complaint_refused(
            complaint,
            ComplaintWorkflow.acknowledge,
            ActorInput(actor=staff()),
            "ActionRefused",
            "the first reply was already given",
        )

    async def test_acknowledged_complaint_escalates_when_resolution_is_late(
        self, harness: Harness
    ) -> None:
        """Replied to, but not resolved within three working days of filing: it climbs."""
        _, complaint, friday = await file_on_friday_evening(harness)
        await acknowledge(complaint, staff())
        due = at_local(friday.date() + timedelta(days=3), 17, 30)
        await sleep_until(harness, due - timedelta(minutes=2))
        assert (await complaint_of(complaint)).tier == 1
        await harness.env.sleep(timedelta(minutes=4))
        late = await complaint_eventually(complaint, lambda c: c.tier == 2)
        assert late.state == ComplaintState.ACKNOWLEDGED
        assert late.timeline[-1].detail == "to tier 2 (supervisor): resolution deadline passed"

    async def test_customer_of_another_order_may_not_follow_up(self, harness: Harness) -> None:
        order = await harness.book()
        complaint = await file_complaint(harness, order)
        await resolve(complaint, staff())
        await assert_complaint_refused(
            complaint,
            ComplaintWorkflow.follow_up,
            FollowUpInput(actor=customer_of(f"{order.id}X"), satisfied=True),
            "Forbidden",
            "not this customer's complaint",
        )

    async def test_follow_up_before_resolution_is_refused(self, harness: Harness) -> None:
        order = await harness.book()
        complaint = await file_complaint(harness, order)
        await assert_complaint_refused(
            complaint,
            ComplaintWorkflow.follow_up,
            FollowUpInput(actor=customer_of(order.id), satisfied=True),
            "ActionRefused",
            "called back once resolved",
        )

    async def test_unsatisfied_follow_up_reopens_one_tier_higher(self, harness: Harness) -> None:
        order = await harness.book()
        complaint = await file_complaint(harness, order)
        resolved = await resolve(complaint, staff(), compensation=Decimal("88.50"))
        assert (resolved.state, resolved.compensation) == (
            ComplaintState.RESOLVED,
            Decimal("88.50"),
        )
        before = await harness.now()
        reopened = await follow_up(complaint, order.id, satisfied=False)
        assert (reopened.state, reopened.tier) == (ComplaintState.OPEN, 2)
        assert reopened.resolution is None
        assert reopened.deadlines.first_reply > before + timedelta(hours=8)
        # Staff no longer hold it; the supervisor does.
        await assert_complaint_refused(
            complaint,
            ComplaintWorkflow.resolve,
            ResolveInput(actor=staff(), resolution="again"),
            "Forbidden",
            "tier 2",
        )
        shown_summary = await order_shows(order, complaint)
        assert (shown_summary.state, shown_summary.tier) == (ComplaintState.OPEN, 2)
        assert shown_summary.filed_at == (await complaint_of(complaint)).filed_at
        reopen = next(e for e in (await details(order)).escalations if e.reason.endswith("opened"))
        assert reopen.to == "supervisor"

        await close(complaint, order.id)
        assert await complaint.result() == ComplaintOutcome(
            complaint_id=complaint.id, state=ComplaintState.CLOSED, tier=2
        )
        told = await sent_eventually(harness, Template.COMPLAINT_UPDATE, order.id, count=4)
        assert [m.params["update"] for m in told] == ["resolved", "reopened", "resolved", "closed"]
        assert {m.recipient for m in told} == {Recipient.CUSTOMER}

    async def test_every_change_reaches_the_records_store_with_the_complaint(
        self, harness: Harness
    ) -> None:
        order = await harness.book()
        complaint = await file_complaint(harness, order)
        await acknowledge(complaint, staff())
        await close(complaint, order.id)
        await complaint.result()
        await order_shows(order, complaint)
        await settled(order)
        rows = [w.complaint for w in harness.records.written if w.complaint is not None]
        assert [(r.state, r.tier) for r in rows] == [
            (ComplaintState.OPEN, 1),
            (ComplaintState.ACKNOWLEDGED, 1),
            (ComplaintState.RESOLVED, 1),
            (ComplaintState.CLOSED, 1),
        ]
        assert rows[-1].concerns_work is True
        assert rows[-1].closed_at is not None
        seqs = [w.event.seq for w in harness.records.written]
        assert seqs == list(range(1, len(seqs) + 1))


class TestTheOrderWaits:
    async def test_window_ending_with_a_complaint_open_keeps_the_order_open(
        self, harness: Harness
    ) -> None:
        policy = create_policy(warranty={"post_repair": "2d"})
        order = await harness.book(policy=policy)
        await repair(harness, order)
        await accept(order)
        complaint = await file_complaint(harness, order)
        await harness.env.sleep(timedelta(days=3))
        waiting = await settled(order)
        assert waiting.stage == Stage.IN_WARRANTY
        assert waiting.timeline[-1].action != "stage:closed"
        assert any(e.action == "window ended" for e in waiting.timeline)
        assert (await order.describe()).status == WorkflowExecutionStatus.RUNNING

        await close(complaint, order.id)
        assert await order.result() == OrderOutcome(order_id=order.id, stage=Stage.CLOSED)
        last = (await details(order)).timeline[-1]
        assert (last.action, last.detail) == ("stage:closed", "warranty window ended")

    async def test_declined_quote_with_a_complaint_open_closes_when_it_is_closed(
        self, harness: Harness
    ) -> None:
        order = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await arrive(harness, order)
        complaint = await file_complaint(harness, order)
        await diagnose(order, quote=create_quote_request())
        ending = await decline_quote(order)
        assert ending.stage == Stage.ON_SITE
        assert ending.closing == "quote declined: nothing repaired"
        await assert_refused(
            order,
            RepairOrderWorkflow.diagnose,
            DiagnosisInput(actor=technician(), diagnosis=create_diagnosis()),
            "ActionRefused",
            "closes once complaints are closed",
        )
        await close(complaint, order.id)
        assert (await order.result()).stage == Stage.CLOSED
        assert (await details(order)).warranty_window_ends_at is None

    async def test_cancelled_order_stays_open_to_its_complaint(self, harness: Harness) -> None:
        order = await harness.book()
        complaint = await file_complaint(harness, order, actor=staff())
        await order.execute_update(
            RepairOrderWorkflow.cancel, CancelInput(actor=staff(), reason="customer moved away")
        )
        await settled(order)
        assert (await order.describe()).status == WorkflowExecutionStatus.RUNNING
        await assert_refused(
            order,
            RepairOrderWorkflow.file_complaint,
            FileComplaintInput(actor=staff(), filing=filing()),
            "ActionRefused",
            "the order is finished",
        )
        await close(complaint, order.id)
        assert (await order.result()).stage == Stage.CANCELLED

    async def test_complaints_are_numbered_per_order(self, harness: Harness) -> None:
        order = await harness.book()
        first = await file_complaint(harness, order)
        second = await file_complaint(harness, order, actor=staff())
        assert (first.id, second.id) == (f"{order.id}-C1", f"{order.id}-C2")
        assert (await second.describe()).parent_id == order.id
        shown = await details(order)
        assert [c.complaint_id for c in shown.complaints] == [first.id, second.id]

    async def test_technician_may_not_file_a_complaint(self, harness: Harness) -> None:
        order = await harness.book()
        await settled(order)
        await assert_refused(
            order,
            RepairOrderWorkflow.file_complaint,
            FileComplaintInput(actor=technician(), filing=filing()),
            "Forbidden",
            "role technician may not",
        )
