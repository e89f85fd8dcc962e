"""Delivery: the `send_notification` activity and the message's state in the records store.

Once per key. The workflow mints each message's key. An attempt claims it (a row with status
"sending", committed) before handing the message over, and marks it "sent" after. A retry that
finds "sent" does nothing; "pending" (the provider did not take it) claims it again and sends
it; "failed" or "unconfirmed" fails again, for good, sending nothing; "sending" means an earlier
attempt was lost between claim and confirmation:
- if that attempt had delivered it, its last heartbeat says so (Temporal hands an attempt's
  heartbeat details to the next one) and the retry only confirms it;
- otherwise the outcome is unknown. A channel whose receiver drops a repeated key
  (`deduplicates`: the webhook, by its Idempotency-Key; the outbox) sends it again. Email does
  not: a second copy would reach the customer's inbox. The row becomes "unconfirmed" and the
  activity fails for good, so the order's timeline says the message may not have arrived and
  a person can check. So email is at most once in one window: from the moment the mail server
  may have the message (the end of DATA) until the attempt's heartbeat records the delivery,
  a worker lost or a connection cut leaves it unconfirmed. Everywhere else it is exactly once.
  (Heartbeat details survive a failed attempt on Temporal Server 1.16 and later; on an older
  server the retry falls back to "unconfirmed", still never twice.)
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notifications.channels import (
    Channel,
    Message,
    NotDelivered,
    OutboxChannel,
    Refused,
    channels_from_settings,
    error_kind,
)
from activities.notifications.routing import route
from activities.notifications.templates import NAMING_THE_TECHNICIAN, Rendered, render
from core.codec import KeyRing
from core.personal import Opener
from core.settings import CHANNEL_NAMES, ChannelName, Settings
from models.notification import NotificationInput
from models.records import NotificationRow, TechnicianRow

# A row's status: claimed and being handed over, or handed over and not yet confirmed
SENDING: Final = "sending"
SENT: Final = "sent"
PENDING: Final = "pending"  # the provider did not take it; `error` says why; sent again
FAILED: Final = "failed"  # never deliverable; `error` says why
UNCONFIRMED: Final = "unconfirmed"  # an attempt was cut off mid-delivery; not sent again
CUT_OFF: Final = (
    "may not have arrived: an earlier attempt was cut off while handing it over,"
    " and it is not sent twice"
)
DELIVERED: Final = "delivered"  # heartbeat detail: this activity's message was handed over
UNDELIVERABLE: Final = "UndeliverableNotification"  # the workflow does not retry it
ERASED: Final = "the recipient's personal data is erased"


class NotificationActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        channels: Mapping[ChannelName, Channel] | None = None,
        routes: Mapping[str, ChannelName] | None = None,
        ring: KeyRing | None = None,
    ) -> None:
        """`channels` replaces the outbox for the names it lists (a provider per channel);
        `routes` is REPAIRFLOW_NOTIFICATION_CHANNELS (see `route`); `ring` opens the customers'
        sealed contact details (core/personal.py), by default REPAIRFLOW_PAYLOAD_KEYS's."""
        self.engine = engine
        self.ring = ring or Settings().key_ring
        outbox = OutboxChannel()
        self.channels: dict[ChannelName, Channel] = {name: outbox for name in CHANNEL_NAMES}
        self.channels.update(channels or {})
        self.routes: dict[str, ChannelName] = dict(routes or {})

    @classmethod
    def from_settings(cls, engine: AsyncEngine, settings: Settings) -> "NotificationActivities":
        """As the worker runs them: the configured channels and routes."""
        return cls(
            engine,
            channels_from_settings(settings),
            settings.notification_channels,
            settings.key_ring,
        )

    @activity.defn(name="send_notification")
    async def send_notification(self, input: NotificationInput) -> None:
        """Render the message, claim its key, deliver it and confirm it: once per key."""
        text = render(input.template, input.locale, await self._params(input))
        row = await self._recorded(input.key)
        if row is None:
            row = await self._claim(input, text)
        elif row.status == SENT:
            activity.logger.info("notification already sent", extra={"key": input.key})
            return
        elif row.status == PENDING:
            await self._reclaim(input)
        elif row.status != SENDING:
            raise undeliverable(input, row.error or row.status)
        elif DELIVERED in activity.info().heartbeat_details:
            # The attempt that delivered it was lost before recording so; Temporal kept its word.
            await self._confirm(input, row, text)
            return
        elif not self.channels[CHANNELS_BY_NAME[row.channel]].deduplicates:
            await self._settle(input.key, UNCONFIRMED, CUT_OFF)
            activity.logger.warning("notification unconfirmed", extra=self._about(input, row))
            raise undeliverable(input, CUT_OFF)
        await self._deliver(input, row, text)

    async def _params(self, input: NotificationInput) -> dict[str, str]:
        params = input.params | {"order_id": input.order_id}
        technician_id = params.get("technician_id")
        if input.template in NAMING_THE_TECHNICIAN and technician_id:
            async with AsyncSession(self.engine) as session:
                technician = await session.get(TechnicianRow, technician_id)
            if technician is not None:
                params["technician_name"] = technician.name
        return params

    async def _deliver(
        self, input: NotificationInput, row: NotificationRow, text: Rendered
    ) -> None:
        channel = CHANNELS_BY_NAME[row.channel]
        # The outbox keeps the destination sealed; it is opened for the channel only.
        async with AsyncSession(self.engine) as session:
            destination = await Opener(session, self.ring).open(row.destination)
        if row.destination is not None and destination is None:
            await self._settle(input.key, FAILED, ERASED)
            raise undeliverable(input, ERASED)
        message = Message(
            key=input.key,
            order_id=input.order_id,
            template=input.template,
            recipient=input.recipient,
            locale=input.locale,
            channel=channel,
            destination=destination,
            subject=row.subject,
            body=row.body,
            sent_at=row.created_at,
        )
        try:
            await self.channels[channel].deliver(message)
        except Refused as refused:
            await self._settle(input.key, FAILED, refused.reason)
            log = self._about(input, row) | {"reason": refused.reason}
            activity.logger.warning("notification refused", extra=log)
            raise undeliverable(input, refused.reason) from None
        except NotDelivered as failure:
            await self._settle(input.key, PENDING, failure.reason)
            log = self._about(input, row) | {"reason": failure.reason}
            activity.logger.warning("notification not delivered", extra=log)
            raise ApplicationError(
                f"notification {input.key} ({input.template}) is not delivered yet:"
                f" {failure.reason}",
                type="NotificationNotDelivered",
            ) from None
        except Exception as error:
            # Left "sending": the retry decides by the channel's `deduplicates`.
            log = self._about(input, row) | {"error": error_kind(error)}
            activity.logger.warning("notification outcome unknown", extra=log)
            raise ApplicationError(
                f"notification {input.key} ({input.template}): delivery was cut off"
                f" ({error_kind(error)}); the outcome is unknown",
                type="NotificationOutcomeUnknown",
            ) from None
        # Told to Temporal first: should recording it fail, the next attempt learns it from here.
        activity.heartbeat(DELIVERED)
        await self._confirm(input, row, text)

    async def _confirm(
        self, input: NotificationInput, row: NotificationRow, text: Rendered
    ) -> None:
        await self._settle(input.key, SENT)
        log = self._about(input, row) | {"missing_params": list(text.missing)}
        activity.logger.info("notification sent", extra=log)

    def _about(self, input: NotificationInput, row: NotificationRow) -> dict[str, Any]:
        """What a log line may say about a message: which one and how, never to whom."""
        return {
            "key": input.key,
            "order_id": input.order_id,
            "template": input.template.value,
            "recipient": input.recipient.value,
            "channel": row.channel,
        }

    async def _recorded(self, key: str) -> NotificationRow | None:
        async with AsyncSession(self.engine) as session:
            return await session.scalar(
                select(NotificationRow).where(col(NotificationRow.key) == key)
            )

    async def _claim(self, input: NotificationInput, text: Rendered) -> NotificationRow:
        """Insert the row as "sending", or as "failed" if there is nowhere to send it."""
        channel, destination = route(input, self.routes)
        unreachable = destination is None and channel != "webhook"
        row = NotificationRow(
            key=input.key,
            order_id=input.order_id,
            template=input.template.value,
            recipient=input.recipient.value,
            channel=channel,
            locale=input.locale,
            destination=destination,
            subject=text.subject,
            body=text.body,
            status=FAILED if unreachable else SENDING,
            error=f"no contact for the {input.recipient}" if unreachable else None,
            created_at=datetime.now(UTC),
        )
        try:
            async with (
                AsyncSession(self.engine, expire_on_commit=False) as session,
                session.begin(),
            ):
                session.add(row)
        except IntegrityError:
            raise busy(input) from None
        if unreachable:
            raise undeliverable(input, row.error or "")
        return row

    async def _reclaim(self, input: NotificationInput) -> None:
        """Take a pending key back to "sending", unless another attempt just did."""
        if not await self._settle(input.key, SENDING):
            raise busy(input)

    async def _settle(self, key: str, status: str, error: str | None = None) -> bool:
        """Move the key to `status` from the one state that may lead there; a late "sent"
        also overrides "unconfirmed". False if the key was not in such a state."""
        before = {SENDING: [PENDING], SENT: [SENDING, UNCONFIRMED]}.get(status, [SENDING])
        async with AsyncSession(self.engine) as session, session.begin():
            moved = await session.execute(
                update(NotificationRow)
                .where(col(NotificationRow.key) == key, col(NotificationRow.status).in_(before))
                .values(status=status, error=error)
                .returning(col(NotificationRow.key))
            )
            return moved.first() is not None


CHANNELS_BY_NAME: Final[Mapping[str, ChannelName]] = {name: name for name in CHANNEL_NAMES}


def undeliverable(input: NotificationInput, reason: str) -> ApplicationError:
    """Names the message, never its recipient: the error is logged and kept in the history,
    and the workflow writes it on the order's timeline."""
    return ApplicationError(
        f"notification {input.key} ({input.template}): {reason}",
        type=UNDELIVERABLE,
        non_retryable=True,
    )


def busy(input: NotificationInput) -> ApplicationError:
    """Another attempt holds the key (the unique key refused ours); the retry sees its end."""
    return ApplicationError(
        f"notification {input.key} ({input.template}) is being sent by another attempt",
        type="NotificationBusy",
    )
