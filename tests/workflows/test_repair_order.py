"""The order workflow on the time-skipping test server: every stage and path of lifecycle.md.

Activities are replaced by spies (tests/harness.py): the workflow is under test here, not the
records store or the channels. Time is moved with `harness.env.sleep`; deadlines are read back
from the order.
"""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.temporal import converter
from models.catalog import Category
from models.notification import Recipient, Template
from models.order import (
    AcceptanceInput,
    ActorInput,
    AssignInput,
    CancelInput,
    ChargeLine,
    ClaimCreated,
    ClaimInput,
    Clock,
    DiagnosisInput,
    Exclusion,
    HazardInput,
    NoteInput,
    Order,
    OrderInput,
    OrderOutcome,
    PartRequest,
    PartsInput,
    Priority,
    QuoteItem,
    QuotePart,
    QuoteRequest,
    QuoteStatus,
    Role,
    ServiceRecordInput,
    Stage,
    SurveyInput,
    TimeWindow,
    WarrantyStatus,
    WindowInput,
)
from models.policy import Policy
from tests.factories import (
    create_actor,
    create_candidate,
    create_customer,
    create_diagnosis,
    create_policy,
    create_quote_request,
    create_service_record,
    create_survey,
    create_window,
)
from tests.harness import (
    TECHNICIAN,
    Harness,
    accept,
    act,
    approve_quote,
    arrive,
    assert_refused,
    assign,
    check_in,
    claim,
    complete,
    confirm_appointment,
    customer_of,
    decline_quote,
    details,
    diagnose,
    finish,
    order_eventually,
    reject,
    repair,
    sent_eventually,
    settled,
    staff,
    submit_service_record,
    supervisor,
    technician,
    update_events,
)
from workflows.repair_order import RepairOrderWorkflow

OTHER_TECHNICIAN = "T-200"


def local_text(moment: datetime) -> str:
    """A time as messages show it: the operator's local time, to the minute."""
    return f"{moment.astimezone(ZoneInfo(Policy().timezone)):%Y-%m-%d %H:%M}"


def local_window_text(window: TimeWindow) -> str:
    return f"{local_text(window.start)} - {local_text(window.end)}"


def stages(order: Order) -> list[str]:
    return [
        entry.action.removeprefix("stage:")
        for entry in order.timeline
        if entry.action.startswith("stage:")
    ]


class TestLifecycle:
    async def test_out_of_warranty_repair_walks_every_stage_to_closed(
        self, harness: Harness
    ) -> None:
        """A paid repair goes booked to closed through every stage, and the order ends closed."""
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        assert (await details(handle)).stage == Stage.DISPATCHING

        order = await assign(handle)
        assert (order.stage, order.technician_id) == (Stage.SCHEDULED, TECHNICIAN)
        order = await confirm_appointment(harness, handle)
        assert order.stage == Stage.SCHEDULED
        assert order.appointment is not None
        order = await check_in(handle)
        assert order.stage == Stage.ON_SITE
        order = await diagnose(handle, quote=create_quote_request())
        assert order.quote is not None
        assert order.quote.status == QuoteStatus.PENDING
        order = await approve_quote(handle)
        assert order.quote is not None
        assert order.quote.status == QuoteStatus.APPROVED
        order = await submit_service_record(handle)
        assert order.service_record == create_service_record()
        order = await complete(handle)
        assert order.stage == Stage.AWAITING_ACCEPTANCE
        order = await accept(handle)
        assert order.stage == Stage.IN_WARRANTY
        assert order.acceptance is not None
        assert not order.acceptance.deemed

        assert await handle.result() == OrderOutcome(order_id=handle.id, stage=Stage.CLOSED)
        order = await details(handle)
        assert stages(order) == [
            "dispatching",
            "scheduled",
            "on_site",
            "awaiting_acceptance",
            "in_warranty",
            "closed",
        ]
        assert order.charges.total == Decimal("170.00")  # 120.00 labour + 50.00 visit fee

    async def test_records_store_gets_every_event_once_in_order(self, harness: Harness) -> None:
        """The event log holds each timeline event exactly once, numbered 1..n as it happened."""
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await repair(harness, handle, quote=create_quote_request())
        await accept(handle)
        await handle.result()
        order = await details(handle)
        written = harness.records.written
        assert [r.event.seq for r in written] == list(range(1, len(order.timeline) + 1))
        assert [r.event.timeline_entry() for r in written] == order.timeline
        assert {r.event.order_id for r in written} == {handle.id}
        assert written[-1].snapshot.stage == Stage.CLOSED
        assert written[-1].snapshot.total == order.charges.total

    async def test_every_notification_has_its_own_key_and_the_customers_language(
        self, harness: Harness
    ) -> None:
        """Each message is sent once under its own key; the customer reads theirs in English."""
        handle = await harness.book(
            WarrantyStatus.OUT_OF_WARRANTY, customer=create_customer(locale="en")
        )
        await repair(harness, handle, quote=create_quote_request())
        await reject(handle)
        await finish(handle)
        await accept(handle)
        await handle.result()
        sent = harness.records.sent
        keys = [message.key for message in sent]
        assert len(keys) == len(set(keys))
        to_customer = [m for m in sent if m.recipient == Recipient.CUSTOMER]
        assert [m.template for m in to_customer] == [
            Template.BOOKING_CONFIRMED,
            Template.TECHNICIAN_ASSIGNED,
            Template.APPOINTMENT_CONFIRMED_WITH_FEE,  # out of warranty: cancelling costs
            Template.QUOTE_TO_APPROVE,
            Template.WORK_DONE,
            Template.WORK_DONE,
            Template.SURVEY,
            Template.WARRANTY_REMINDER,
        ]
        assert {m.locale for m in to_customer} == {"en"}
        assert {m.to.phone for m in to_customer} == {"+86 138 0013 8000"}
        to_technician = [m for m in sent if m.recipient == Recipient.TECHNICIAN]
        assert [m.template for m in to_technician] == [
            Template.JOB_ASSIGNED,
            Template.REWORK_REQUESTED,
        ]
        assert {m.locale for m in to_technician} == {"zh"}
        assert {m.to.technician_id for m in to_technician} == {TECHNICIAN}


class TestBooking:
    async def test_new_order_goes_to_dispatching(self, harness: Harness) -> None:
        """A booked order starts looking for a technician at once, and says who booked it."""
        handle = await harness.start()
        order = await handle.query(RepairOrderWorkflow.details)
        assert order.stage == Stage.DISPATCHING
        assert [(e.actor, e.action) for e in order.timeline] == [
            ("staff:test-staff", "booked"),
            ("system", "stage:dispatching"),
        ]

    async def test_every_event_reaches_the_records_store_in_order(self, harness: Harness) -> None:
        """The event log gets each event once, numbered as it happened, with the read model."""
        handle = await harness.start()
        await handle.execute_update(
            RepairOrderWorkflow.cancel, CancelInput(actor=create_actor(), reason="no longer needed")
        )
        await handle.result()
        assert [r.event.seq for r in harness.records.written] == [1, 2, 3]
        assert [r.event.action for r in harness.records.written] == [
            "booked",
            "stage:dispatching",
            "stage:cancelled",
        ]
        assert harness.records.written[-1].snapshot.stage == Stage.CANCELLED

    async def test_booking_starts_the_response_and_arrival_clocks(self, harness: Harness) -> None:
        """A normal order must be accepted within 8 h and reached within 24 h of booking."""
        handle = await harness.book()
        order = await details(handle)
        response, arrival = order.sla[Clock.RESPONSE], order.sla[Clock.ARRIVAL]
        assert response.started_at == arrival.started_at == order.booked_at
        assert response.deadline - order.booked_at == timedelta(hours=8)
        assert arrival.deadline - order.booked_at == timedelta(hours=24)
        confirmed = await sent_eventually(harness, Template.BOOKING_CONFIRMED, handle.id)
        assert confirmed[0].recipient == Recipient.CUSTOMER

    async def test_preferred_window_sets_the_arrival_deadline(self, harness: Harness) -> None:
        """A booking with a preferred window must be reached by the window's end."""
        window = create_window(await harness.now() + timedelta(days=2))
        handle = await harness.book(preferred_window=window)
        order = await details(handle)
        assert order.sla[Clock.ARRIVAL].deadline == window.end

    async def test_emergency_is_dispatched_before_the_booking_is_confirmed(
        self, harness: Harness
    ) -> None:
        """An emergency must be accepted within 1 h; dispatch starts before the customer's SMS."""
        handle = await harness.book(priority=Priority.EMERGENCY)
        order = await details(handle)
        assert order.sla[Clock.RESPONSE].deadline - order.booked_at == timedelta(hours=1)
        assert order.sla[Clock.ARRIVAL].deadline - order.booked_at == timedelta(hours=4)
        confirmed = await sent_eventually(harness, Template.BOOKING_CONFIRMED, handle.id)
        await order_eventually(handle, lambda _: len(harness.records.written) >= 2)
        assert [(r.event.seq, r.event.action) for r in harness.records.written[:2]] == [
            (1, "booked"),
            (2, "stage:dispatching"),
        ]
        assert harness.records.written[1].snapshot.stage == Stage.DISPATCHING
        # A message's key carries the number of events logged when it was queued.
        assert confirmed[0].key == f"{handle.id}:2:booking_confirmed:customer"

    async def test_normal_booking_is_confirmed_before_dispatch_starts(
        self, harness: Harness
    ) -> None:
        """Outside emergencies, the booking is confirmed first and dispatch follows."""
        handle = await harness.book()
        confirmed = await sent_eventually(harness, Template.BOOKING_CONFIRMED, handle.id)
        assert confirmed[0].key == f"{handle.id}:1:booking_confirmed:customer"

    async def test_response_breach_escalates_to_a_supervisor(self, harness: Harness) -> None:
        """When no technician is on the job in time, a supervisor is told and the breach kept."""
        harness.records.candidates = [create_candidate(TECHNICIAN)]  # offered, never answers
        handle = await harness.book(
            policy=create_policy(response_sla={"normal": "1h"}, dispatch={"offer_timeout": "2h"})
        )
        await harness.env.sleep(timedelta(minutes=59))
        assert (await settled(handle)).escalations == []
        await harness.env.sleep(timedelta(minutes=2))
        order = await order_eventually(handle, lambda o: bool(o.escalations))
        assert order.sla[Clock.RESPONSE].breached
        assert [(e.to, e.reason) for e in order.escalations] == [("supervisor", "response_overdue")]
        escalation = await sent_eventually(harness, Template.ESCALATION, handle.id)
        assert escalation[0].recipient == Recipient.SUPERVISOR


class TestAssign:
    async def test_staff_assigns_and_both_sides_are_told(self, harness: Harness) -> None:
        """Assigning a technician schedules the job, stops the response clock, tells both sides."""
        handle = await harness.book()
        order = await assign(handle)
        assert order.stage == Stage.SCHEDULED
        assert order.technician_id == TECHNICIAN
        response = order.sla[Clock.RESPONSE]
        assert response.stopped_at is not None
        assert not response.breached
        job = await sent_eventually(harness, Template.JOB_ASSIGNED, handle.id)
        assert job[0].to.technician_id == TECHNICIAN
        told = await sent_eventually(harness, Template.TECHNICIAN_ASSIGNED, handle.id)
        assert told[0].recipient == Recipient.CUSTOMER

    async def test_reassignment_withdraws_the_job_from_the_first_technician(
        self, harness: Harness
    ) -> None:
        """Reassigning before check-in tells the first technician the job is gone."""
        handle = await harness.book()
        await assign(handle)
        order = await assign(handle, OTHER_TECHNICIAN)
        assert order.technician_id == OTHER_TECHNICIAN
        withdrawn = await sent_eventually(harness, Template.JOB_WITHDRAWN, handle.id)
        assert withdrawn[0].to.technician_id == TECHNICIAN
        assert withdrawn[0].params["reason"] == "reassigned"

    async def test_assigning_the_same_technician_again_is_refused(self, harness: Harness) -> None:
        """Assigning the technician who already has the job is refused and changes nothing."""
        handle = await harness.book()
        await assign(handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.assign,
            AssignInput(actor=staff(), technician_id=TECHNICIAN),
            "ActionRefused",
            "already assigned",
        )


class TestConfirmAppointment:
    async def test_appointment_sets_the_arrival_deadline(self, harness: Harness) -> None:
        """The confirmed window's end becomes the arrival deadline; the customer is told."""
        handle = await harness.book()
        await assign(handle)
        order = await confirm_appointment(harness, handle, in_hours=30)
        assert order.appointment is not None
        assert order.sla[Clock.ARRIVAL].deadline == order.appointment.end
        told = await sent_eventually(harness, Template.APPOINTMENT_CONFIRMED, handle.id)
        assert told[0].params["window"] == local_window_text(order.appointment)
        assert "fee" not in told[0].params  # a free repair: cancelling costs nothing

    async def test_chargeable_order_states_the_cancellation_fee(self, harness: Harness) -> None:
        """Cancelling a confirmed visit costs the visit fee: the confirmation says so."""
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await assign(handle)
        order = await confirm_appointment(harness, handle, in_hours=30)
        told = await sent_eventually(harness, Template.APPOINTMENT_CONFIRMED_WITH_FEE, handle.id)
        assert told[0].params["fee"] == "50.00 CNY"
        assert order.appointment is not None
        assert told[0].params["window"] == local_window_text(order.appointment)
        assert not [m for m in harness.records.sent if m.template == Template.APPOINTMENT_CONFIRMED]

    async def test_window_already_over_is_refused(self, harness: Harness) -> None:
        """A window that has already ended cannot be confirmed."""
        handle = await harness.book()
        await assign(handle)
        window = create_window(await harness.now() - timedelta(hours=3))
        await assert_refused(
            handle,
            RepairOrderWorkflow.confirm_appointment,
            WindowInput(actor=technician(), window=window),
            "ActionRefused",
            "the window is already over",
        )

    async def test_technician_is_reminded_after_30_minutes_without_an_appointment(
        self, harness: Harness
    ) -> None:
        """A technician who has not confirmed a time 30 min after taking the job is reminded."""
        handle = await harness.book()
        await assign(handle)
        await harness.env.sleep(timedelta(minutes=31))
        reminder = await sent_eventually(harness, Template.CONTACT_CUSTOMER_REMINDER, handle.id)
        assert reminder[0].to.technician_id == TECHNICIAN


class TestReschedule:
    async def test_reschedule_moves_the_arrival_deadline_and_needs_a_new_confirmation(
        self, harness: Harness
    ) -> None:
        """A new window replaces the appointment; the technician is asked to confirm again."""
        handle = await harness.book()
        await assign(handle)
        await confirm_appointment(harness, handle)
        window = create_window(await harness.now() + timedelta(days=3))
        order = await act(
            handle,
            RepairOrderWorkflow.reschedule,
            WindowInput(actor=customer_of(handle.id), window=window),
        )
        assert order.stage == Stage.SCHEDULED
        assert order.appointment is None
        assert order.preferred_window == window
        assert order.sla[Clock.ARRIVAL].deadline == window.end
        changed = await sent_eventually(harness, Template.APPOINTMENT_CHANGED, handle.id)
        assert [(m.to.technician_id, m.params["window"]) for m in changed] == [
            (TECHNICIAN, local_window_text(window))
        ]
        order = await confirm_appointment(harness, handle, in_hours=70)
        assert order.appointment is not None
        assert order.sla[Clock.ARRIVAL].deadline == order.appointment.end

    async def test_reschedule_after_check_in_is_refused(self, harness: Harness) -> None:
        """Once the technician is on site, the visit cannot be moved."""
        handle = await harness.book()
        await arrive(harness, handle)
        window = create_window(await harness.now() + timedelta(days=1))
        await assert_refused(
            handle,
            RepairOrderWorkflow.reschedule,
            WindowInput(actor=staff(), window=window),
            "ActionRefused",
            "only before check-in",
        )


class TestCancel:
    async def test_staff_cancel_before_check_in_ends_the_order(self, harness: Harness) -> None:
        """Cancelling while dispatching ends the order as cancelled, with the reason kept."""
        handle = await harness.start()
        order = await act(
            handle,
            RepairOrderWorkflow.cancel,
            CancelInput(actor=create_actor(), reason="customer fixed it"),
        )
        assert order.stage == Stage.CANCELLED
        assert order.cancellation_reason == "customer fixed it"
        outcome = await handle.result()
        assert outcome.stage == Stage.CANCELLED

    async def test_customer_of_another_order_is_refused_and_nothing_is_written(
        self, harness: Harness
    ) -> None:
        """A customer token for another order cannot cancel; the history shows no trace of it."""
        handle = await harness.start()
        stranger = create_actor(Role.CUSTOMER, order_id="RF-SOMEONE-ELSE")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                RepairOrderWorkflow.cancel, CancelInput(actor=stranger, reason="mischief")
            )
        assert isinstance(refused.value.cause, ApplicationError)
        assert refused.value.cause.type == "Forbidden"
        order = await handle.query(RepairOrderWorkflow.details)
        assert order.stage == Stage.DISPATCHING
        assert await update_events(handle) == []

    async def test_own_customer_may_cancel(self, harness: Harness) -> None:
        """The customer holding this order's token can cancel it."""
        handle = await harness.start()
        customer = create_actor(Role.CUSTOMER, order_id=handle.id)
        order = await act(
            handle,
            RepairOrderWorkflow.cancel,
            CancelInput(actor=customer, reason="bought a new one"),
        )
        assert order.stage == Stage.CANCELLED
        assert order.timeline[-1].actor == f"customer:{customer.subject}"

    async def test_cancel_sent_with_the_booking_stays_cancelled(self, harness: Harness) -> None:
        """A cancel that reaches the order in the same instant as its booking is not undone."""
        order_input = await harness.order_input()
        start = WithStartWorkflowOperation(
            RepairOrderWorkflow.run,
            order_input,
            id=order_input.order_id,
            task_queue=harness.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        await harness.env.client.execute_update_with_start_workflow(
            RepairOrderWorkflow.cancel,
            CancelInput(actor=create_actor(), reason="changed my mind"),
            start_workflow_operation=start,
        )
        outcome = await (await start.workflow_handle()).result()
        assert outcome.stage == Stage.CANCELLED
        actions = [r.event.action for r in harness.records.written]
        assert actions[0] == "booked"
        assert actions[-1] == "stage:cancelled"
        assert actions.count("stage:cancelled") == 1

    async def test_cancel_after_a_confirmed_appointment_costs_the_visit_fee(
        self, harness: Harness
    ) -> None:
        """Out of warranty, cancelling once the technician committed to a time costs 50.00."""
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await assign(handle)
        await confirm_appointment(harness, handle)
        order = await act(
            handle, RepairOrderWorkflow.cancel, CancelInput(actor=staff(), reason="fixed it myself")
        )
        assert order.stage == Stage.CANCELLED
        assert order.charges.lines == (
            ChargeLine(kind="visit_fee", description="visit fee", amount=Decimal("50.00")),
        )
        assert order.charges.total == Decimal("50.00")
        assert all(clock.stopped_at is not None for clock in order.sla.values())
        assert (await handle.result()).stage == Stage.CANCELLED
        withdrawn = harness.records.messages(Template.JOB_WITHDRAWN, handle.id)
        assert [(m.to.technician_id, m.params["reason"]) for m in withdrawn] == [
            (TECHNICIAN, "cancelled")
        ]

    async def test_cancel_before_an_appointment_is_free(self, harness: Harness) -> None:
        """Out of warranty, cancelling before any appointment was confirmed costs nothing."""
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await assign(handle)
        order = await act(
            handle, RepairOrderWorkflow.cancel, CancelInput(actor=staff(), reason="fixed it myself")
        )
        assert order.charges.total == Decimal("0.00")
        assert order.charges.lines == ()

    async def test_cancel_after_check_in_is_refused(self, harness: Harness) -> None:
        """Once the technician is on site, the order can no longer be cancelled."""
        handle = await harness.book()
        await arrive(harness, handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.cancel,
            CancelInput(actor=customer_of(handle.id), reason="too slow"),
            "ActionRefused",
            "only be cancelled before check-in",
        )


class TestCheckIn:
    async def test_check_in_stops_the_arrival_clock_and_starts_the_repair_clock(
        self, harness: Harness
    ) -> None:
        """Arriving on time puts the order on site, on time, with an hour for a general repair."""
        handle = await harness.book()
        order = await arrive(harness, handle)
        assert order.stage == Stage.ON_SITE
        arrival = order.sla[Clock.ARRIVAL]
        assert arrival.stopped_at is not None
        assert not arrival.breached
        assert arrival.breached_by is None
        repair_clock = order.sla[Clock.GENERAL_REPAIR]
        assert repair_clock.deadline - repair_clock.started_at == timedelta(hours=1)
        assert repair_clock.started_at == order.timeline[-1].at

    async def test_check_in_before_assignment_is_forbidden(self, harness: Harness) -> None:
        """A technician cannot check in to an order no one has been assigned to yet."""
        handle = await harness.book()
        await order_eventually(handle, lambda o: bool(o.escalations))  # nobody to offer it to
        await assert_refused(
            handle,
            RepairOrderWorkflow.check_in,
            ActorInput(actor=technician()),
            "Forbidden",
            "not assigned to this technician",
        )

    async def test_technician_of_another_job_is_forbidden(self, harness: Harness) -> None:
        """A technician cannot act on an order assigned to someone else."""
        handle = await harness.book()
        await assign(handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.check_in,
            ActorInput(actor=technician(OTHER_TECHNICIAN)),
            "Forbidden",
            "not assigned to this technician",
        )

    async def test_late_arrival_is_a_breach_and_the_customer_is_told(
        self, harness: Harness
    ) -> None:
        """Checking in 30 min after the arrival deadline records the breach and the lateness."""
        handle = await harness.book(policy=create_policy(arrival_sla={"normal": "1h"}))
        await assign(handle)
        await harness.env.sleep(timedelta(minutes=90))
        delay = await sent_eventually(harness, Template.DELAY, handle.id)
        assert delay[0].recipient == Recipient.CUSTOMER
        order = await check_in(handle)
        arrival = order.sla[Clock.ARRIVAL]
        assert arrival.breached
        assert arrival.breached_by is not None
        assert timedelta(minutes=30) <= arrival.breached_by < timedelta(minutes=31)
        assert order.sla_breached
        assert "sla breached" in [entry.action for entry in order.timeline]


class TestActionAnswer:
    async def test_an_action_answers_what_it_changed_not_the_whole_order(
        self, harness: Harness
    ) -> None:
        """The answer is kept in the order's history: the stage, the latest event and the
        parts the action changed, never the timeline nor the customer's details."""
        handle = await harness.book()
        await arrive(harness, handle)
        done = await handle.execute_update(
            RepairOrderWorkflow.diagnose,
            DiagnosisInput(actor=technician(), diagnosis=create_diagnosis()),
        )
        order = await details(handle)
        assert (done.order_id, done.stage, done.seq) == (
            handle.id,
            Stage.ON_SITE,
            len(order.timeline),
        )
        assert done.changed == {"diagnosis": create_diagnosis().model_dump(mode="json")}

        done = await handle.execute_update(
            RepairOrderWorkflow.submit_service_record,
            ServiceRecordInput(actor=technician(), record=create_service_record()),
        )
        done = await handle.execute_update(
            RepairOrderWorkflow.complete, ActorInput(actor=technician())
        )
        assert done.stage == Stage.AWAITING_ACCEPTANCE
        assert set(done.changed) == {"sla"}  # the repair clock stopped; nothing to charge


class TestDiagnose:
    async def test_covered_fault_needs_no_quote(self, harness: Harness) -> None:
        """In warranty with proof, the technician diagnoses and repairs without a quote."""
        handle = await harness.book()
        await arrive(harness, handle)
        order = await diagnose(handle)
        assert order.diagnosis == create_diagnosis()
        assert order.quote is None
        assert not order.chargeable

    async def test_chargeable_diagnosis_without_quote_is_refused(self, harness: Harness) -> None:
        """Out of warranty, a diagnosis must carry a quote for the customer to approve."""
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await arrive(harness, handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.diagnose,
            DiagnosisInput(actor=technician(), diagnosis=create_diagnosis()),
            "ActionRefused",
            "a chargeable repair needs a quote",
        )

    async def test_quote_item_without_a_price_is_refused(self, harness: Harness) -> None:
        """A labour item with no amount must name an item of the published price list."""
        handle = await harness.book(WarrantyStatus.NO_PROOF)
        await arrive(harness, handle)
        quote = QuoteRequest(items=(QuoteItem(description="polish the door"),))
        await assert_refused(
            handle,
            RepairOrderWorkflow.diagnose,
            DiagnosisInput(actor=technician(), diagnosis=create_diagnosis(), quote=quote),
            "ActionRefused",
            "'polish the door' has no amount and is not on the price list",
        )

    async def test_warranty_exclusion_makes_an_in_warranty_order_chargeable(
        self, harness: Harness
    ) -> None:
        """Misuse found on site: the customer pays labour and the visit fee, once they approve."""
        handle = await harness.book()
        await arrive(harness, handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.diagnose,
            DiagnosisInput(
                actor=technician(),
                diagnosis=create_diagnosis(warranty_exclusion=Exclusion.MISUSE),
            ),
            "ActionRefused",
            "a chargeable repair needs a quote",
        )
        order = await diagnose(handle, quote=create_quote_request(), exclusion=Exclusion.MISUSE)
        assert order.chargeable
        assert order.quote is not None
        assert order.quote.total == Decimal("170.00")
        quoted = await sent_eventually(harness, Template.QUOTE_TO_APPROVE, handle.id)
        assert quoted[0].params["total"] == "170.00 CNY"
        await approve_quote(handle)
        order = await finish(handle)
        assert order.charges.total == Decimal("170.00")
        assert [line.kind for line in order.charges.lines] == ["labour", "visit_fee"]


class TestQuoteDecision:
    async def test_customer_approves_the_quote(self, harness: Harness) -> None:
        """The customer's approval is recorded with the quoted total."""
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await arrive(harness, handle)
        await diagnose(handle, quote=create_quote_request())
        order = await approve_quote(handle)
        assert order.quote is not None
        assert order.quote.status == QuoteStatus.APPROVED
        assert (order.timeline[-1].action, order.timeline[-1].detail) == (
            "quote approved",
            "170.00 CNY",
        )

    async def test_customer_of_another_order_may_not_approve(self, harness: Harness) -> None:
        """A customer token scoped to another order cannot approve this order's quote."""
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await arrive(harness, handle)
        await diagnose(handle, quote=create_quote_request())
        await assert_refused(
            handle,
            RepairOrderWorkflow.approve_quote,
            ActorInput(actor=customer_of("RF-SOMEONE-ELSE")),
            "Forbidden",
            "not this customer's order",
        )

    async def test_declined_quote_costs_the_visit_fee_and_closes_without_warranty(
        self, harness: Harness
    ) -> None:
        """Out of warranty, declining pays only the visit fee; nothing was repaired, no window."""
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await arrive(harness, handle)
        await diagnose(handle, quote=create_quote_request())
        order = await decline_quote(handle)
        assert order.stage == Stage.CLOSED
        assert order.quote is not None
        assert order.quote.status == QuoteStatus.DECLINED
        assert order.charges.lines == (
            ChargeLine(kind="visit_fee", description="visit fee", amount=Decimal("50.00")),
        )
        assert order.warranty_window_ends_at is None
        assert order.acceptance is None
        assert all(clock.stopped_at is not None for clock in order.sla.values())
        assert await handle.result() == OrderOutcome(order_id=handle.id, stage=Stage.CLOSED)

    async def test_declined_extras_in_warranty_leave_the_free_repair_going(
        self, harness: Harness
    ) -> None:
        """In warranty with no exclusion the quote holds extras only: declining them costs
        nothing, the repair goes on and the order ends in its warranty window as usual."""
        handle = await harness.book()
        await arrive(harness, handle)
        await diagnose(handle, quote=create_quote_request())
        order = await decline_quote(handle)
        assert order.stage == Stage.ON_SITE
        assert order.quote is not None
        assert order.quote.status == QuoteStatus.DECLINED
        assert order.timeline[-1].detail == "120.00 CNY; the free repair goes on"
        await finish(handle)
        order = await accept(handle)
        assert order.stage == Stage.IN_WARRANTY
        assert order.charges.total == Decimal("0.00")
        assert order.warranty_window_ends_at is not None
        assert (await handle.result()).stage == Stage.CLOSED
        assert "stage:closed" in [entry.action for entry in (await details(handle)).timeline]


class TestParts:
    async def test_waiting_for_parts_and_back_on_site(self, harness: Harness) -> None:
        """Asking for parts pauses the repair; their arrival puts the order back on site."""
        handle = await harness.book()
        await arrive(harness, handle)
        parts = (PartRequest(part_no="TH-220", description="thermostat", qty=1),)
        order = await act(
            handle, RepairOrderWorkflow.request_parts, PartsInput(actor=technician(), parts=parts)
        )
        assert order.stage == Stage.WAITING_PARTS
        assert order.parts_requested == parts
        dispatch = order.sla[Clock.PARTS_DISPATCH]
        assert dispatch.deadline - dispatch.started_at == timedelta(hours=24)
        assert order.sla[Clock.GENERAL_REPAIR].paused_at is not None
        order = await act(handle, RepairOrderWorkflow.parts_arrived, ActorInput(actor=staff()))
        assert order.stage == Stage.ON_SITE
        assert order.sla[Clock.PARTS_DISPATCH].stopped_at is not None
        assert not order.sla[Clock.PARTS_DISPATCH].breached
        assert order.sla[Clock.GENERAL_REPAIR].paused_at is None
        order = await finish(handle)
        assert order.stage == Stage.AWAITING_ACCEPTANCE

    async def test_parts_not_arrived_in_24_hours_escalate(self, harness: Harness) -> None:
        """Parts still missing after 24 h are escalated to a supervisor."""
        handle = await harness.book()
        await arrive(harness, handle)
        await handle.execute_update(
            RepairOrderWorkflow.request_parts,
            PartsInput(actor=technician(), parts=(PartRequest(part_no="TH-220", qty=1),)),
        )
        await harness.env.sleep(timedelta(hours=23, minutes=50))
        assert (await settled(handle)).escalations == []
        await harness.env.sleep(timedelta(minutes=20))
        order = await order_eventually(handle, lambda o: bool(o.escalations))
        assert order.sla[Clock.PARTS_DISPATCH].breached
        assert [(e.to, e.reason) for e in order.escalations] == [("supervisor", "parts_overdue")]

    async def test_parts_arrival_is_refused_when_none_are_awaited(self, harness: Harness) -> None:
        """Recording a parts arrival on an order that asked for none is refused."""
        handle = await harness.book()
        await arrive(harness, handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.parts_arrived,
            ActorInput(actor=staff()),
            "ActionRefused",
            "no parts are awaited",
        )


class TestWorkshop:
    async def test_workshop_deadline_counts_three_working_days(self, harness: Harness) -> None:
        """A device taken to the workshop is due back 3 working days later, on business hours."""
        handle = await harness.book()
        await arrive(harness, handle)
        order = await act(handle, RepairOrderWorkflow.to_workshop, ActorInput(actor=technician()))
        assert order.stage == Stage.IN_WORKSHOP
        policy = Policy()
        workshop = order.sla[Clock.WORKSHOP_REPAIR]
        assert workshop.deadline == policy.deadline(
            workshop.started_at, policy.visit.workshop_repair
        )
        assert workshop.deadline - workshop.started_at > timedelta(days=2)  # not 27 wall hours
        assert order.sla[Clock.GENERAL_REPAIR].paused_at is not None
        order = await act(
            handle, RepairOrderWorkflow.back_from_workshop, ActorInput(actor=technician())
        )
        assert order.stage == Stage.ON_SITE
        assert order.sla[Clock.WORKSHOP_REPAIR].stopped_at is not None
        assert not order.sla[Clock.WORKSHOP_REPAIR].breached

    async def test_overdue_workshop_repair_escalates(self, harness: Harness) -> None:
        """A workshop repair not back by its deadline is escalated to a supervisor."""
        handle = await harness.book()
        await arrive(harness, handle)
        order = await act(handle, RepairOrderWorkflow.to_workshop, ActorInput(actor=technician()))
        deadline = order.sla[Clock.WORKSHOP_REPAIR].deadline
        await harness.env.sleep(deadline - await harness.now() - timedelta(minutes=10))
        assert (await settled(handle)).escalations == []
        await harness.env.sleep(timedelta(minutes=20))
        order = await order_eventually(handle, lambda o: bool(o.escalations))
        assert [(e.to, e.reason) for e in order.escalations] == [("supervisor", "workshop_overdue")]
        assert order.sla[Clock.WORKSHOP_REPAIR].breached


class TestHazard:
    async def test_supervisor_clears_a_safety_stop_and_the_repair_clock_moves(
        self, harness: Harness
    ) -> None:
        """Work halts on a hazard; the repair hour does not run while stopped, then resumes."""
        handle = await harness.book()
        order = await arrive(harness, handle)
        deadline = order.sla[Clock.GENERAL_REPAIR].deadline
        await harness.env.sleep(timedelta(minutes=10))
        order = await act(
            handle,
            RepairOrderWorkflow.report_hazard,
            HazardInput(actor=technician(), description="gas smell in the kitchen"),
        )
        assert order.stage == Stage.SAFETY_STOP
        assert order.hazard == "gas smell in the kitchen"
        assert [(e.to, e.reason) for e in order.escalations] == [("supervisor", "safety_stop")]
        paused_at = order.sla[Clock.GENERAL_REPAIR].paused_at
        assert paused_at is not None

        await harness.env.sleep(timedelta(hours=3))
        assert not (await settled(handle)).sla[Clock.GENERAL_REPAIR].breached
        await assert_refused(
            handle,
            RepairOrderWorkflow.clear_hazard,
            NoteInput(actor=staff(), note="looks fine"),
            "Forbidden",
            "role staff may not",
        )
        order = await act(
            handle,
            RepairOrderWorkflow.clear_hazard,
            NoteInput(actor=supervisor(), note="gas supply shut off and checked"),
        )
        assert order.stage == Stage.ON_SITE
        assert order.hazard is None
        cleared_at = order.timeline[-1].at
        repair_clock = order.sla[Clock.GENERAL_REPAIR]
        assert repair_clock.paused_at is None
        assert repair_clock.deadline == deadline + (cleared_at - paused_at)

        await harness.env.sleep(timedelta(minutes=40))
        assert not (await settled(handle)).sla[Clock.GENERAL_REPAIR].breached
        await harness.env.sleep(timedelta(minutes=20))
        order = await order_eventually(handle, lambda o: o.sla[Clock.GENERAL_REPAIR].breached)
        assert order.stage == Stage.ON_SITE  # a late repair is recorded, never blocking

    async def test_supervisor_may_cancel_in_a_safety_stop(self, harness: Harness) -> None:
        """A site that cannot be made safe is cancelled by a supervisor, not by staff."""
        handle = await harness.book()
        await arrive(harness, handle)
        await handle.execute_update(
            RepairOrderWorkflow.report_hazard,
            HazardInput(actor=technician(), description="exposed live wiring"),
        )
        await assert_refused(
            handle,
            RepairOrderWorkflow.cancel,
            CancelInput(actor=staff(), reason="unsafe"),
            "ActionRefused",
            "only be cancelled before check-in",
        )
        order = await act(
            handle,
            RepairOrderWorkflow.cancel,
            CancelInput(actor=supervisor(), reason="unsafe site"),
        )
        assert order.stage == Stage.CANCELLED
        assert all(clock.stopped_at is not None for clock in order.sla.values())
        assert (await handle.result()).stage == Stage.CANCELLED


class TestComplete:
    async def test_complete_without_service_record_is_refused(self, harness: Harness) -> None:
        """Work cannot be finished before the service record is written."""
        handle = await harness.book()
        await arrive(harness, handle)
        await diagnose(handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.complete,
            ActorInput(actor=technician()),
            "ActionRefused",
            "the service record is missing",
        )

    async def test_complete_with_quote_pending_is_refused(self, harness: Harness) -> None:
        """Work cannot be finished while the customer has not approved the quote."""
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await arrive(harness, handle)
        await diagnose(handle, quote=create_quote_request())
        await submit_service_record(handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.complete,
            ActorInput(actor=technician()),
            "ActionRefused",
            "the quote is not approved by the customer",
        )

    async def test_chargeable_repair_without_any_quote_is_refused(self, harness: Harness) -> None:
        """Without proof of purchase, work cannot be finished when nothing was quoted."""
        handle = await harness.book(WarrantyStatus.NO_PROOF)
        await arrive(harness, handle)
        await submit_service_record(handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.complete,
            ActorInput(actor=technician()),
            "ActionRefused",
            "a chargeable repair needs an approved quote",
        )

    async def test_out_of_warranty_charges_are_the_exact_sum_of_the_quote(
        self, harness: Harness
    ) -> None:
        """Labour from the category's price list and by amount, parts at cost, the visit fee:
        to the cent."""
        policy = create_policy(
            charges={
                "visit_fee": "45.50",
                "labour": {"replace_compressor": "300.00"},
                # The order is a refrigerator's: its own price wins, another category's does not.
                "labour_by_category": {
                    "refrigerator": {"replace_compressor": "320.00"},
                    "air_conditioner": {"replace_compressor": "450.00"},
                },
            }
        )
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY, policy=policy)
        await arrive(harness, handle)
        quote = QuoteRequest(
            items=(
                QuoteItem(description="replace_compressor"),
                QuoteItem(description="refrigerant recharge", amount=Decimal("85.35")),
            ),
            parts=(
                QuotePart(part_no="CMP-7", description="relay", qty=3, unit_cost=Decimal("12.15")),
            ),
        )
        await diagnose(handle, quote=quote)
        # "refrigerant recharge" is off the list: a supervisor authorizes it first.
        await act(handle, RepairOrderWorkflow.authorize_quote, ActorInput(actor=supervisor()))
        await approve_quote(handle)
        order = await finish(handle)
        assert order.charges.currency == "CNY"
        assert order.charges.lines == (
            ChargeLine(kind="labour", description="replace_compressor", amount=Decimal("320.00")),
            ChargeLine(kind="labour", description="refrigerant recharge", amount=Decimal("85.35")),
            ChargeLine(kind="part", description="3 x CMP-7", amount=Decimal("36.45")),
            ChargeLine(kind="visit_fee", description="visit fee", amount=Decimal("45.50")),
        )
        # 320.00 + 85.35 + 3 x 12.15 + 45.50, worked out by hand
        assert order.charges.total == Decimal("487.30")
        assert str(order.charges.total) == "487.30"
        done = await sent_eventually(harness, Template.WORK_DONE, handle.id)
        assert done[0].params["total"] == "487.30 CNY"

    async def test_in_warranty_repair_with_proof_is_free(self, harness: Harness) -> None:
        """In warranty with proof of purchase, a quality fault is repaired for nothing."""
        handle = await harness.book()
        order = await repair(harness, handle)
        assert order.stage == Stage.AWAITING_ACCEPTANCE
        assert order.charges.lines == ()
        assert order.charges.total == Decimal("0.00")
        assert str(order.charges.total) == "0.00"
        assert order.sla[Clock.GENERAL_REPAIR].stopped_at is not None


class TestAcceptance:
    async def test_acceptance_before_completion_is_refused(self, harness: Harness) -> None:
        """The customer cannot accept work that is not finished."""
        handle = await harness.book()
        await arrive(harness, handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.record_acceptance,
            AcceptanceInput(actor=customer_of(handle.id), accepted=True),
            "ActionRefused",
            "the work is not finished",
        )

    async def test_acceptance_opens_the_90_day_warranty_window(self, harness: Harness) -> None:
        """Accepted work is under warranty for 90 days from the acceptance."""
        handle = await harness.book()
        await repair(harness, handle)
        order = await accept(handle, actor=staff())
        assert order.stage == Stage.IN_WARRANTY
        assert order.acceptance is not None
        assert order.acceptance.by == "staff:test-staff"
        assert order.acceptance.signature == "sig-li-wei"
        assert order.warranty_window_ends_at == order.acceptance.at + timedelta(days=90)

    async def test_rejection_sends_the_same_technician_back(self, harness: Harness) -> None:
        """A rejection puts the order back on site with the same technician, as rework 1."""
        handle = await harness.book()
        await repair(harness, handle)
        order = await reject(handle, "still not cooling")
        assert order.stage == Stage.ON_SITE
        assert order.technician_id == TECHNICIAN
        assert order.rework_count == 1
        assert order.service_record is None
        assert not order.needs_reassignment
        rework = await sent_eventually(harness, Template.REWORK_REQUESTED, handle.id)
        assert rework[0].recipient == Recipient.TECHNICIAN
        assert rework[0].to.technician_id == TECHNICIAN
        assert rework[0].params["reason"] == "still not cooling"
        order = await finish(handle)
        assert order.stage == Stage.AWAITING_ACCEPTANCE

    async def test_third_rejection_goes_to_a_supervisor_to_reassign(self, harness: Harness) -> None:
        """After two rejected reworks the next rejection escalates; only a supervisor reassigns."""
        handle = await harness.book()
        await repair(harness, handle)
        for rework in (1, 2):
            order = await reject(handle)
            assert (order.stage, order.rework_count) == (Stage.ON_SITE, rework)
            await finish(handle)
        order = await reject(handle, "worse than before")
        assert order.stage == Stage.DISPATCHING
        assert order.rework_count == 3
        assert order.needs_reassignment
        assert [(e.to, e.reason) for e in order.escalations] == [("supervisor", "rework_limit")]
        await assert_refused(
            handle,
            RepairOrderWorkflow.assign,
            AssignInput(actor=staff(), technician_id=OTHER_TECHNICIAN),
            "Forbidden",
            "only a supervisor reassigns",
        )
        order = await assign(handle, OTHER_TECHNICIAN, actor=supervisor())
        assert order.stage == Stage.SCHEDULED
        assert order.technician_id == OTHER_TECHNICIAN
        assert not order.needs_reassignment
        escalation = await sent_eventually(harness, Template.ESCALATION, handle.id)
        assert escalation[0].recipient == Recipient.SUPERVISOR

    async def test_without_reworks_allowed_the_first_rejection_escalates(
        self, harness: Harness
    ) -> None:
        """With visit.max_rework = 0, the first rejection already goes to a supervisor."""
        handle = await harness.book(policy=create_policy(visit={"max_rework": 0}))
        await repair(harness, handle)
        order = await reject(handle)
        assert order.stage == Stage.DISPATCHING
        assert order.rework_count == 1
        assert order.needs_reassignment
        assert [(e.to, e.reason) for e in order.escalations] == [("supervisor", "rework_limit")]
        assert harness.records.messages(Template.REWORK_REQUESTED, handle.id) == []

    async def test_new_technician_gets_their_own_reworks(self, harness: Harness) -> None:
        """After a supervisor reassigns, the new technician's first rejection is a rework."""
        handle = await harness.book(policy=create_policy(visit={"max_rework": 1}))
        await repair(harness, handle)
        await reject(handle)
        await finish(handle)
        assert (await reject(handle)).needs_reassignment
        await assign(handle, OTHER_TECHNICIAN, actor=supervisor())
        other = technician(OTHER_TECHNICIAN)
        await handle.execute_update(RepairOrderWorkflow.check_in, ActorInput(actor=other))
        await handle.execute_update(
            RepairOrderWorkflow.submit_service_record,
            ServiceRecordInput(actor=other, record=create_service_record()),
        )
        await handle.execute_update(RepairOrderWorkflow.complete, ActorInput(actor=other))
        order = await reject(handle)
        assert order.stage == Stage.ON_SITE
        assert order.technician_id == OTHER_TECHNICIAN
        assert order.rework_count == 3
        assert not order.needs_reassignment

    async def test_order_waiting_for_reassignment_cannot_be_cancelled(
        self, harness: Harness
    ) -> None:
        """Work was done and rejected: the order is reassigned, not cancelled away."""
        handle = await harness.book(policy=create_policy(visit={"max_rework": 0}))
        await repair(harness, handle)
        await reject(handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.cancel,
            CancelInput(actor=staff(), reason="give up"),
            "ActionRefused",
            "a supervisor reassigns it",
        )

    async def test_accepting_twice_says_it_was_already_accepted(self, harness: Harness) -> None:
        """A second acceptance is refused with the real reason, not "not finished"."""
        handle = await harness.book()
        await repair(harness, handle)
        await accept(handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.record_acceptance,
            AcceptanceInput(actor=customer_of(handle.id), accepted=True),
            "ActionRefused",
            "already accepted",
        )

    async def test_silence_for_72_hours_is_acceptance(self, harness: Harness) -> None:
        """A customer who says nothing for 72 h has accepted; at 71 h nothing has happened."""
        handle = await harness.book()
        order = await repair(harness, handle)
        finished_at = order.timeline[-1].at
        await harness.env.sleep(timedelta(hours=71))
        order = await settled(handle)
        assert order.stage == Stage.AWAITING_ACCEPTANCE
        assert order.acceptance is None
        await harness.env.sleep(timedelta(hours=1, minutes=5))
        order = await order_eventually(handle, lambda o: o.stage == Stage.IN_WARRANTY)
        assert order.acceptance is not None
        assert order.acceptance.deemed
        assert order.acceptance.by == "system"
        waited = order.acceptance.at - finished_at
        assert timedelta(hours=72) <= waited < timedelta(hours=72, minutes=5)
        assert order.warranty_window_ends_at == order.acceptance.at + timedelta(days=90)


class TestSurvey:
    async def test_survey_is_sent_24_hours_after_acceptance(self, harness: Harness) -> None:
        """The satisfaction survey reaches the customer a day after acceptance, not before."""
        handle = await harness.book(customer=create_customer(locale="en"))
        await repair(harness, handle)
        await accept(handle)
        await harness.env.sleep(timedelta(hours=23))
        await settled(handle)
        assert harness.records.messages(Template.SURVEY, handle.id) == []
        await harness.env.sleep(timedelta(hours=1, minutes=5))
        survey = await sent_eventually(harness, Template.SURVEY, handle.id)
        assert [(m.recipient, m.locale) for m in survey] == [(Recipient.CUSTOMER, "en")]

    async def test_answered_survey_is_kept_and_a_second_answer_refused(
        self, harness: Harness
    ) -> None:
        """The customer answers the survey once; a second answer is refused."""
        handle = await harness.book()
        await repair(harness, handle)
        await accept(handle)
        order = await act(
            handle,
            RepairOrderWorkflow.answer_survey,
            SurveyInput(actor=customer_of(handle.id), survey=create_survey()),
        )
        assert order.survey == create_survey()
        await assert_refused(
            handle,
            RepairOrderWorkflow.answer_survey,
            SurveyInput(actor=staff(), survey=create_survey(attitude=1)),
            "ActionRefused",
            "the survey was already answered",
        )


class TestWarrantyWindow:
    async def test_order_closes_when_the_90_day_window_ends(self, harness: Harness) -> None:
        """Accepted work stays in warranty 90 days, with a reminder a week before, then closes."""
        handle = await harness.book()
        await repair(harness, handle)
        order = await accept(handle)
        ends_at = order.warranty_window_ends_at
        assert ends_at is not None
        await harness.env.sleep(timedelta(days=89))
        assert (await settled(handle)).stage == Stage.IN_WARRANTY
        reminder = await sent_eventually(harness, Template.WARRANTY_REMINDER, handle.id)
        assert reminder[0].params["ends_at"] == local_text(ends_at)
        assert await handle.result() == OrderOutcome(order_id=handle.id, stage=Stage.CLOSED)
        closing = (await details(handle)).timeline[-1]
        assert (closing.action, closing.detail) == ("stage:closed", "warranty window ended")
        assert ends_at <= closing.at < ends_at + timedelta(minutes=5)

    async def test_category_override_lengthens_the_window(self, harness: Harness) -> None:
        """An air conditioner under a 180-day policy is still in warranty on day 91."""
        policy = create_policy(warranty={"post_repair_by_category": {"air_conditioner": "180d"}})
        handle = await harness.book(policy=policy, category=Category.AIR_CONDITIONER)
        await repair(harness, handle)
        order = await accept(handle)
        assert order.acceptance is not None
        assert order.warranty_window_ends_at == order.acceptance.at + timedelta(days=180)
        await harness.env.sleep(timedelta(days=91))
        assert (await settled(handle)).stage == Stage.IN_WARRANTY
        assert (await handle.result()).stage == Stage.CLOSED
        closed_at = (await details(handle)).timeline[-1].at
        assert closed_at >= order.acceptance.at + timedelta(days=180)


class TestWarrantyClaim:
    async def test_claim_on_day_89_is_a_free_order_that_keeps_the_original_open(
        self, harness: Harness
    ) -> None:
        """A claim starts a free, urgent re-repair; the original closes once that is accepted."""
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await repair(harness, handle, quote=create_quote_request())
        await accept(handle)
        await harness.env.sleep(timedelta(days=89))

        created = await claim(handle)
        claim_id = f"{handle.id}-W1"
        assert created == ClaimCreated(claim_order_id=claim_id)
        original = await details(handle)
        assert original.claims == [claim_id]
        assert original.open_claims == [claim_id]
        assert (original.timeline[-1].action, original.timeline[-1].detail) == (
            "warranty claim",
            f"{claim_id}: repeat failure",
        )

        claim_order = harness.handle(claim_id)
        assert (await claim_order.describe()).parent_id == handle.id
        order = await details(claim_order)
        assert order.claim_of == handle.id
        assert order.priority == Priority.HIGH
        assert order.warranty.status == WarrantyStatus.OUT_OF_WARRANTY
        assert not order.chargeable
        assert [entry.action for entry in order.timeline[:2]] == ["booked", "linked"]
        await assign(claim_order)
        await check_in(claim_order)
        order = await diagnose(claim_order)  # no quote: the claim is free
        assert order.quote is None
        order = await finish(claim_order)
        assert order.stage == Stage.AWAITING_ACCEPTANCE
        assert order.charges.total == Decimal("0.00")

        await harness.env.sleep(timedelta(days=2))  # the original's window has ended
        original = await settled(handle)
        assert original.stage == Stage.IN_WARRANTY
        assert original.warranty_window_ends_at is not None
        assert await harness.now() > original.warranty_window_ends_at
        await assert_refused(
            handle,
            RepairOrderWorkflow.claim_warranty,
            ClaimInput(actor=customer_of(handle.id), description="again"),
            "ActionRefused",
            "the warranty window ended",
        )

        await accept(claim_order, actor=customer_of(handle.id))  # the original's customer
        assert await handle.result() == OrderOutcome(order_id=handle.id, stage=Stage.CLOSED)
        original = await details(handle)
        assert original.open_claims == []
        assert original.claims == [claim_id]
        assert [entry.action for entry in original.timeline[-2:]] == [
            "claim settled",
            "stage:closed",
        ]
        assert (await details(claim_order)).stage == Stage.IN_WARRANTY

    async def test_quote_on_a_claim_order_is_not_charged(self, harness: Harness) -> None:
        """Even if the technician quotes extra parts on a claim, the re-repair stays free."""
        handle = await harness.book(WarrantyStatus.OUT_OF_WARRANTY)
        await repair(harness, handle, quote=create_quote_request())
        await accept(handle)
        claim_order = harness.handle((await claim(handle)).claim_order_id)
        await assign(claim_order)
        await check_in(claim_order)
        await diagnose(claim_order, quote=create_quote_request())
        await approve_quote(claim_order)
        order = await finish(claim_order)
        assert order.quote is not None
        assert order.quote.total > 0
        assert order.charges.total == Decimal("0.00")

    async def test_claim_on_day_91_finds_the_order_closed(self, harness: Harness) -> None:
        """After the window the order is closed: a claim gets "not found" and starts nothing."""
        handle = await harness.book()
        await repair(harness, handle)
        await accept(handle)
        await harness.env.sleep(timedelta(days=91))
        assert (await handle.result()).stage == Stage.CLOSED
        with pytest.raises(RPCError) as refused:
            await claim(handle)
        assert refused.value.status == RPCStatusCode.NOT_FOUND
        order = await details(handle)
        assert order.stage == Stage.CLOSED
        assert order.claims == []

    async def test_claim_before_acceptance_is_refused(self, harness: Harness) -> None:
        """There is no warranty window to claim in before the work is accepted."""
        handle = await harness.book()
        await repair(harness, handle)
        await assert_refused(
            handle,
            RepairOrderWorkflow.claim_warranty,
            ClaimInput(actor=customer_of(handle.id), description="broken"),
            "ActionRefused",
            "claims are made in the warranty window",
        )


class TestPrivacy:
    async def test_history_holds_no_customer_personal_data_in_clear(self, harness: Harness) -> None:
        """The engine's stored history of an order never shows the customer's phone or name:
        every payload is encrypted (core/codec.py), and this one is readable with the key."""
        handle = await harness.book()
        await assign(handle)
        history = await handle.fetch_history()
        stored = b"".join(event.SerializeToString() for event in history.events)
        customer = create_customer()
        assert customer.phone.encode() not in stored
        assert customer.name.encode() not in stored
        assert customer.address.encode() not in stored
        started = history.events[0].workflow_execution_started_event_attributes
        [order_input] = await converter().decode(started.input.payloads, [OrderInput])
        assert order_input.booking.customer.phone == customer.phone
