"""Channels: the senders that hand a rendered message to a provider, and what they report.

A message goes by SMS, email, webhook or internally (the staff's and technicians'
inboxes), each a `Channel`. The default, `OutboxChannel`, sends nothing itself: the
`notifications` table is the outbox a relay (or a person) works from. `channels_from_settings`
puts email on SMTP when REPAIRFLOW_SMTP_HOST is set and adds the signed webhook when
REPAIRFLOW_WEBHOOK_URL is; SMS stays with the outbox until a provider is plugged in.

A channel tells the activity what happened. It returns once the provider has the message;
raises `NotDelivered` when the provider certainly has not got it (unreachable, SMTP 4xx,
webhook 5xx, 408, 429): the row is "pending" with the reason and Temporal retries with
backoff (the workflow's EFFECT_RETRY: 1 s doubling to 1 min, without end); raises
`Refused` when it never will (the mail server refuses the recipient or the message with a 5xx,
the webhook answers another 4xx): the row is "failed" with a short reason and the activity
raises the non-retryable UndeliverableNotification, which the workflow writes on the order's
timeline. Anything else it raises leaves the outcome unknown (a connection lost mid-transfer):
the row stays "sending" for the retry. Reasons never quote a provider's reply, which may name
the address. A mail server refusing us rather than the message (login, sender) is a setup
fault: not delivered, retried until an operator fixes it.

Email is plain text (UTF-8) with a Message-ID derived from the key (`message_id`): every
attempt at one key carries the same id, so mail clients that drop duplicate ids show one.

Webhook: POST to REPAIRFLOW_WEBHOOK_URL, Content-Type application/json, a UTF-8 body
{"key", "order_id", "template", "recipient", "locale", "subject", "body", "sent_at"} in which
`sent_at` is when the key was claimed, so every attempt sends the same bytes, and headers
    Idempotency-Key: <key>                  the same on every attempt: act on a key once
    X-Repairflow-Timestamp: <unix seconds>  when this attempt was signed
    X-Repairflow-Signature: sha256=<hex HMAC-SHA256 with the secret of "<timestamp>.<body>">
A receiver recomputes the HMAC from the timestamp header, a ".", and the raw body bytes as
received (before parsing them), compares it in constant time, refuses a timestamp more than a
few minutes from its own clock (a replay), and answers 2xx once it has the message (also for a
key it already had), 4xx to refuse it for good, 5xx, 408 or 429 to get it again later.
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from typing import ClassVar, Final, Protocol

import httpx
from pydantic import SecretStr

from activities.notifications.templates import Locale
from core.settings import CHANNEL_NAMES, ChannelName, Settings
from models.notification import Recipient, Template

SMTP_TIMEOUT: Final = 10.0  # seconds per SMTP command; the activity has 30 s in all
WEBHOOK_TIMEOUT: Final = 10.0
TIMESTAMP_HEADER: Final = "X-Repairflow-Timestamp"
SIGNATURE_HEADER: Final = "X-Repairflow-Signature"
# Headers ASCII, bodies base64 or quoted-printable: fit for any mail server, CRLF line ends.
MAIL_POLICY: Final = SMTP.clone(cte_type="7bit")


@dataclass(frozen=True)
class Message:
    """A rendered notification for one destination: what a channel delivers."""

    key: str  # providers that deduplicate get it as their idempotency key
    order_id: str
    template: Template
    recipient: Recipient
    locale: Locale
    channel: ChannelName
    destination: str | None  # personal data: never log it; None for the webhook
    subject: str
    body: str  # may quote someone's own words: never log it
    sent_at: datetime  # when the key was claimed: the same on every attempt


class NotDelivered(Exception):
    """The provider certainly has not taken the message; sending it again later is safe.

    The reason is logged and kept in the history: it must not name the recipient.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Refused(Exception):
    """The provider will never take this message (a rejected address): not retried.

    The reason is kept on the row and the order's timeline: it must not name the recipient.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Channel(Protocol):
    @property
    def deduplicates(self) -> bool:
        """True if the receiver acts on a key once, so a delivery whose outcome is unknown may
        be made again; False if a second delivery would reach the person twice."""
        ...

    async def deliver(self, message: Message) -> None:
        """Hand the message over and return once the provider has it. Raise `NotDelivered` if
        it certainly has not, `Refused` if it never will; anything else means "unknown"."""
        ...


class OutboxChannel:
    """Sends nothing itself: the row the activity writes to `notifications` is the outbox."""

    deduplicates: ClassVar[bool] = True  # the row is the message, and the key is unique

    async def deliver(self, message: Message) -> None:
        return None


def message_id(key: str, sender: str) -> str:
    """The same Message-ID for every attempt at one key, so duplicates are recognisable."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "repairflow"
    return f"<{digest}@{domain}>"


@dataclass(frozen=True)
class SmtpChannel:
    """Email over SMTP (stdlib `smtplib`, run in a thread), optionally STARTTLS and login."""

    host: str
    port: int = 25
    sender: str = "repairflow@localhost"
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    timeout: float = SMTP_TIMEOUT

    deduplicates: ClassVar[bool] = False  # a second copy lands in the inbox

    def compose(self, message: Message) -> EmailMessage:
        if message.destination is None:
            raise Refused("no email address")
        if not message.destination.isascii():
            raise Refused("not an ASCII email address (SMTPUTF8 is not supported)")
        email = EmailMessage(policy=MAIL_POLICY)
        try:
            email["To"] = message.destination
        except ValueError:  # a line break in the address: header injection, not an address
            raise Refused("not a valid email address") from None
        email["From"] = self.sender
        email["Subject"] = message.subject
        email["Date"] = format_datetime(message.sent_at)
        email["Message-ID"] = message_id(message.key, self.sender)
        email.set_content(message.body)
        return email

    async def deliver(self, message: Message) -> None:
        email = self.compose(message)
        assert message.destination is not None  # compose refused it otherwise
        await asyncio.to_thread(self._send, email, message.destination)

    def _send(self, email: EmailMessage, to: str) -> None:
        smtp = smtplib.SMTP(timeout=self.timeout)
        try:
            self._hand_over(smtp, email, to)
            # The server has taken the message: a rude goodbye changes nothing.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
        finally:
            smtp.close()

    def _hand_over(self, smtp: smtplib.SMTP, email: EmailMessage, to: str) -> None:
        try:
            smtp.connect(self.host, self.port)
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.username is not None and self.password is not None:
                smtp.login(self.username, self.password.get_secret_value())
            code, _ = smtp.mail(parseaddr(self.sender)[1])
            if code != 250:
                raise NotDelivered(f"the mail server refused the sender ({code})")
            code, _ = smtp.rcpt(to)
        except (smtplib.SMTPException, OSError) as error:
            reason = f"the mail server refused us or was unreachable ({error_kind(error)})"
            raise NotDelivered(reason) from None
        if code >= 500:
            raise Refused(f"the mail server refused the recipient ({code})")
        if code not in (250, 251):
            raise NotDelivered(f"the mail server deferred the recipient ({code})")
        # From here the server may have the message: only its explicit answer settles it.
        try:
            smtp.data(email.as_bytes())
        except smtplib.SMTPDataError as error:
            if error.smtp_code >= 500:
                raise Refused(f"the mail server refused the message ({error.smtp_code})") from None
            raise NotDelivered(
                f"the mail server deferred the message ({error.smtp_code})"
            ) from None
        # Anything else here (connection lost, timeout) propagates: the outcome is unknown.


@dataclass(frozen=True)
class WebhookChannel:
    """POSTs each message as signed JSON to one URL (an ERP); see the module docstring."""

    url: str
    secret: SecretStr
    timeout: float = WEBHOOK_TIMEOUT

    deduplicates: ClassVar[bool] = True  # the receiver acts on an Idempotency-Key once

    async def deliver(self, message: Message) -> None:
        body = webhook_body(message)
        timestamp = str(int(time.time()))
        signature = hmac.new(
            self.secret.get_secret_value().encode(),
            timestamp.encode() + b"." + body,
            hashlib.sha256,
        ).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: f"sha256={signature}",
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise NotDelivered(f"the webhook was unreachable ({error_kind(error)})") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        if 400 <= status < 500 and status not in (408, 429):
            raise Refused(f"the webhook refused the message (HTTP {status})")
        # 5xx, 408, 429; a redirect or other surprise is a setup fault, retried until fixed.
        raise NotDelivered(f"the webhook answered HTTP {status}")


def webhook_body(message: Message) -> bytes:
    """The JSON the webhook posts: identical on every attempt at one key."""
    payload = {
        "key": message.key,
        "order_id": message.order_id,
        "template": message.template.value,
        "recipient": message.recipient.value,
        "locale": message.locale,
        "subject": message.subject,
        "body": message.body,
        "sent_at": message.sent_at.isoformat(),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def error_kind(error: BaseException) -> str:
    """An error's kind, without its text (which may quote an address)."""
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{type(error).__name__} {error.smtp_code}"
    return type(error).__name__


def channels_from_settings(settings: Settings) -> dict[ChannelName, Channel]:
    """Every channel as configured: SMTP and the webhook when set up, the outbox otherwise."""
    outbox = OutboxChannel()
    channels: dict[ChannelName, Channel] = {name: outbox for name in CHANNEL_NAMES}
    if settings.smtp_host is not None:
        channels["email"] = SmtpChannel(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )
    # SMS: REPAIRFLOW_SMS_PROVIDER has one value so far, "outbox".
    if settings.webhook_url is not None and settings.webhook_secret is not None:
        channels["webhook"] = WebhookChannel(str(settings.webhook_url), settings.webhook_secret)
    return channels
