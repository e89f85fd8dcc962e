"""The offer loop on the time-skipping server, ranking a real SQLite registry."""

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.dispatch import DispatchActivities
from core.db import create_engine, prepare_schema
from models.catalog import Category
from models.notification import Recipient, Template
from models.order import (
    ActorInput,
    CancelInput,
    Clock,
    Priority,
    ReasonInput,
    Stage,
    TimeWindow,
    WindowInput,
)
from models.records import OrderRow, TechnicianRow
from tests.factories import ROUND_THE_CLOCK, create_actor, create_policy
from tests.harness import (
    Handle,
    Harness,
    act,
    assert_refused,
    customer_of,
    details,
    order_eventually,
    order_harness,
    sent_eventually,
    settled,
    technician,
)
from tests.waiting import eventually
from workflows.repair_order import RepairOrderWorkflow

VALID = date(2099, 1, 1)  # the shared test server's clock runs years ahead


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'records.db'}")
    await prepare_schema(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def harness(
    time_skipping_env: WorkflowEnvironment, registry: AsyncEngine
) -> AsyncIterator[Harness]:
    """The order harness ranking the real registry."""
    async with order_harness(
        time_skipping_env, find_candidates=DispatchActivities(registry).find_candidates
    ) as harness:
        yield harness


async def register(
    registry: AsyncEngine,
    technician_id: str,
    *,
    region: str = "pudong",
    gas_valid_until: date = VALID,
    skills: tuple[str, ...] = ("refrigerator", "gas_stove"),
    open_orders: int = 0,
) -> None:
    now = datetime.now(UTC)
    async with AsyncSession(registry) as session, session.begin():
        session.add(
            TechnicianRow(
                id=technician_id,
                name="Zhang San",
                phone="+86 139 0000 1111",
                skills=list(skills),
                regions=[region],
                certificates=[
                    {"type": "appliance_repair", "number": "A-1", "valid_until": VALID.isoformat()},
                    {"type": "gas", "number": "G-1", "valid_until": gas_valid_until.isoformat()},
                ],
                shifts=ROUND_THE_CLOCK,  # on duty whenever the test runs
                created_at=now,
                updated_at=now,
            )
        )
        for n in range(open_orders):
            session.add(
                OrderRow(
                    order_id=f"RF000000-{technician_id}-{n}",
                    stage="on_site",
                    priority="normal",
                    channel="phone",
                    category="refrigerator",
                    region=region,
                    technician_id=technician_id,
                    warranty_status="in_warranty",
                    currency="CNY",
                    total=Decimal("0.00"),
                    booked_at=now,
                    updated_at=now,
                )
            )


async def offered_to(handle: Handle, technician_id: str) -> None:
    await order_eventually(
        handle, lambda o: o.offer is not None and o.offer.technician_id == technician_id
    )


async def decline(handle: Handle, technician_id: str) -> None:
    await handle.execute_update(
        RepairOrderWorkflow.decline_offer,
        ReasonInput(actor=technician(technician_id), reason="too far today"),
    )


class TestRanking:
    async def test_best_ranked_qualified_technician_is_offered_first(
        self, harness: Harness, registry: AsyncEngine
    ) -> None:
        """Local before far, idle before busy: the idle local technician gets the offer."""
        await register(registry, "T-FAR", region="minhang")
        await register(registry, "T-BUSY", open_orders=2)
        await register(registry, "T-IDLE")
        handle = await harness.book()
        await offered_to(handle, "T-IDLE")
        offer = await sent_eventually(harness, Template.JOB_OFFERED, handle.id)
        assert offer[0].to.technician_id == "T-IDLE"
        assert offer[0].params["category"] == "refrigerator"
        assert offer[0].params["deadline"]

    async def test_expired_gas_certificate_is_never_offered_a_gas_stove(
        self, harness: Harness, registry: AsyncEngine
    ) -> None:
        """A gas certificate expired before the visit day rules a technician out for good."""
        await register(registry, "T-EXPIRED", gas_valid_until=date(2020, 1, 1))
        await register(registry, "T-VALID", open_orders=3)
        handle = await harness.book(category=Category.GAS_STOVE)
        await offered_to(handle, "T-VALID")
        await decline(handle, "T-VALID")
        order = await order_eventually(handle, lambda o: bool(o.escalations))
        assert order.offered == ["T-VALID"]
        assert [e.reason for e in order.escalations] == ["no_technician"]
        offers = harness.records.messages(Template.JOB_OFFERED, handle.id)
        assert [m.to.technician_id for m in offers] == ["T-VALID"]


class TestOfferAnswers:
    async def test_decline_moves_to_the_next_and_is_not_asked_again(
        self, harness: Harness, registry: AsyncEngine
    ) -> None:
        """A declined offer goes to the next candidate; the one who declined is not asked again."""
        await register(registry, "T-A")
        await register(registry, "T-B")
        handle = await harness.book()
        await offered_to(handle, "T-A")
        await decline(handle, "T-A")
        await offered_to(handle, "T-B")
        await decline(handle, "T-B")
        order = await order_eventually(handle, lambda o: bool(o.escalations))
        assert order.offered == ["T-A", "T-B"]
        assert order.stage == Stage.DISPATCHING
        assert [(e.to, e.reason) for e in order.escalations] == [("supervisor", "no_technician")]
        escalation = await sent_eventually(harness, Template.ESCALATION, handle.id)
        assert escalation[0].recipient == Recipient.SUPERVISOR

    async def test_silence_moves_the_offer_on_after_15_minutes(
        self, harness: Harness, registry: AsyncEngine
    ) -> None:
        """An offer nobody answers is withdrawn at its deadline and the next one asked."""
        await register(registry, "T-A")
        await register(registry, "T-B")
        handle = await harness.book()
        await offered_to(handle, "T-A")
        await harness.env.sleep(timedelta(minutes=14))
        assert (await settled(handle)).offer is not None
        await harness.env.sleep(timedelta(minutes=2))
        await offered_to(handle, "T-B")
        order = await details(handle)
        assert order.offered == ["T-A"]
        assert "offer expired" in [entry.action for entry in order.timeline]

    async def test_cancelling_withdraws_the_open_offer_at_once(
        self, harness: Harness, registry: AsyncEngine
    ) -> None:
        """A cancelled order takes its open offer back there and then: the technician is told,
        and the order ends without waiting for the offer to expire."""
        await register(registry, "T-A")
        handle = await harness.book()
        await offered_to(handle, "T-A")
        cancel = CancelInput(actor=create_actor(), reason="fixed it")
        order = await act(handle, RepairOrderWorkflow.cancel, cancel)
        assert order.offer is None
        withdrawn = await sent_eventually(harness, Template.JOB_WITHDRAWN, handle.id)
        assert [(m.to.technician_id, m.params["reason"]) for m in withdrawn] == [
            ("T-A", "cancelled")
        ]
        # Read, not awaited: awaiting the result would let the server skip past the expiry.
        await eventually(handle.describe, lambda d: d.status == WorkflowExecutionStatus.COMPLETED)
        assert "offer expired" not in [entry.action for entry in (await details(handle)).timeline]

    async def test_emergency_offer_expires_after_5_minutes(
        self, harness: Harness, registry: AsyncEngine
    ) -> None:
        """An emergency cannot wait: its offers last 5 minutes."""
        await register(registry, "T-A")
        await register(registry, "T-B")
        handle = await harness.book(priority=Priority.EMERGENCY)
        await offered_to(handle, "T-A")
        order = await details(handle)
        assert order.offer is not None
        assert order.offer.expires_at - order.booked_at <= timedelta(minutes=5, seconds=5)
        await harness.env.sleep(timedelta(minutes=6))
        await offered_to(handle, "T-B")

    async def test_accepting_schedules_the_order(
        self, harness: Harness, registry: AsyncEngine
    ) -> None:
        """The technician who accepts holds the order; the response clock stops in time."""
        await register(registry, "T-A")
        await register(registry, "T-B")
        handle = await harness.book()
        await offered_to(handle, "T-A")
        await assert_refused(
            handle,
            RepairOrderWorkflow.accept_offer,
            ActorInput(actor=technician("T-B")),
            "Forbidden",
            "held by another technician",
        )
        order = await act(
            handle, RepairOrderWorkflow.accept_offer, ActorInput(actor=technician("T-A"))
        )
        assert (order.stage, order.technician_id, order.offer) == (Stage.SCHEDULED, "T-A", None)
        response = order.sla[Clock.RESPONSE]
        assert response.stopped_at is not None
        assert not response.breached
        assert order.sla[Clock.APPOINTMENT_CONFIRM].stopped_at is None
        await assert_refused(
            handle,
            RepairOrderWorkflow.accept_offer,
            ActorInput(actor=technician("T-A")),
            "ActionRefused",
            "no offer is open",
        )
        assigned = await sent_eventually(harness, Template.TECHNICIAN_ASSIGNED, handle.id)
        assert assigned[0].recipient == Recipient.CUSTOMER

    async def test_unconfirmed_appointment_is_reminded_then_escalated_to_staff(
        self, harness: Harness, registry: AsyncEngine
    ) -> None:
        """30 min without an agreed time: a reminder; 30 min more: staff take over."""
        await register(registry, "T-A")
        handle = await harness.book(policy=create_policy())
        await offered_to(handle, "T-A")
        await handle.execute_update(
            RepairOrderWorkflow.accept_offer, ActorInput(actor=technician("T-A"))
        )
        await harness.env.sleep(timedelta(minutes=31))
        await sent_eventually(harness, Template.CONTACT_CUSTOMER_REMINDER, handle.id)
        assert (await settled(handle)).escalations == []
        await harness.env.sleep(timedelta(minutes=30))
        order = await order_eventually(handle, lambda o: bool(o.escalations))
        assert [(e.to, e.reason) for e in order.escalations] == [
            ("staff", "appointment_unconfirmed")
        ]

    async def test_check_in_without_an_appointment_ends_the_wait_for_one(
        self, harness: Harness, registry: AsyncEngine
    ) -> None:
        """A technician who simply arrives is not reminded to agree a time afterwards."""
        await register(registry, "T-A")
        handle = await harness.book()
        await offered_to(handle, "T-A")
        await handle.execute_update(
            RepairOrderWorkflow.accept_offer, ActorInput(actor=technician("T-A"))
        )
        order = await act(handle, RepairOrderWorkflow.check_in, ActorInput(actor=technician("T-A")))
        clock = order.sla[Clock.APPOINTMENT_CONFIRM]
        assert clock.stopped_at is not None
        assert not clock.breached
        await harness.env.sleep(timedelta(minutes=31))
        assert harness.records.messages(Template.CONTACT_CUSTOMER_REMINDER, handle.id) == []
        assert not (await settled(handle)).sla_breached

    async def test_reschedule_asks_the_technician_to_confirm_again(
        self, harness: Harness, registry: AsyncEngine
    ) -> None:
        """A customer's new window restarts the 30 minutes the technician has to confirm it."""
        await register(registry, "T-A")
        handle = await harness.book()
        await offered_to(handle, "T-A")
        await handle.execute_update(
            RepairOrderWorkflow.accept_offer, ActorInput(actor=technician("T-A"))
        )
        now = await harness.now()
        window = TimeWindow(start=now + timedelta(days=1), end=now + timedelta(days=1, hours=2))
        await handle.execute_update(
            RepairOrderWorkflow.confirm_appointment,
            WindowInput(actor=technician("T-A"), window=window),
        )
        later = TimeWindow(start=now + timedelta(days=2), end=now + timedelta(days=2, hours=2))
        order = await act(
            handle,
            RepairOrderWorkflow.reschedule,
            WindowInput(actor=customer_of(handle.id), window=later),
        )
        assert order.appointment is None
        assert order.sla[Clock.APPOINTMENT_CONFIRM].stopped_at is None
        await harness.env.sleep(timedelta(minutes=31))
        await sent_eventually(harness, Template.CONTACT_CUSTOMER_REMINDER, handle.id)
