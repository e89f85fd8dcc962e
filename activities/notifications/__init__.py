"""Notifications: render a template in the recipient's language and hand it to a channel.

templates  the message texts per template and locale, and their rendering
routing    who gets a message by which channel: recipient -> channel and destination
channels   the outbox, SMS, email (SMTP) and webhook senders, and what they report
delivery   the `send_notification` activity: once per key, its state in the records store

The worker registers `NotificationActivities.send_notification`; the other names here are the
ones the tests use.
"""

from activities.notifications.channels import (
    Channel,
    Message,
    NotDelivered,
    OutboxChannel,
    SmtpChannel,
    WebhookChannel,
    channels_from_settings,
)
from activities.notifications.delivery import NotificationActivities
from activities.notifications.routing import Route, route
from activities.notifications.templates import MISSING, Locale, render

__all__ = [
    "MISSING",
    "Channel",
    "Locale",
    "Message",
    "NotDelivered",
    "NotificationActivities",
    "OutboxChannel",
    "Route",
    "SmtpChannel",
    "WebhookChannel",
    "channels_from_settings",
    "render",
    "route",
]
