"""The repair order: one durable workflow per order, id = order number.

`run` walks the parts of the process that time drives (booking, deemed acceptance, the
warranty window); people move the order through updates, each with a validator that refuses
an action before anything is written to the history.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.actions import ACTIONS, Action
    from models.complaint import (
        ComplaintEvent,
        ComplaintFiled,
        ComplaintInput,
        FileComplaintInput,
        Owner,
        open_complaint,
    )
    from models.notification import Recipient, Template
    from models.order import (
        ANSWERED_PARTS,
        FINAL_STAGES,
        Acceptance,
        AcceptanceInput,
        ActionDone,
        Actor,
        ActorInput,
        AssignInput,
        CancelInput,
        Charges,
        ClaimCreated,
        ClaimInput,
        Clock,
        DetailsInput,
        DiagnosisInput,
        ErasureInput,
        Escalation,
        Fault,
        HazardInput,
        NoteInput,
        Offer,
        Order,
        OrderBooking,
        OrderInput,
        OrderOutcome,
        PartsInput,
        Priority,
        Quote,
        QuoteRequest,
        QuoteStatus,
        ReasonInput,
        Role,
        ServiceRecordInput,
        Stage,
        SurveyInput,
        TimeWindow,
        WindowInput,
        local_date,
        owns_order,
        reminder_time,
        visit_day,
        window_problem,
    )
    from models.policy import Duration
    from models.pricing import (
        charges_of,
        money,
        off_list_items,
        price,
        settled_charges,
        unpriced_items,
        visit_fee,
    )
    from models.technician import Candidate, CandidateQuery, duty_deadline, first_on_duty

from workflows.actions import failing_only_the_action
from workflows.clocks import Clocks, sleep_until
from workflows.complaint import ComplaintWorkflow
from workflows.effects import ACTIVITY_TIMEOUT, EFFECT_RETRY, SYSTEM, Effects

ArgT = TypeVar("ArgT")
WARRANTY_REMINDER_BEFORE = timedelta(days=7)
# Patch ids: orders started before these changes replay without them.
OFFER_LOOP = "offer-loop"
APPOINTMENT_CLOCK = "appointment-confirm-clock"
CLOCK_TIMERS = "clock-breach-on-timer"
RECHECK_UNDER_LOCK = "recheck-under-lock"
BATCHED_RECORDS = "records-in-batches"
LOCAL_MESSAGES = "messages-from-the-worker"
ERASURE = "personal-data-erasure"
WITHDRAW_OFFER_ON_CANCEL = "withdraw-offer-on-cancel"
COMPLAINT_FILED_NOTICE = "complaint-filed-notice"
CUSTOMER_KEPT_INFORMED = "customer-kept-informed"
FREE_REPAIR_GOES_ON = "declined-extras-keep-the-free-repair"
DIAGNOSIS_WITHDRAWS_QUOTE = "diagnosis-withdraws-quote"
OFF_LIST_PRICES = "off-list-prices-need-a-supervisor"
OFFERS_ON_DUTY = "offers-on-duty"
# The erasure is owed: scheduling it is retried until the engine takes it.
SCHEDULE_ERASURE_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))
# Escalation reasons are codes: the timeline shows them, the notification words them per locale.
ESCALATING_CLOCKS = {
    Clock.RESPONSE: "response_overdue",
    Clock.WORKSHOP_REPAIR: "workshop_overdue",
    Clock.PARTS_DISPATCH: "parts_overdue",
}


def refused(order: Order, action: Action | str, reason: str) -> ApplicationError:
    """A refusal naming the stage and the reason; raised in validators, so nothing is written."""
    return ApplicationError(
        f"cannot {wording(action)}: order is {order.stage}; {reason}",
        type="ActionRefused",
        non_retryable=True,
    )


def wording(action: Action | str) -> str:
    return ACTIONS[action].wording if isinstance(action, Action) else action


def forbidden(action: Action, reason: str) -> ApplicationError:
    return ApplicationError(
        f"cannot {wording(action)}: {reason}", type="Forbidden", non_retryable=True
    )


def too_many(action: Action, reason: str) -> ApplicationError:
    return ApplicationError(
        f"cannot {wording(action)}: {reason}", type="TooMany", non_retryable=True
    )


@workflow.defn
class RepairOrderWorkflow:
    @workflow.init
    def __init__(self, input: OrderInput) -> None:
        booking = input.booking
        self.policy = input.policy
        self.order = Order(
            order_id=input.order_id,
            stage=Stage.BOOKED,
            priority=booking.priority,
            channel=booking.channel,
            category=booking.appliance.category,
            region=booking.customer.region,
            warranty=input.warranty,
            customer=booking.customer,
            appliance=booking.appliance,
            fault=booking.fault,
            booked_at=input.booked_at,
            claim_of=input.claim_of,
            preferred_window=booking.preferred_window,
            charges=Charges(currency=input.policy.charges.currency),
        )
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        # Asked first thing, in this order, so that an order booked before a change keeps the
        # old rules for good (a replay of its first task answers False, and the answer sticks).
        breach_on_timer = workflow.patched(CLOCK_TIMERS)
        self._recheck_under_lock = workflow.patched(RECHECK_UNDER_LOCK)
        batched_records = workflow.patched(BATCHED_RECORDS)
        local_messages = workflow.patched(LOCAL_MESSAGES)
        # Orders booked before this were not told of parts, the workshop, safety stops, nor
        # reminded the day before their visit.
        self._keep_customer_informed = workflow.patched(CUSTOMER_KEPT_INFORMED)
        self._confirmations = 0  # the reminder is for the latest confirmed appointment only
        self.effects = Effects(
            self.order,
            self.policy,
            batched_records=batched_records,
            local_messages=local_messages,
        )
        self.clocks = Clocks(
            self.order,
            self.policy,
            breach_on_timer=breach_on_timer,
            on_breach=self._breached,
            on_stop=self.effects.publish,
        )
        self._rechecking = False
        # Booked here, not in run: an update delivered with the start runs before run does,
        # and must find the order already dispatching with its clocks set.
        self.effects.log(
            str(input.booked_by), "booked", f"{booking.priority} {booking.appliance.category}"
        )
        if input.claim_of:
            self.effects.log(SYSTEM, "linked", f"warranty claim of {input.claim_of}")
        self._book()

    # ---- the process ----------------------------------------------------------------------

    @workflow.run
    async def run(self, input: OrderInput) -> OrderOutcome:
        """Booked (in init), dispatched, visited (through updates), accepted, kept under
        warranty, closed; then the order waits for its claim, complaints and writes."""
        writers = self.effects.start_writing()
        claim = asyncio.create_task(self._settle_claim(input.claim_of)) if input.claim_of else None
        self.effects.start_publishing()
        self.clocks.watch_all()
        await self._dispatch()
        while self.order.stage not in FINAL_STAGES:
            await self._after_the_work()
        await self._wind_down(claim, writers)
        return OrderOutcome(order_id=self.order.order_id, stage=self.order.stage)

    async def _dispatch(self) -> None:
        # Orders booked before the offer loop existed wait for staff to assign by hand.
        if workflow.patched(OFFER_LOOP) and self._looking_for_technician():
            await self._offer_in_turn()

    async def _after_the_work(self) -> None:
        """People move the order up to the end of the work; time drives what follows:
        acceptance (silence is acceptance), the warranty window, closing once complaints are."""
        await workflow.wait_condition(
            lambda: (
                self.order.stage in (Stage.AWAITING_ACCEPTANCE, Stage.IN_WARRANTY, *FINAL_STAGES)
                or self._may_close_now()
            )
        )
        if self.order.stage == Stage.AWAITING_ACCEPTANCE:
            await self._await_acceptance()
        elif self.order.stage == Stage.IN_WARRANTY:
            await self._warranty_window()
        elif self._may_close_now():
            async with self._lock:
                self._move_to(Stage.CLOSED, SYSTEM, f"{self.order.closing}; complaints closed")

    async def _wind_down(
        self, claim: "asyncio.Task[None] | None", writers: list["asyncio.Task[None]"]
    ) -> None:
        if claim is not None:
            await claim
        # A cancelled order stays open to its complaints until the last one closes.
        await workflow.wait_condition(lambda: not self.order.complaints_open)
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and self.effects.written
        )
        # Orders closed before erasure existed keep their personal data until erased by hand.
        if workflow.patched(ERASURE):
            await self._schedule_erasure()
        for writer in writers:
            writer.cancel()

    async def _schedule_erasure(self) -> None:
        erase_at = self.policy.deadline(
            workflow.now(), self.policy.privacy.erase_personal_data_after
        )
        await workflow.execute_activity(
            "schedule_erasure",
            ErasureInput(order_id=self.order.order_id, erase_at=erase_at),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=SCHEDULE_ERASURE_RETRY,
        )

    def _book(self) -> None:
        """Start the clocks, confirm the booking, dispatch; an emergency is dispatched first."""
        priority = self.order.priority
        if priority == Priority.EMERGENCY:
            self._move_to(Stage.DISPATCHING, SYSTEM, "emergency: dispatch first")
        booked_at = self.order.booked_at
        self.clocks.start(Clock.RESPONSE, getattr(self.policy.response_sla, priority), booked_at)
        self.clocks.start(Clock.ARRIVAL, getattr(self.policy.arrival_sla, priority), booked_at)
        if self.order.preferred_window is not None:
            self.clocks.move_deadline(Clock.ARRIVAL, self.order.preferred_window.end)
        self.effects.notify(Template.BOOKING_CONFIRMED, Recipient.CUSTOMER)
        if priority != Priority.EMERGENCY:
            self._move_to(Stage.DISPATCHING, SYSTEM, "looking for a technician")

    def _looking_for_technician(self) -> bool:
        return self.order.stage == Stage.DISPATCHING and self.order.technician_id is None

    async def _offer_in_turn(self) -> None:
        """Offer the job to the best qualified technician not yet asked, one at a time, until
        one accepts; nobody left to ask goes to a supervisor, who assigns by hand."""
        # Orders booked before shifts existed offer at any hour, with wall-clock timeouts.
        if workflow.patched(OFFERS_ON_DUTY):
            await self._offer_on_duty()
            return
        while self._looking_for_technician():
            candidates = await self._find_candidates()
            if not self._looking_for_technician():
                return  # assigned by hand or cancelled meanwhile
            if not candidates:
                async with self._lock:
                    self._escalate("no_technician", "supervisor")
                return
            await self._offer(candidates[0].technician_id)

    async def _offer_on_duty(self) -> None:
        """As `_offer_in_turn`, to technicians on shift (an emergency: or on call) only. With
        nobody qualified on duty now, the job waits for the first of them to come on; an offer's
        time runs only while its technician is on duty, so nobody is passed over for silence
        off shift."""
        emergency = self.order.priority == Priority.EMERGENCY
        while self._looking_for_technician():
            candidates = await self._find_candidates()
            if not self._looking_for_technician():
                return  # assigned by hand or cancelled meanwhile
            now = workflow.now()
            chosen, comes_on = first_on_duty(candidates, self.policy, now, emergency=emergency)
            if chosen is not None:
                timeout = self._offer_timeout()
                # Business units count the same way here: only the technician's duty time.
                amount = (
                    self.policy.business_amount(timeout)
                    if timeout.is_business
                    else timeout.as_timedelta()
                )
                expires_at = duty_deadline(
                    chosen.schedule, self.policy, now, amount, emergency=emergency
                )
                await self._offer(chosen.technician_id, expires_at)
            elif comes_on is not None:
                async with self._lock:
                    self.effects.log(
                        SYSTEM,
                        "waiting for a shift",
                        f"first technician on duty at {self.effects.local(comes_on)}",
                    )
                with suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: not self._looking_for_technician(), timeout=comes_on - now
                    )
            else:
                async with self._lock:
                    self._escalate("no_technician", "supervisor")
                return

    async def _find_candidates(self) -> list[Candidate]:
        candidates: list[Candidate] = await workflow.execute_activity(
            "find_candidates",
            self._candidate_query(),
            result_type=list[Candidate],
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=EFFECT_RETRY,
        )
        return candidates

    def _offer_timeout(self) -> Duration:
        emergency = self.order.priority == Priority.EMERGENCY
        dispatch = self.policy.dispatch
        return dispatch.offer_timeout_emergency if emergency else dispatch.offer_timeout

    async def _offer(self, technician_id: str, expires_at: datetime | None = None) -> None:
        expires_at = expires_at or self.clocks.deadline(self._offer_timeout())
        async with self._lock:
            self.order.offer = Offer(technician_id=technician_id, expires_at=expires_at)
            self.effects.log(
                SYSTEM, "offered", f"to {technician_id} until {expires_at.isoformat()}"
            )
            self.effects.notify(
                Template.JOB_OFFERED,
                Recipient.TECHNICIAN,
                technician_id=technician_id,
                category=self.order.category,
                region=self.order.region,
                deadline=self.effects.local(expires_at),
                **(
                    {"window": self.effects.window_text(self.order.preferred_window)}
                    if self.order.preferred_window
                    else {}
                ),
            )
        with suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self.order.offer is None, timeout=expires_at - workflow.now()
            )
        async with self._lock:
            if self.order.offer is not None:  # nobody answered in time
                self.order.offer = None
                self.order.offered.append(technician_id)
                self.effects.log(SYSTEM, "offer expired", technician_id)
                self.effects.notify(
                    Template.JOB_WITHDRAWN,
                    Recipient.TECHNICIAN,
                    technician_id=technician_id,
                    reason="offer_expired",
                )

    def _candidate_query(self) -> CandidateQuery:
        return CandidateQuery(
            order_id=self.order.order_id,
            category=self.order.category,
            gas_fired=self.order.appliance.gas_fired,
            region=self.order.region,
            on_day=visit_day(self.order, self.policy),
            exclude=tuple(self.order.offered),
        )

    async def _await_acceptance(self) -> None:
        """The customer accepts or rejects; silence for the acceptance timeout is acceptance."""
        deadline = self.clocks.deadline(self.policy.acceptance.timeout)
        try:
            await workflow.wait_condition(
                lambda: self.order.stage != Stage.AWAITING_ACCEPTANCE,
                timeout=deadline - workflow.now(),
            )
        except TimeoutError:
            async with self._lock:
                if self.order.stage == Stage.AWAITING_ACCEPTANCE:
                    self._accept(SYSTEM, deemed=True, signature=None)

    async def _warranty_window(self) -> None:
        """Wait out the window (reminding the customer once), then for open claims, then close."""
        ends_at, acceptance = self.order.warranty_window_ends_at, self.order.acceptance
        if ends_at is None or acceptance is None:
            raise ApplicationError("the warranty window has no end", non_retryable=True)
        if ends_at - acceptance.at >= 2 * WARRANTY_REMINDER_BEFORE:  # only in a window worth it
            await sleep_until(ends_at - WARRANTY_REMINDER_BEFORE)
            self.effects.notify(
                Template.WARRANTY_REMINDER, Recipient.CUSTOMER, ends_at=self.effects.local(ends_at)
            )
        await sleep_until(ends_at)
        if self.order.complaints_open:
            self.effects.log(
                SYSTEM, "window ended", "the order closes once its complaints are closed"
            )
        await workflow.wait_condition(
            lambda: not self.order.open_claims and not self.order.complaints_open
        )
        async with self._lock:
            self._move_to(Stage.CLOSED, SYSTEM, "warranty window ended")

    def _may_close_now(self) -> bool:
        """A job that ended with complaints open closes when the last of them is closed."""
        return (
            self.order.closing is not None
            and self.order.stage not in FINAL_STAGES
            and not self.order.complaints_open
        )

    # ---- reading ---------------------------------------------------------------------------

    @workflow.query
    def details(self) -> Order:
        return self.order.model_copy(update={"pending_writes": self.effects.pending_writes()})

    # ---- booking and dispatch ----------------------------------------------------------------

    @workflow.update
    async def reschedule(self, input: WindowInput) -> ActionDone:
        async with self._acting(self._may_reschedule, input) as before:
            self.order.preferred_window = input.window
            self.order.appointment = None
            self.clocks.move_deadline(Clock.ARRIVAL, input.window.end)
            self.effects.log(
                str(input.actor), "rescheduled", self.effects.window_text(input.window)
            )
            if self.order.technician_id:
                if workflow.patched(APPOINTMENT_CLOCK):  # the technician must confirm again
                    self.clocks.stop(Clock.APPOINTMENT_CONFIRM)
                    self.clocks.start(
                        Clock.APPOINTMENT_CONFIRM, self.policy.dispatch.appointment_confirm
                    )
                self.effects.notify(
                    Template.APPOINTMENT_CHANGED,
                    Recipient.TECHNICIAN,
                    window=self.effects.window_text(input.window),
                )
        return self._answer(before)

    @reschedule.validator
    def _may_reschedule(self, input: WindowInput) -> None:
        self._check(Action.RESCHEDULE, input.actor)
        self._check_window(input.window, Action.RESCHEDULE)

    @workflow.update
    async def correct_details(self, input: DetailsInput) -> ActionDone:
        """Staff correct the contact details, address or fault description; the customer their
        own contact details. The timeline names the fields, never their values."""
        async with self._acting(self._may_correct_details, input) as before:
            changed = []
            if input.customer is not None:
                corrected = input.customer.model_dump(exclude_none=True)
                self.order.customer = self.order.customer.model_copy(update=corrected)
                changed += [f"customer {field}" for field in corrected]
            if input.fault is not None:
                self.order.fault = input.fault
                changed.append("fault description")
            self.effects.log(str(input.actor), "details corrected", ", ".join(changed))
        return self._answer(before)

    @correct_details.validator
    def _may_correct_details(self, input: DetailsInput) -> None:
        self._check(Action.CORRECT_DETAILS, input.actor)
        if input.fault is not None and input.actor.role == Role.CUSTOMER:
            raise forbidden(
                Action.CORRECT_DETAILS, "a customer corrects only their own contact details"
            )
        if input.customer is None and input.fault is None:
            raise refused(self.order, Action.CORRECT_DETAILS, "nothing to correct")

    @workflow.update
    async def cancel(self, input: CancelInput) -> ActionDone:
        async with self._acting(self._may_cancel, input) as before:
            self.order.cancellation_reason = input.reason
            if self.order.appointment is not None and self.order.chargeable:
                # The technician had committed to a time: the visit fee is due.
                self.order.charges = charges_of(self.order, [visit_fee(self.policy)])
            self.clocks.stop_all()
            self._move_to(Stage.CANCELLED, str(input.actor), input.reason)
            self.effects.notify(Template.ORDER_CANCELLED, Recipient.CUSTOMER, reason=input.reason)
            if self.order.technician_id:
                self.effects.notify(
                    Template.JOB_WITHDRAWN, Recipient.TECHNICIAN, reason="cancelled"
                )
            # Orders cancelled before this left the offer open until it expired.
            if self.order.offer is not None and workflow.patched(WITHDRAW_OFFER_ON_CANCEL):
                offered_to, self.order.offer = self.order.offer.technician_id, None
                self.effects.notify(
                    Template.JOB_WITHDRAWN,
                    Recipient.TECHNICIAN,
                    technician_id=offered_to,
                    reason="cancelled",
                )
        return self._answer(before)

    @cancel.validator
    def _may_cancel(self, input: CancelInput) -> None:
        if self.order.stage == Stage.SAFETY_STOP and input.actor.role == Role.SUPERVISOR:
            self._check_caller(input.actor, Action.CANCEL)
            return
        self._check(Action.CANCEL, input.actor)
        if self.order.needs_reassignment:
            raise refused(self.order, Action.CANCEL, "the work was done; a supervisor reassigns it")

    @workflow.update
    async def assign(self, input: AssignInput) -> ActionDone:
        async with self._acting(self._may_assign, input) as before:
            previous, offer = self.order.technician_id, self.order.offer
            self.order.offer = None
            if offer is not None and offer.technician_id != input.technician_id:
                self.effects.notify(
                    Template.JOB_WITHDRAWN,
                    Recipient.TECHNICIAN,
                    technician_id=offer.technician_id,
                    reason="reassigned",
                )
            if previous:
                self.effects.notify(
                    Template.JOB_WITHDRAWN,
                    Recipient.TECHNICIAN,
                    technician_id=previous,
                    reason="reassigned",
                )
            self._take_on(
                input.technician_id, str(input.actor), f"assigned to {input.technician_id}"
            )
        return self._answer(before)

    def _take_on(self, technician_id: str, actor: str, why: str) -> None:
        """The technician now holds the order and must agree a time with the customer."""
        self.order.technician_id = technician_id
        self.order.appointment = None
        self.order.needs_reassignment = False
        self.order.reworks_by_technician = 0
        self.clocks.stop(Clock.RESPONSE)
        if workflow.patched(APPOINTMENT_CLOCK):
            self.clocks.stop(Clock.APPOINTMENT_CONFIRM)
            self.clocks.start(Clock.APPOINTMENT_CONFIRM, self.policy.dispatch.appointment_confirm)
        self._move_to(Stage.SCHEDULED, actor, why)
        self.effects.notify(Template.JOB_ASSIGNED, Recipient.TECHNICIAN)
        self.effects.notify(Template.TECHNICIAN_ASSIGNED, Recipient.CUSTOMER)

    @assign.validator
    def _may_assign(self, input: AssignInput) -> None:
        if self.order.needs_reassignment:
            self._check_caller(input.actor, Action.ASSIGN)
            if input.actor.role != Role.SUPERVISOR:
                raise forbidden(Action.ASSIGN, "after the rework limit only a supervisor reassigns")
        else:
            self._check(Action.ASSIGN, input.actor)
        if input.technician_id == self.order.technician_id:
            raise refused(
                self.order, Action.ASSIGN, f"it is already assigned to {input.technician_id}"
            )

    @workflow.update
    async def accept_offer(self, input: ActorInput) -> ActionDone:
        async with self._acting(self._may_accept_offer, input) as before:
            self.order.offer = None
            self._take_on(input.actor.technician_id or "", str(input.actor), "accepted the offer")
        return self._answer(before)

    @accept_offer.validator
    def _may_accept_offer(self, input: ActorInput) -> None:
        self._check_offer_holder(input.actor, Action.ACCEPT_OFFER)

    @workflow.update
    async def decline_offer(self, input: ReasonInput) -> ActionDone:
        async with self._acting(self._may_decline_offer, input) as before:
            offer = self.order.offer
            if offer is None:  # the validator, run again under the lock, makes sure
                raise refused(self.order, Action.DECLINE_OFFER, "no offer is open")
            self.order.offer = None
            self.order.offered.append(offer.technician_id)
            self.effects.log(str(input.actor), "offer declined", input.reason)
        return self._answer(before)

    @decline_offer.validator
    def _may_decline_offer(self, input: ReasonInput) -> None:
        self._check_offer_holder(input.actor, Action.DECLINE_OFFER)

    def _check_offer_holder(self, actor: Actor, action: Action) -> None:
        self._check(action, actor)
        offer = self.order.offer
        if offer is None:
            raise refused(self.order, action, ACTIONS[action].not_now)
        if actor.technician_id != offer.technician_id:
            raise forbidden(action, "the offer is held by another technician")

    @workflow.update
    async def confirm_appointment(self, input: WindowInput) -> ActionDone:
        async with self._acting(self._may_confirm_appointment, input) as before:
            self.order.appointment = input.window
            self.clocks.stop(Clock.APPOINTMENT_CONFIRM)
            self.clocks.move_deadline(Clock.ARRIVAL, input.window.end)
            self.effects.log(
                str(input.actor), "appointment confirmed", self.effects.window_text(input.window)
            )
            if self.order.chargeable:
                # Cancelling a confirmed visit costs the visit fee: the customer is told first.
                fee = money(self.policy.charges.visit_fee, self.order)
                self.effects.notify(
                    Template.APPOINTMENT_CONFIRMED_WITH_FEE, Recipient.CUSTOMER, fee=fee
                )
            else:
                self.effects.notify(Template.APPOINTMENT_CONFIRMED, Recipient.CUSTOMER)
            if self._keep_customer_informed:
                self._confirmations += 1
                self._spawn(self._remind_day_before(input.window, self._confirmations))
        return self._answer(before)

    async def _remind_day_before(self, appointment: TimeWindow, confirmation: int) -> None:
        """Remind the customer of the visit the day before, unless it was moved meanwhile."""
        remind_at = reminder_time(appointment, self.policy)
        if remind_at <= workflow.now():
            return  # confirmed too late for a reminder: the confirmation just told them
        await sleep_until(remind_at)
        if (
            self._confirmations == confirmation
            and self.order.appointment is not None
            and self.order.stage == Stage.SCHEDULED
        ):
            self.effects.notify(Template.APPOINTMENT_REMINDER, Recipient.CUSTOMER)

    @confirm_appointment.validator
    def _may_confirm_appointment(self, input: WindowInput) -> None:
        self._check(Action.CONFIRM_APPOINTMENT, input.actor)
        self._check_window(input.window, Action.CONFIRM_APPOINTMENT)

    # ---- on site ---------------------------------------------------------------------------

    @workflow.update
    async def check_in(self, input: ActorInput) -> ActionDone:
        async with self._acting(self._may_check_in, input) as before:
            self.clocks.stop(Clock.ARRIVAL)
            # Arriving without a confirmed time (an emergency, say) ends the wait for one.
            self.clocks.stop(Clock.APPOINTMENT_CONFIRM)
            if Clock.GENERAL_REPAIR not in self.order.sla:
                self.clocks.start(Clock.GENERAL_REPAIR, self.policy.visit.general_repair)
            self._move_to(Stage.ON_SITE, str(input.actor), "arrived")
        return self._answer(before)

    @check_in.validator
    def _may_check_in(self, input: ActorInput) -> None:
        self._check(Action.CHECK_IN, input.actor)

    @workflow.update
    async def diagnose(self, input: DiagnosisInput) -> ActionDone:
        """The fault found; its quote replaces any earlier one, and a diagnosis without a quote
        withdraws it."""
        async with self._acting(self._may_diagnose, input) as before:
            self.order.diagnosis = input.diagnosis
            detail = input.diagnosis.fault_cause
            if input.diagnosis.warranty_exclusion:
                detail += f" (not covered: {input.diagnosis.warranty_exclusion})"
            self.effects.log(str(input.actor), "diagnosed", detail)
            if input.quote is not None:
                self._offer_quote(input.quote, str(input.actor))
            # Orders diagnosed again before this kept their earlier quote.
            elif self.order.quote is not None and workflow.patched(DIAGNOSIS_WITHDRAWS_QUOTE):
                self.order.quote = None
                self.effects.log(str(input.actor), "quote withdrawn", "the diagnosis needs none")
        return self._answer(before)

    def _offer_quote(self, request: QuoteRequest, actor: str) -> None:
        """Price the quote and put it to the customer; a labour amount off the price list goes
        to a supervisor first (orders quoted before this went straight to the customer)."""
        replacing = self.order.quote is not None
        quote = self._price(request)
        total = money(quote.total, self.order)
        action = "quote replaced" if replacing else "quoted"
        off_list = off_list_items(request, self.policy, self.order.category)
        if off_list and workflow.patched(OFF_LIST_PRICES):
            self.order.quote = quote.model_copy(update={"status": QuoteStatus.AWAITING_SUPERVISOR})
            self.effects.log(actor, action, f"{total}; off the price list: {', '.join(off_list)}")
            self._escalate("quote_off_list", "supervisor")
            return
        self.order.quote = quote
        self.effects.log(actor, action, total)
        self.effects.notify(Template.QUOTE_TO_APPROVE, Recipient.CUSTOMER, total=total)

    @diagnose.validator
    def _may_diagnose(self, input: DiagnosisInput) -> None:
        self._check(Action.DIAGNOSE, input.actor)
        if input.quote is None and self.order.chargeable_with(input.diagnosis, quoted=True):
            raise refused(self.order, Action.DIAGNOSE, "a chargeable repair needs a quote")
        if input.quote is not None and (
            unpriced := unpriced_items(input.quote, self.policy, self.order.category)
        ):
            raise refused(
                self.order,
                Action.DIAGNOSE,
                f"'{unpriced[0]}' has no amount and is not on the price list",
            )

    @workflow.update
    async def authorize_quote(self, input: ActorInput) -> ActionDone:
        """A supervisor accepts the quote's off-list prices; then the customer sees it."""
        async with self._acting(self._may_authorize_quote, input) as before:
            quote = self._quote().model_copy(update={"status": QuoteStatus.PENDING})
            self.order.quote = quote
            total = money(quote.total, self.order)
            self.effects.log(str(input.actor), "quote authorized", total)
            self.effects.notify(Template.QUOTE_TO_APPROVE, Recipient.CUSTOMER, total=total)
        return self._answer(before)

    @authorize_quote.validator
    def _may_authorize_quote(self, input: ActorInput) -> None:
        self._check(Action.AUTHORIZE_QUOTE, input.actor)
        quote = self.order.quote
        if quote is None or quote.status != QuoteStatus.AWAITING_SUPERVISOR:
            raise refused(self.order, Action.AUTHORIZE_QUOTE, "no quote waits for a supervisor")

    @workflow.update
    async def approve_quote(self, input: ActorInput) -> ActionDone:
        async with self._acting(self._may_approve_quote, input) as before:
            self.order.quote = self._quote().model_copy(update={"status": QuoteStatus.APPROVED})
            self.effects.log(
                str(input.actor), "quote approved", money(self.order.quote.total, self.order)
            )
        return self._answer(before)

    @approve_quote.validator
    def _may_approve_quote(self, input: ActorInput) -> None:
        self._check_quote_decision(input.actor, Action.APPROVE_QUOTE)

    @workflow.update
    async def decline_quote(self, input: ActorInput) -> ActionDone:
        """On a free order the quote holds only extras: declining them, the free repair goes on.
        Otherwise it ends the job: the visit fee and no warranty window."""
        async with self._acting(self._may_decline_quote, input) as before:
            self.order.quote = self._quote().model_copy(update={"status": QuoteStatus.DECLINED})
            total = money(self.order.quote.total, self.order)
            # Free orders that declined extras before this were closed unrepaired.
            if not self.order.chargeable and workflow.patched(FREE_REPAIR_GOES_ON):
                self.effects.log(
                    str(input.actor), "quote declined", f"{total}; the free repair goes on"
                )
                return self._answer(before)
            self.effects.log(str(input.actor), "quote declined", total)
            if self.order.chargeable:
                self.order.charges = charges_of(self.order, [visit_fee(self.policy)])
            self.clocks.stop_all()
            why = "quote declined: nothing repaired"
            if self.order.complaints_open:
                self.order.closing = why
                self.effects.log(
                    str(input.actor), "closing", f"{why}; closes once complaints are closed"
                )
            else:
                self._move_to(Stage.CLOSED, str(input.actor), why)
        return self._answer(before)

    @decline_quote.validator
    def _may_decline_quote(self, input: ActorInput) -> None:
        self._check_quote_decision(input.actor, Action.DECLINE_QUOTE)

    @workflow.update
    async def request_parts(self, input: PartsInput) -> ActionDone:
        async with self._acting(self._may_request_parts, input) as before:
            self.order.parts_requested = input.parts
            self.clocks.pause(Clock.GENERAL_REPAIR)
            self.clocks.start(Clock.PARTS_DISPATCH, self.policy.visit.parts_dispatch)
            parts = ", ".join(f"{p.qty} x {p.part_no}" for p in input.parts)
            self._move_to(Stage.WAITING_PARTS, str(input.actor), parts)
            if self._keep_customer_informed:
                expected = input.expected_by or self.order.sla[Clock.PARTS_DISPATCH].deadline
                self.effects.notify(
                    Template.PARTS_AWAITED,
                    Recipient.CUSTOMER,
                    expected=self.effects.local(expected),
                )
        return self._answer(before)

    @request_parts.validator
    def _may_request_parts(self, input: PartsInput) -> None:
        self._check(Action.REQUEST_PARTS, input.actor)
        if (
            input.expected_by is not None
            and not self._rechecking
            and input.expected_by <= workflow.now()
        ):
            raise refused(self.order, Action.REQUEST_PARTS, "expected_by is not in the future")

    @workflow.update
    async def parts_arrived(self, input: ActorInput) -> ActionDone:
        async with self._acting(self._may_record_parts_arrival, input) as before:
            self.clocks.stop(Clock.PARTS_DISPATCH)
            self.clocks.resume(Clock.GENERAL_REPAIR)
            self._move_to(Stage.ON_SITE, str(input.actor), "parts arrived")
        return self._answer(before)

    @parts_arrived.validator
    def _may_record_parts_arrival(self, input: ActorInput) -> None:
        self._check(Action.PARTS_ARRIVED, input.actor)

    @workflow.update
    async def to_workshop(self, input: ActorInput) -> ActionDone:
        async with self._acting(self._may_take_to_workshop, input) as before:
            self.clocks.pause(Clock.GENERAL_REPAIR)
            self.clocks.start(Clock.WORKSHOP_REPAIR, self.policy.visit.workshop_repair)
            self._move_to(Stage.IN_WORKSHOP, str(input.actor), "device taken to the workshop")
            if self._keep_customer_informed:
                expected = self.order.sla[Clock.WORKSHOP_REPAIR].deadline
                self.effects.notify(
                    Template.DEVICE_TO_WORKSHOP,
                    Recipient.CUSTOMER,
                    expected=self.effects.local(expected),
                )
        return self._answer(before)

    @to_workshop.validator
    def _may_take_to_workshop(self, input: ActorInput) -> None:
        self._check(Action.TO_WORKSHOP, input.actor)

    @workflow.update
    async def back_from_workshop(self, input: ActorInput) -> ActionDone:
        async with self._acting(self._may_return_from_workshop, input) as before:
            self.clocks.stop(Clock.WORKSHOP_REPAIR)
            self.clocks.resume(Clock.GENERAL_REPAIR)
            self._move_to(Stage.ON_SITE, str(input.actor), "device returned")
            if self._keep_customer_informed:
                self.effects.notify(Template.DEVICE_BACK, Recipient.CUSTOMER)
        return self._answer(before)

    @back_from_workshop.validator
    def _may_return_from_workshop(self, input: ActorInput) -> None:
        self._check(Action.BACK_FROM_WORKSHOP, input.actor)

    @workflow.update
    async def report_hazard(self, input: HazardInput) -> ActionDone:
        """All work halts; the repair clock pauses until a supervisor clears the site."""
        async with self._acting(self._may_report_hazard, input) as before:
            self.order.hazard = input.description
            self.clocks.pause(Clock.GENERAL_REPAIR)
            self._move_to(Stage.SAFETY_STOP, str(input.actor), input.description)
            self._escalate("safety_stop", "supervisor")
            if self._keep_customer_informed:
                self.effects.notify(Template.SAFETY_STOP, Recipient.CUSTOMER)
        return self._answer(before)

    @report_hazard.validator
    def _may_report_hazard(self, input: HazardInput) -> None:
        self._check(Action.REPORT_HAZARD, input.actor)

    @workflow.update
    async def clear_hazard(self, input: NoteInput) -> ActionDone:
        async with self._acting(self._may_clear_hazard, input) as before:
            self.order.hazard = None
            self.clocks.resume(Clock.GENERAL_REPAIR)
            self._move_to(Stage.ON_SITE, str(input.actor), input.note)
            if self._keep_customer_informed:
                self.effects.notify(Template.SAFETY_CLEARED, Recipient.CUSTOMER)
        return self._answer(before)

    @clear_hazard.validator
    def _may_clear_hazard(self, input: NoteInput) -> None:
        self._check(Action.CLEAR_HAZARD, input.actor)

    @workflow.update
    async def submit_service_record(self, input: ServiceRecordInput) -> ActionDone:
        async with self._acting(self._may_submit_service_record, input) as before:
            self.order.service_record = input.record
            self.effects.log(str(input.actor), "service record", input.record.repair_item)
        return self._answer(before)

    @submit_service_record.validator
    def _may_submit_service_record(self, input: ServiceRecordInput) -> None:
        self._check(Action.SUBMIT_SERVICE_RECORD, input.actor)

    @workflow.update
    async def complete(self, input: ActorInput) -> ActionDone:
        async with self._acting(self._may_complete, input) as before:
            self.clocks.stop(Clock.GENERAL_REPAIR)
            self.order.charges = settled_charges(self.order)
            self._move_to(Stage.AWAITING_ACCEPTANCE, str(input.actor), "work finished")
            self.effects.notify(
                Template.WORK_DONE,
                Recipient.CUSTOMER,
                total=money(self.order.charges.total, self.order),
            )
        return self._answer(before)

    @complete.validator
    def _may_complete(self, input: ActorInput) -> None:
        self._check(Action.COMPLETE, input.actor)
        if self.order.service_record is None:
            raise refused(self.order, Action.COMPLETE, "the service record is missing")
        quote = self.order.quote
        # A declined quote on a free order declined only its extras.
        if quote is not None and quote.status not in (QuoteStatus.APPROVED, QuoteStatus.DECLINED):
            raise refused(self.order, Action.COMPLETE, "the quote is not approved by the customer")
        if self.order.chargeable and (quote is None or quote.status != QuoteStatus.APPROVED):
            raise refused(
                self.order, Action.COMPLETE, "a chargeable repair needs an approved quote"
            )

    # ---- acceptance, survey, warranty ---------------------------------------------------------

    @workflow.update
    async def record_acceptance(self, input: AcceptanceInput) -> ActionDone:
        async with self._acting(self._may_record_acceptance, input) as before:
            if input.accepted:
                self._accept(str(input.actor), deemed=False, signature=input.signature)
            else:
                self._rework(str(input.actor), input.reason or "")
        return self._answer(before)

    @record_acceptance.validator
    def _may_record_acceptance(self, input: AcceptanceInput) -> None:
        if self.order.acceptance is not None and self.order.stage != Stage.AWAITING_ACCEPTANCE:
            self._check_caller(input.actor, Action.RECORD_ACCEPTANCE)
            raise refused(self.order, Action.RECORD_ACCEPTANCE, "the work was already accepted")
        self._check(Action.RECORD_ACCEPTANCE, input.actor)

    @workflow.update
    async def answer_survey(self, input: SurveyInput) -> ActionDone:
        async with self._acting(self._may_answer_survey, input) as before:
            self.order.survey = input.survey
            scores = input.survey
            self.effects.log(
                str(input.actor),
                "survey answered",
                f"attitude {scores.attitude}, quality {scores.quality}, "
                f"result {scores.result}, speed {scores.speed}",
            )
        return self._answer(before)

    @answer_survey.validator
    def _may_answer_survey(self, input: SurveyInput) -> None:
        self._check(Action.ANSWER_SURVEY, input.actor)
        if self.order.survey is not None:
            raise refused(self.order, Action.ANSWER_SURVEY, "the survey was already answered")

    @workflow.update
    async def claim_warranty(self, input: ClaimInput) -> ClaimCreated:
        """Start a free, high-priority re-repair order linked to this one."""
        async with self._acting(self._may_claim_warranty, input):
            claim_id = f"{self.order.order_id}-W{len(self.order.claims) + 1}"
            self.order.claims.append(claim_id)
            self.order.open_claims.append(claim_id)
            self.effects.log(str(input.actor), "warranty claim", f"{claim_id}: repeat failure")
            await workflow.start_child_workflow(
                RepairOrderWorkflow.run,
                self._claim_input(claim_id, input),
                id=claim_id,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            )
        return ClaimCreated(claim_order_id=claim_id)

    @claim_warranty.validator
    def _may_claim_warranty(self, input: ClaimInput) -> None:
        self._check(Action.CLAIM_WARRANTY, input.actor)
        ends_at = self.order.warranty_window_ends_at
        if not self._rechecking and ends_at is not None and workflow.now() >= ends_at:
            raise refused(
                self.order, Action.CLAIM_WARRANTY, f"the warranty window ended at {ends_at}"
            )
        limit = self.policy.limits.warranty_claims_per_order
        if len(self.order.claims) >= limit:
            raise too_many(Action.CLAIM_WARRANTY, f"an order takes at most {limit} warranty claims")

    # ---- complaints ------------------------------------------------------------------------

    @workflow.update
    async def file_complaint(self, input: FileComplaintInput) -> ComplaintFiled:
        """Start the complaint's own workflow; the order stays open until it is closed."""
        async with self._acting(self._may_file_complaint, input):
            complaint_id = f"{self.order.order_id}-C{len(self.order.complaints) + 1}"
            complaint_input = ComplaintInput(
                complaint_id=complaint_id,
                order_id=self.order.order_id,
                filing=input.filing,
                filed_by=input.actor,
                filed_at=workflow.now(),
                technician_id=self.order.technician_id,
                policy=self.policy,
            )
            complaint = open_complaint(complaint_input)
            self.order.complaints.append(complaint.summary())
            about = " (about the work)" if input.filing.concerns_work else ""
            self.effects.log(
                str(input.actor),
                "complaint filed",
                f"{complaint_id}: {input.filing.category}{about}",
                complaint=complaint.snapshot(workflow.now()),
            )
            # Complaints filed before this told nobody until their first deadline passed.
            if workflow.patched(COMPLAINT_FILED_NOTICE):
                self.effects.notify(
                    Template.COMPLAINT_FILED,
                    Recipient.STAFF,
                    complaint_id=complaint_id,
                    category=input.filing.category,
                    deadline=self.effects.local(complaint.deadlines.first_reply),
                )
            await workflow.start_child_workflow(
                ComplaintWorkflow.run, complaint_input, id=complaint_id
            )
        return ComplaintFiled(complaint_id=complaint_id)

    @file_complaint.validator
    def _may_file_complaint(self, input: FileComplaintInput) -> None:
        self._check(Action.FILE_COMPLAINT, input.actor)
        limit = self.policy.complaint.per_order_per_day
        today = local_date(workflow.now(), self.policy)
        filed_today = sum(
            1
            for complaint in self.order.complaints
            if complaint.filed_at is not None
            and local_date(complaint.filed_at, self.policy) == today
        )
        if not self._rechecking and filed_today >= limit:
            raise too_many(
                Action.FILE_COMPLAINT, f"an order takes at most {limit} complaints a day"
            )

    @workflow.signal
    def complaint_changed(self, event: ComplaintEvent) -> None:
        """A complaint's change: shown on the order, recorded in its log, messages sent."""
        snapshot = event.complaint
        self.order.complaints = [
            c.model_copy(update={"state": snapshot.state, "tier": snapshot.tier})
            if c.complaint_id == snapshot.complaint_id
            else c
            for c in self.order.complaints
        ]
        self.effects.log(
            event.actor,
            f"complaint {event.action}",
            f"{snapshot.complaint_id}: {event.detail}",
            complaint=snapshot,
        )
        if event.escalated_to is not None:
            self._escalate(
                event.reason or "complaint", event.escalated_to, complaint_id=snapshot.complaint_id
            )
        if event.customer_update is not None:
            self.effects.notify(
                Template.COMPLAINT_UPDATE,
                Recipient.CUSTOMER,
                complaint_id=snapshot.complaint_id,
                update=event.customer_update,
            )

    @workflow.signal
    def claim_settled(self, claim_id: str) -> None:
        """A claim order tells its original when its repair is accepted (or it ends)."""
        if claim_id in self.order.open_claims:
            self.order.open_claims.remove(claim_id)
            self.effects.log(SYSTEM, "claim settled", claim_id)

    # ---- rules shared by the updates ------------------------------------------------------------

    def _accept(self, actor: str, *, deemed: bool, signature: str | None) -> None:
        now = workflow.now()
        self.order.acceptance = Acceptance(at=now, by=actor, deemed=deemed, signature=signature)
        ends_at = now + self.policy.warranty.post_repair_for(self.order.category).as_timedelta()
        self.order.warranty_window_ends_at = ends_at
        why = "deemed accepted: no answer in time" if deemed else "accepted"
        self._move_to(Stage.IN_WARRANTY, actor, f"{why}; warranty window until {ends_at}")
        self._spawn(self._send_survey_later())

    def _rework(self, actor: str, reason: str) -> None:
        self.order.rework_count += 1
        self.order.reworks_by_technician += 1
        self.order.service_record = None
        if self.order.reworks_by_technician > self.policy.visit.max_rework:
            self.order.needs_reassignment = True
            self._move_to(Stage.DISPATCHING, actor, f"rejected again: {reason}")
            self._escalate("rework_limit", "supervisor")
        else:
            self._move_to(
                Stage.ON_SITE, actor, f"rejected, rework {self.order.rework_count}: {reason}"
            )
            self.effects.notify(Template.REWORK_REQUESTED, Recipient.TECHNICIAN, reason=reason)

    async def _send_survey_later(self) -> None:
        await workflow.sleep(self.policy.acceptance.survey_delay.as_timedelta())
        if self.order.stage == Stage.IN_WARRANTY and self.order.survey is None:
            self.effects.notify(Template.SURVEY, Recipient.CUSTOMER)

    async def _settle_claim(self, original_id: str) -> None:
        """A claim order keeps its original open until the re-repair is accepted or ends."""
        await workflow.wait_condition(
            lambda: self.order.stage in (Stage.IN_WARRANTY, *FINAL_STAGES)
        )
        original = workflow.get_external_workflow_handle(original_id)
        await original.signal(RepairOrderWorkflow.claim_settled, self.order.order_id)

    def _claim_input(self, claim_id: str, input: ClaimInput) -> OrderInput:
        booking = self.order
        return OrderInput(
            order_id=claim_id,
            booking=OrderBooking(
                customer=booking.customer,
                appliance=booking.appliance,
                fault=Fault(description=input.description),
                priority=Priority.HIGH,
                channel=booking.channel,
            ),
            booked_by=input.actor,
            booked_at=workflow.now(),
            warranty=booking.warranty,
            policy=self.policy,
            claim_of=self.order.order_id,
        )

    def _check(self, action: Action, actor: Actor) -> None:
        """The caller may take the action (models.actions), and the order is in a stage for it."""
        rule = ACTIONS[action]
        self._check_caller(actor, action)
        if self.order.closing is not None and not rule.while_closing:
            raise refused(
                self.order, action, f"{self.order.closing}; it closes once complaints are closed"
            )
        if self.order.stage not in rule.stages:
            raise refused(self.order, action, rule.not_now)

    def _check_caller(self, actor: Actor, action: Action) -> None:
        """The API checks roles too; this holds even for a caller that goes around it."""
        rule = ACTIONS[action]
        if actor.role not in rule.roles:
            raise forbidden(action, f"role {actor.role} may not")
        if actor.role == Role.CUSTOMER and not owns_order(actor, self.order.order_id):
            raise forbidden(action, "not this customer's order")
        if (
            rule.by_holder
            and actor.role == Role.TECHNICIAN
            and actor.technician_id != self.order.technician_id
        ):
            raise forbidden(action, "the order is not assigned to this technician")

    def _check_window(self, window: TimeWindow, action: Action) -> None:
        """Not over yet, nor starting further ahead than the policy's booking horizon."""
        if self._rechecking:
            return
        if problem := window_problem(window, workflow.now(), self.policy):
            raise refused(self.order, action, problem[1])

    def _quote(self) -> Quote:
        if self.order.quote is None:
            raise refused(self.order, "decide the quote", "there is no quote")
        return self.order.quote

    @asynccontextmanager
    async def _acting(
        self, check: Callable[[ArgT], None], input: ArgT
    ) -> AsyncIterator[dict[str, Any]]:
        """Hold the order for one action. The action's checks run again once the lock is held:
        the order may have moved on while the action waited for it. A refusal here, or any
        error in the action, fails the one update, never the workflow task."""
        async with self._lock:
            if self._recheck_under_lock:
                # Checks against the clock are the validator's alone: workflow.now() may differ
                # between a first run and a replay, and a decision here must not.
                self._rechecking = True
                try:
                    check(input)
                finally:
                    self._rechecking = False
            update = workflow.current_update_info()
            with failing_only_the_action(update.name if update else "act"):
                yield self._answered_parts()

    def _answered_parts(self) -> dict[str, Any]:
        return self.order.model_dump(mode="json", include=set(ANSWERED_PARTS))

    def _answer(self, before: dict[str, Any]) -> ActionDone:
        """The order's stage and latest event, and the parts the action changed."""
        after = self._answered_parts()
        return ActionDone(
            order_id=self.order.order_id,
            stage=self.order.stage,
            seq=len(self.order.timeline),
            changed={part: value for part, value in after.items() if before.get(part) != value},
        )

    def _check_quote_decision(self, actor: Actor, action: Action) -> None:
        self._check(action, actor)
        if (
            self.order.quote is not None
            and self.order.quote.status == QuoteStatus.AWAITING_SUPERVISOR
        ):
            raise refused(
                self.order, action, "its off-list prices wait for a supervisor's approval"
            )
        if self.order.quote is None or self.order.quote.status != QuoteStatus.PENDING:
            raise refused(self.order, action, "there is no quote waiting for an answer")

    def _price(self, request: QuoteRequest) -> Quote:
        chargeable = self.order.chargeable_with(self.order.diagnosis, quoted=True)
        return price(request, self.policy, self.order.category, chargeable=chargeable)

    # ---- clocks ---------------------------------------------------------------------------

    def _breached(self, clock: Clock) -> None:
        self.effects.log(
            SYSTEM, "sla breached", f"{clock}: deadline {self.order.sla[clock].deadline}"
        )
        if clock in ESCALATING_CLOCKS:
            self._escalate(ESCALATING_CLOCKS[clock], "supervisor")
        if clock == Clock.ARRIVAL:
            self.effects.notify(Template.DELAY, Recipient.CUSTOMER)
        if clock == Clock.APPOINTMENT_CONFIRM:
            self.effects.notify(
                Template.CONTACT_CUSTOMER_REMINDER,
                Recipient.TECHNICIAN,
                deadline=self.effects.local(
                    self.clocks.deadline(self.policy.dispatch.appointment_confirm)
                ),
            )
            self._spawn(self._escalate_unconfirmed_appointment())
        self.effects.publish()

    async def _escalate_unconfirmed_appointment(self) -> None:
        """A reminded technician who still has not agreed a time is staff's to chase."""
        technician_id = self.order.technician_id
        await sleep_until(self.clocks.deadline(self.policy.dispatch.appointment_confirm))
        if (
            self.order.stage == Stage.SCHEDULED
            and self.order.technician_id == technician_id
            and self.order.appointment is None
        ):
            self._escalate("appointment_unconfirmed", "staff")

    def _escalate(self, reason: str, to: Owner, **params: str) -> None:
        self.order.escalations.append(Escalation(reason=reason, to=to, at=workflow.now()))
        about = "".join(f" ({value})" for value in params.values())
        self.effects.log(SYSTEM, "escalated", f"to {to}: {reason}{about}")
        self.effects.notify(Template.ESCALATION, Recipient(to), reason=reason, **params)

    # ---- effects: timeline, records, notifications, search attributes -------------------------

    def _move_to(self, stage: Stage, actor: str, why: str) -> None:
        self.order.stage = stage
        self.effects.log(actor, f"stage:{stage}", why)
        self.effects.publish()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
