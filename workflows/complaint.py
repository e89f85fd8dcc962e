"""A complaint: its own durable workflow, child of its order, id `<order>-C<n>`.

It climbs a tier whenever a deadline passes unanswered (first reply, then resolution, counted
in working time on the business calendar) and stops climbing at the top tier. While its order
runs it does no I/O: every change is sent to the order, which logs it, records it and sends the
messages, so an order's event log keeps a single writer. A complaint filed on a closed or
cancelled order (whose workflow has ended) records itself in the complaints read model and
sends its own messages; the closed order's event log is left as it was.
"""

import asyncio
from collections import deque
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.actions import failing_only_the_action
from workflows.effects import STALLED_WRITE_PAUSE, run_locally, undeliverable

with workflow.unsafe.imports_passed_through():
    from models.complaint import (
        COMPLAINT_ACTION_ROLES,
        TIER_BOUND_ACTIONS,
        TIER_OWNERS,
        TOP_TIER,
        AfterClose,
        Complaint,
        ComplaintEvent,
        ComplaintInput,
        ComplaintOutcome,
        FollowUpInput,
        Owner,
        ResolveInput,
        fresh_deadlines,
        may_act_on_tier,
        open_complaint,
    )
    from models.notification import Contact, NotificationInput, Recipient, Template
    from models.order import (
        Actor,
        ActorInput,
        ComplaintState,
        Role,
        TimelineEntry,
        local_time_text,
        owns_order,
    )

SYSTEM = "system"
# Patch id: complaints filed before it keep deciding a missed deadline by the clock.
DEADLINE_TIMERS = "complaint-deadline-on-timer"
SHORTEST_WAIT = timedelta(milliseconds=1)
ORDER_SIGNAL = "complaint_changed"  # RepairOrderWorkflow.complaint_changed
Deadline = Literal["first_reply", "resolution"]


def refused(complaint: Complaint, action: str, reason: str) -> ApplicationError:
    """A refusal naming the state and the reason; raised in validators, so nothing is written."""
    return ApplicationError(
        f"cannot {action}: complaint is {complaint.state} at tier {complaint.tier}; {reason}",
        type="ActionRefused",
        non_retryable=True,
    )


def forbidden(action: str, reason: str) -> ApplicationError:
    return ApplicationError(f"cannot {action}: {reason}", type="Forbidden", non_retryable=True)


@workflow.defn
class ComplaintWorkflow:
    @workflow.init
    def __init__(self, input: ComplaintInput) -> None:
        self.policy = input.policy
        self.complaint = open_complaint(input)
        # Each change with its number on the complaint's timeline (its messages' key).
        self._to_order: deque[tuple[int, ComplaintEvent]] = deque()
        self._miss_on_timer = workflow.patched(DEADLINE_TIMERS)
        self._after_close = input.after_close
        # The order logged the filing itself; only the complaint's own timeline needs it.
        self.complaint.timeline.append(
            TimelineEntry(
                at=input.filed_at,
                actor=str(input.filed_by),
                action="filed",
                detail=input.filing.category,
            )
        )
        if self._after_close is not None:  # no order to log it: recorded and told here
            self._tell_order("filed", input.filing.category)

    @workflow.run
    async def run(self, input: ComplaintInput) -> ComplaintOutcome:
        teller = asyncio.create_task(
            self._tell_order_in_turn()
            if self._after_close is None
            else self._effect_in_turn(self._after_close)
        )
        while self.complaint.state != ComplaintState.CLOSED:
            await self._wait_for_change_or_deadline()
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and not self._to_order
        )
        teller.cancel()
        return ComplaintOutcome(
            complaint_id=self.complaint.complaint_id,
            state=self.complaint.state,
            tier=self.complaint.tier,
        )

    async def _wait_for_change_or_deadline(self) -> None:
        """Sleep until someone acts or the next deadline passes; a passed one escalates."""
        seen = self.complaint.model_copy(deep=True)
        due = self._next_deadline()
        if due is None:
            await workflow.wait_condition(lambda: self.complaint != seen)
            return
        which, at = due
        if self._miss_on_timer:
            # Missed when the deadline's timer fires, never by comparing it with
            # workflow.now(), which a first run and a replay may see differently.
            try:
                await workflow.wait_condition(
                    lambda: self.complaint != seen,
                    timeout=max(at - workflow.now(), SHORTEST_WAIT),
                )
            except TimeoutError:
                self._miss(which)
            return
        if at > workflow.now():
            with suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self.complaint != seen, timeout=at - workflow.now()
                )
                return
        self._miss(which)

    def _next_deadline(self) -> tuple[Deadline, datetime] | None:
        """The earliest deadline still running: a first reply while open, a resolution until
        resolved; a deadline already missed at the top tier runs no more."""
        complaint = self.complaint
        running: list[tuple[Deadline, datetime]] = []
        if complaint.state == ComplaintState.OPEN:
            running.append(("first_reply", complaint.deadlines.first_reply))
        if complaint.state in (ComplaintState.OPEN, ComplaintState.ACKNOWLEDGED):
            running.append(("resolution", complaint.deadlines.resolution))
        running = [(which, at) for which, at in running if which not in complaint.overdue]
        return min(running, key=lambda due: due[1]) if running else None

    def _miss(self, which: Deadline) -> None:
        """A missed deadline climbs one tier, giving the new owner the same time again; at the
        top tier it is recorded as overdue and the quality manager is told once more."""
        complaint = self.complaint
        reason = f"complaint_{which}_overdue"
        if complaint.tier >= TOP_TIER:
            complaint.overdue.append(which)
            self._log(SYSTEM, "overdue", f"{which} deadline passed at the top tier")
            self._tell_order("overdue", which, escalated_to=TIER_OWNERS[TOP_TIER], reason=reason)
            return
        complaint.tier += 1
        fresh = fresh_deadlines(workflow.now(), self.policy)
        if which == "first_reply":
            complaint.deadlines = complaint.deadlines.model_copy(
                update={"first_reply": fresh.first_reply}
            )
        else:
            complaint.deadlines = complaint.deadlines.model_copy(
                update={"resolution": fresh.resolution}
            )
        owner = TIER_OWNERS[complaint.tier]
        detail = f"to tier {complaint.tier} ({owner}): {which} deadline passed"
        self._log(SYSTEM, "escalated", detail)
        self._tell_order("escalated", detail, escalated_to=owner, reason=reason)

    # ---- reading ---------------------------------------------------------------------------

    @workflow.query
    def details(self) -> Complaint:
        return self.complaint

    # ---- actions ---------------------------------------------------------------------------

    @workflow.update
    async def acknowledge(self, input: ActorInput) -> Complaint:
        with failing_only_the_action("acknowledge"):
            self.complaint.state = ComplaintState.ACKNOWLEDGED
            self.complaint.acknowledged_at = workflow.now()
            self._log(str(input.actor), "acknowledged")
            detail = f"at tier {self.complaint.tier}"
            self._tell_order("acknowledged", detail, update="acknowledged")
            return self.complaint

    @acknowledge.validator
    def _may_acknowledge(self, input: ActorInput) -> None:
        self._check_caller(input.actor, "acknowledge")
        if self.complaint.state != ComplaintState.OPEN:
            raise refused(self.complaint, "acknowledge", "the first reply was already given")

    @workflow.update
    async def resolve(self, input: ResolveInput) -> Complaint:
        with failing_only_the_action("resolve"):
            complaint = self.complaint
            now = workflow.now()
            complaint.acknowledged_at = complaint.acknowledged_at or now
            complaint.state = ComplaintState.RESOLVED
            complaint.resolved_at = now
            complaint.resolution = input.resolution
            complaint.compensation = input.compensation
            detail = input.resolution
            if input.compensation is not None:
                detail += f" (compensation {input.compensation} {self.policy.charges.currency})"
            self._log(str(input.actor), "resolved", detail)
            self._tell_order("resolved", detail, update="resolved")
            return complaint

    @resolve.validator
    def _may_resolve(self, input: ResolveInput) -> None:
        self._check_caller(input.actor, "resolve")
        if self.complaint.state not in (ComplaintState.OPEN, ComplaintState.ACKNOWLEDGED):
            raise refused(self.complaint, "resolve", "it was already resolved")

    @workflow.update
    async def follow_up(self, input: FollowUpInput) -> Complaint:
        """The customer's answer on the call-back: satisfied closes it; unsatisfied reopens it
        one tier higher, with fresh deadlines for its new owner."""
        with failing_only_the_action("follow up"):
            complaint = self.complaint
            comment = f": {input.comment}" if input.comment else ""
            if input.satisfied:
                complaint.state = ComplaintState.CLOSED
                complaint.closed_at = workflow.now()
                self._log(str(input.actor), "closed", f"customer satisfied{comment}")
                self._tell_order("closed", f"customer satisfied{comment}", update="closed")
                return complaint
            complaint.tier = min(complaint.tier + 1, TOP_TIER)
            complaint.state = ComplaintState.OPEN
            complaint.deadlines = fresh_deadlines(workflow.now(), self.policy)
            complaint.overdue = []
            complaint.acknowledged_at = complaint.resolved_at = None
            complaint.resolution = complaint.compensation = None
            owner = TIER_OWNERS[complaint.tier]
            detail = f"customer not satisfied{comment}; reopened at tier {complaint.tier} ({owner})"
            self._log(str(input.actor), "reopened", detail)
            self._tell_order(
                "reopened",
                detail,
                escalated_to=owner,
                reason="complaint_reopened",
                update="reopened",
            )
            return complaint

    @follow_up.validator
    def _may_follow_up(self, input: FollowUpInput) -> None:
        self._check_caller(input.actor, "follow up")
        if self.complaint.state != ComplaintState.RESOLVED:
            raise refused(self.complaint, "follow up", "the customer is called back once resolved")

    def _check_caller(self, actor: Actor, action: str) -> None:
        """The API checks roles too; this holds even for a caller that goes around it."""
        if actor.role not in COMPLAINT_ACTION_ROLES[action]:
            raise forbidden(action, f"role {actor.role} may not")
        if actor.role == Role.CUSTOMER and not owns_order(actor, self.complaint.order_id):
            raise forbidden(action, "not this customer's complaint")
        if action in TIER_BOUND_ACTIONS and not may_act_on_tier(actor, self.complaint.tier):
            raise forbidden(
                action,
                f"the complaint is at tier {self.complaint.tier}; only a supervisor takes it",
            )

    # ---- effects -----------------------------------------------------------------------------

    def _log(self, actor: str, action: str, detail: str = "") -> None:
        self.complaint.timeline.append(
            TimelineEntry(at=workflow.now(), actor=actor, action=action, detail=detail)
        )

    def _tell_order(
        self,
        action: str,
        detail: str,
        *,
        escalated_to: Owner | None = None,
        reason: str | None = None,
        update: str | None = None,
    ) -> None:
        """Queue the change for the order, which records it and sends the messages."""
        self._to_order.append(
            (
                len(self.complaint.timeline),
                ComplaintEvent(
                    complaint=self.complaint.snapshot(workflow.now()),
                    actor=self.complaint.timeline[-1].actor,
                    action=action,
                    detail=detail,
                    escalated_to=escalated_to,
                    reason=reason,
                    customer_update=update,
                ),
            )
        )

    async def _tell_order_in_turn(self) -> None:
        """One signal at a time, in order: the order's log shows the complaint as it went."""
        order = workflow.get_external_workflow_handle(self.complaint.order_id)
        while True:
            await workflow.wait_condition(lambda: bool(self._to_order))
            await order.signal(ORDER_SIGNAL, self._to_order[0][1])
            self._to_order.popleft()

    async def _effect_in_turn(self, after_close: AfterClose) -> None:
        """Without an order to tell, each change is recorded and its messages sent, in order;
        one that keeps failing is tried again after a pause (sending again is harmless: a
        message's key is sent once)."""
        while True:
            await workflow.wait_condition(lambda: bool(self._to_order))
            seq, event = self._to_order[0]
            try:
                await run_locally("record_complaint", event.complaint)
                for message in self._messages(seq, event, after_close):
                    try:
                        await run_locally("send_notification", message)
                    except ActivityError as error:
                        if not undeliverable(error):
                            raise
                        workflow.logger.warning(
                            "complaint message undeliverable", extra={"key": message.key}
                        )
            except ActivityError as error:
                workflow.logger.warning(
                    "complaint write stalled; tried again later", extra={"error": str(error)}
                )
                await workflow.sleep(STALLED_WRITE_PAUSE)
                continue
            self._to_order.popleft()

    def _messages(
        self, seq: int, event: ComplaintEvent, after_close: AfterClose
    ) -> list[NotificationInput]:
        """The messages the order would send for this change."""
        complaint = event.complaint
        key = f"{complaint.complaint_id}:{seq}"
        params = {"complaint_id": complaint.complaint_id}
        wanted: list[tuple[Template, Recipient, dict[str, str]]] = []
        if event.action == "filed":
            deadline = local_time_text(complaint.first_reply_due, self.policy)
            wanted.append(
                (
                    Template.COMPLAINT_FILED,
                    Recipient.STAFF,
                    params | {"category": complaint.category, "deadline": deadline},
                )
            )
        if event.escalated_to is not None:
            reason = event.reason or "complaint"
            wanted.append(
                (Template.ESCALATION, Recipient(event.escalated_to), params | {"reason": reason})
            )
        if event.customer_update is not None:
            update = {"update": event.customer_update}
            wanted.append((Template.COMPLAINT_UPDATE, Recipient.CUSTOMER, params | update))
        return [
            NotificationInput(
                key=f"{key}:{template}:{recipient}",
                order_id=complaint.order_id,
                template=template,
                recipient=recipient,
                locale=after_close.locale if recipient == Recipient.CUSTOMER else "zh",
                to=after_close.customer if recipient == Recipient.CUSTOMER else Contact(),
                params=values,
            )
            for template, recipient, values in wanted
        ]
