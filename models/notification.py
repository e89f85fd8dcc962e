"""Notifications the workflows ask for; the activity renders and delivers them."""

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Recipient(StrEnum):
    CUSTOMER = "customer"
    TECHNICIAN = "technician"
    STAFF = "staff"
    SUPERVISOR = "supervisor"
    QUALITY_MANAGER = "quality_manager"


class Template(StrEnum):
    # customer
    BOOKING_CONFIRMED = "booking_confirmed"
    TECHNICIAN_ASSIGNED = "technician_assigned"
    APPOINTMENT_CONFIRMED = "appointment_confirmed"
    APPOINTMENT_CONFIRMED_WITH_FEE = "appointment_confirmed_with_fee"  # a chargeable order's
    APPOINTMENT_REMINDER = "appointment_reminder"  # the day before
    DELAY = "delay"
    QUOTE_TO_APPROVE = "quote_to_approve"
    PARTS_AWAITED = "parts_awaited"
    DEVICE_TO_WORKSHOP = "device_to_workshop"
    DEVICE_BACK = "device_back"
    SAFETY_STOP = "safety_stop"
    SAFETY_CLEARED = "safety_cleared"
    WORK_DONE = "work_done"
    SURVEY = "survey"
    WARRANTY_REMINDER = "warranty_reminder"
    ORDER_CANCELLED = "order_cancelled"
    COMPLAINT_UPDATE = "complaint_update"
    # technician
    JOB_OFFERED = "job_offered"
    JOB_ASSIGNED = "job_assigned"
    CONTACT_CUSTOMER_REMINDER = "contact_customer_reminder"
    JOB_WITHDRAWN = "job_withdrawn"
    REWORK_REQUESTED = "rework_requested"
    APPOINTMENT_CHANGED = "appointment_changed"
    # staff, supervisor, quality manager
    ESCALATION = "escalation"
    COMPLAINT_FILED = "complaint_filed"


class Contact(BaseModel):
    """Where a message goes. A customer's phone and email are sealed (core/personal.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phone: str | None = None
    email: str | None = None
    technician_id: str | None = None


class NotificationInput(BaseModel):
    """One message. `key` is minted in the workflow, so a retried activity never sends twice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    order_id: str
    template: Template
    recipient: Recipient
    locale: Literal["zh", "en"] = "zh"
    to: Contact = Contact()
    params: dict[str, str] = Field(default_factory=dict)
