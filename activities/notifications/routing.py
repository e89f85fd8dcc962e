"""Routing: who gets a message by which channel, and at which destination.

`route` takes the channel REPAIRFLOW_NOTIFICATION_CHANNELS names for the template (else for the
recipient) if it reaches the recipient, else customers by SMS (by email if that is all we
have), technicians and staff internally.
"""

from collections.abc import Mapping
from typing import NamedTuple

from core.settings import ChannelName
from models.notification import NotificationInput, Recipient


class Route(NamedTuple):
    channel: ChannelName
    destination: str | None  # None: nowhere to send it (the webhook needs no address)


def route(input: NotificationInput, routes: Mapping[str, ChannelName] | None = None) -> Route:
    """The configured channel for the template, else for the recipient, if it reaches them;
    otherwise customers by SMS, by email if only that is known; technicians and staff
    internally."""
    routes = routes or {}
    chosen = routes.get(input.template.value) or routes.get(input.recipient.value)
    if chosen is not None:
        destination = _address(input, chosen)
        if destination is not None or chosen == "webhook":
            return Route(chosen, destination)
    match input.recipient:
        case Recipient.CUSTOMER if input.to.phone:
            return Route("sms", input.to.phone)
        case Recipient.CUSTOMER if input.to.email:
            return Route("email", input.to.email)
        case Recipient.CUSTOMER:
            return Route("sms", None)
        case _:
            return Route("internal", _address(input, "internal"))


def _address(input: NotificationInput, channel: ChannelName) -> str | None:
    match channel:
        case "sms":
            return input.to.phone or None
        case "email":
            return input.to.email or None
        case "internal" if input.recipient is Recipient.TECHNICIAN:
            return input.to.technician_id or None
        case "internal":
            return input.recipient.value
        case "webhook":
            return None
