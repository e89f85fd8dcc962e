"""The order actions as data: who may take each one and in which stages.

The API's role check, the workflow's validators and the generated routes all read this one
table, so an action's roles and stages are written once (api.md's Orders table).
"""

from dataclasses import dataclass
from enum import StrEnum

from models.order import CANCELLABLE_STAGES, FINAL_STAGES, Role, Stage


class Action(StrEnum):
    """An order action; its value is the name of the workflow update that takes it."""

    RESCHEDULE = "reschedule"
    CANCEL = "cancel"
    ASSIGN = "assign"
    ACCEPT_OFFER = "accept_offer"
    DECLINE_OFFER = "decline_offer"
    CONFIRM_APPOINTMENT = "confirm_appointment"
    CHECK_IN = "check_in"
    DIAGNOSE = "diagnose"
    AUTHORIZE_QUOTE = "authorize_quote"
    APPROVE_QUOTE = "approve_quote"
    DECLINE_QUOTE = "decline_quote"
    REQUEST_PARTS = "request_parts"
    PARTS_ARRIVED = "parts_arrived"
    TO_WORKSHOP = "to_workshop"
    BACK_FROM_WORKSHOP = "back_from_workshop"
    REPORT_HAZARD = "report_hazard"
    CLEAR_HAZARD = "clear_hazard"
    SUBMIT_SERVICE_RECORD = "submit_service_record"
    COMPLETE = "complete"
    RECORD_ACCEPTANCE = "record_acceptance"
    ANSWER_SURVEY = "answer_survey"
    CLAIM_WARRANTY = "claim_warranty"
    FILE_COMPLAINT = "file_complaint"
    CORRECT_DETAILS = "correct_details"


@dataclass(frozen=True)
class ActionRule:
    roles: frozenset[Role]
    stages: frozenset[Stage]
    # The action in words, as refusals say it: "cannot <wording>: order is <stage>; <not_now>".
    wording: str
    not_now: str
    # A technician acts on the order they hold; the offer's actions are the offered one's.
    by_holder: bool = True
    # An order closing once its complaints close takes no more work, but still complaints.
    while_closing: bool = False

    def __post_init__(self) -> None:
        if not self.roles or not self.stages:
            raise ValueError(f"{self.wording}: an action needs roles and stages")


STAFF_SIDE = frozenset({Role.STAFF, Role.SUPERVISOR})
ON_THE_JOB = frozenset({Role.TECHNICIAN})
FOR_THE_CUSTOMER = STAFF_SIDE | {Role.CUSTOMER}
ON_SITE_WORK = frozenset({Stage.ON_SITE, Stage.WAITING_PARTS, Stage.IN_WORKSHOP})
BEFORE_CHECK_IN = "only before check-in"
ON_SITE = frozenset({Stage.ON_SITE})
NOT_FINISHED = frozenset(Stage) - FINAL_STAGES
BEFORE_COMPLETION = frozenset(
    {
        Stage.BOOKED,
        Stage.DISPATCHING,
        Stage.SCHEDULED,
        Stage.ON_SITE,
        Stage.WAITING_PARTS,
        Stage.IN_WORKSHOP,
        Stage.SAFETY_STOP,
    }
)

ACTIONS: dict[Action, ActionRule] = {
    Action.RESCHEDULE: ActionRule(
        FOR_THE_CUSTOMER, CANCELLABLE_STAGES, "reschedule", BEFORE_CHECK_IN
    ),
    Action.CANCEL: ActionRule(
        FOR_THE_CUSTOMER,
        CANCELLABLE_STAGES,
        "cancel",
        "an order can only be cancelled before check-in",
    ),
    Action.ASSIGN: ActionRule(
        STAFF_SIDE, frozenset({Stage.DISPATCHING, Stage.SCHEDULED}), "assign", BEFORE_CHECK_IN
    ),
    Action.ACCEPT_OFFER: ActionRule(
        ON_THE_JOB,
        frozenset({Stage.DISPATCHING}),
        "accept the offer",
        "no offer is open",
        by_holder=False,
    ),
    Action.DECLINE_OFFER: ActionRule(
        ON_THE_JOB,
        frozenset({Stage.DISPATCHING}),
        "decline the offer",
        "no offer is open",
        by_holder=False,
    ),
    Action.CONFIRM_APPOINTMENT: ActionRule(
        ON_THE_JOB, frozenset({Stage.SCHEDULED}), "confirm appointment", "the job must be assigned"
    ),
    Action.CHECK_IN: ActionRule(
        ON_THE_JOB,
        frozenset({Stage.SCHEDULED}),
        "check in",
        "the job must be assigned and not started",
    ),
    Action.DIAGNOSE: ActionRule(ON_THE_JOB, ON_SITE, "diagnose", "diagnosis happens on site"),
    Action.AUTHORIZE_QUOTE: ActionRule(
        frozenset({Role.SUPERVISOR}),
        ON_SITE_WORK,
        "authorize the quote",
        "the quote is decided during the visit",
    ),
    Action.APPROVE_QUOTE: ActionRule(
        FOR_THE_CUSTOMER, ON_SITE_WORK, "approve the quote", "the quote is decided during the visit"
    ),
    Action.DECLINE_QUOTE: ActionRule(
        FOR_THE_CUSTOMER, ON_SITE_WORK, "decline the quote", "the quote is decided during the visit"
    ),
    Action.REQUEST_PARTS: ActionRule(
        ON_THE_JOB, ON_SITE, "request parts", "parts are requested on site"
    ),
    Action.PARTS_ARRIVED: ActionRule(
        STAFF_SIDE | ON_THE_JOB,
        frozenset({Stage.WAITING_PARTS}),
        "record parts arrival",
        "no parts are awaited",
    ),
    Action.TO_WORKSHOP: ActionRule(
        ON_THE_JOB, ON_SITE, "take to the workshop", "the device is taken from site"
    ),
    Action.BACK_FROM_WORKSHOP: ActionRule(
        ON_THE_JOB,
        frozenset({Stage.IN_WORKSHOP}),
        "return from the workshop",
        "it is not in the workshop",
    ),
    Action.REPORT_HAZARD: ActionRule(
        ON_THE_JOB, ON_SITE, "report a hazard", "a hazard is reported on site"
    ),
    Action.CLEAR_HAZARD: ActionRule(
        frozenset({Role.SUPERVISOR}),
        frozenset({Stage.SAFETY_STOP}),
        "clear the hazard",
        "there is no safety stop",
    ),
    Action.SUBMIT_SERVICE_RECORD: ActionRule(
        ON_THE_JOB, ON_SITE, "submit the service record", "it is written on site"
    ),
    Action.COMPLETE: ActionRule(ON_THE_JOB, ON_SITE, "complete", "work is finished on site"),
    Action.RECORD_ACCEPTANCE: ActionRule(
        FOR_THE_CUSTOMER,
        frozenset({Stage.AWAITING_ACCEPTANCE}),
        "record acceptance",
        "the work is not finished",
    ),
    Action.ANSWER_SURVEY: ActionRule(
        FOR_THE_CUSTOMER,
        frozenset({Stage.IN_WARRANTY}),
        "answer the survey",
        "the work is not accepted yet",
    ),
    Action.CLAIM_WARRANTY: ActionRule(
        FOR_THE_CUSTOMER,
        frozenset({Stage.IN_WARRANTY}),
        "claim warranty",
        "claims are made in the warranty window",
    ),
    Action.FILE_COMPLAINT: ActionRule(
        FOR_THE_CUSTOMER,
        NOT_FINISHED,
        "file a complaint",
        "the order is finished",
        while_closing=True,
    ),
    Action.CORRECT_DETAILS: ActionRule(
        FOR_THE_CUSTOMER,
        BEFORE_COMPLETION,
        "correct the details",
        "details are corrected until the work is finished",
    ),
}
