# ruff: noqa: RUF001 - Chinese text is written with full-width punctuation, as it should be
"""Notifications: render a template in the recipient's language and hand it to a channel.

Channels. A message goes by SMS, email, webhook or internally (the staff's and technicians'
inboxes), each a `Channel`. The default, `OutboxChannel`, sends nothing itself: the
`notifications` table is the outbox a relay (or a person) works from. `channels_from_settings`
puts email on SMTP when REPAIRFLOW_SMTP_HOST is set and adds the signed webhook when
REPAIRFLOW_WEBHOOK_URL is; SMS stays with the outbox until a provider is plugged in. `route`
takes the channel REPAIRFLOW_NOTIFICATION_CHANNELS names for the template (else for the
recipient) if it reaches the recipient, else customers by SMS (by email if that is all we
have), technicians and staff internally.

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

Rendering fills a template's `{placeholders}` from `NotificationInput.params`; `order_id` is
always the input's own. A placeholder the workflow did not pass renders as "—" and is named in
the log line's `missing_params`: a message is never lost to a missing value.
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from typing import Any, ClassVar, Final, Literal, NamedTuple, Protocol

import httpx
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.settings import CHANNEL_NAMES, ChannelName, Settings
from models.notification import NotificationInput, Recipient, Template
from models.records import NotificationRow

Locale = Literal["zh", "en"]

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
MISSING: Final = "—"
DELIVERED: Final = "delivered"  # heartbeat detail: this activity's message was handed over
UNDELIVERABLE: Final = "UndeliverableNotification"  # the workflow does not retry it

SMTP_TIMEOUT: Final = 10.0  # seconds per SMTP command; the activity has 30 s in all
WEBHOOK_TIMEOUT: Final = 10.0
TIMESTAMP_HEADER: Final = "X-Repairflow-Timestamp"
SIGNATURE_HEADER: Final = "X-Repairflow-Signature"
# Headers ASCII, bodies base64 or quoted-printable: fit for any mail server, CRLF line ends.
MAIL_POLICY: Final = SMTP.clone(cte_type="7bit")


class Wording(NamedTuple):
    subject: str
    body: str


TEMPLATES: Final[Mapping[Template, Mapping[Locale, Wording]]] = {
    # customer
    Template.BOOKING_CONFIRMED: {
        "zh": Wording(
            "报修已受理",
            "您的报修单 {order_id} 已受理，我们正在为您安排维修师傅，请保持电话畅通。",
        ),
        "en": Wording(
            "Repair request received",
            "Your repair order {order_id} has been received. We are arranging a technician"
            " for you; please keep your phone on.",
        ),
    },
    Template.TECHNICIAN_ASSIGNED: {
        "zh": Wording(
            "已为您安排维修师傅",
            "您的报修单 {order_id} 已由工号 {technician_id} 的师傅接单，"
            "师傅将尽快与您联系，确认上门时间。",
        ),
        "en": Wording(
            "A technician is on your job",
            "Technician {technician_id} has taken repair order {order_id} and will contact"
            " you soon to agree a visit time.",
        ),
    },
    Template.APPOINTMENT_CONFIRMED: {
        "zh": Wording(
            "上门时间已确认",
            "您的报修单 {order_id} 已预约上门，时间为 {window}，届时请确保家中有人。",
        ),
        "en": Wording(
            "Visit booked",
            "The technician will come for repair order {order_id} during {window}."
            " Please make sure someone is at home.",
        ),
    },
    Template.DELAY: {
        "zh": Wording(
            "上门时间延误",
            "非常抱歉，您的报修单 {order_id} 的维修师傅未能按约定时间上门。"
            "我们正在督促跟进，会尽快与您联系。",
        ),
        "en": Wording(
            "Your visit is running late",
            "We are sorry: the technician for repair order {order_id} has not arrived on time."
            " We are following up and will contact you shortly.",
        ),
    },
    Template.QUOTE_TO_APPROVE: {
        "zh": Wording(
            "维修报价待您确认",
            "您的报修单 {order_id} 经师傅检测需收费维修，报价合计 {total}。"
            "请确认是否同意维修，您同意之前不会进行任何收费项目。",
        ),
        "en": Wording(
            "Please approve the quote",
            "Repair order {order_id} needs chargeable work; the quote comes to {total}."
            " Please approve or decline it. No chargeable work is done before you approve.",
        ),
    },
    Template.WORK_DONE: {
        "zh": Wording(
            "维修已完成，请验收",
            "您的报修单 {order_id} 已维修完成，费用合计 {total}。"
            "请确认验收，如有问题请直接提出；逾期未反馈将视为验收通过。",
        ),
        "en": Wording(
            "Repair finished: please accept",
            "The repair for order {order_id} is finished; the charges come to {total}."
            " Please accept the work or tell us what is wrong; if we hear nothing in time,"
            " the work counts as accepted.",
        ),
    },
    Template.SURVEY: {
        "zh": Wording(
            "邀请您评价本次服务",
            "感谢您使用我们的维修服务！请从服务态度、维修质量、维修效果和响应速度四个方面"
            "为报修单 {order_id} 打分（1–5 分），您的意见将帮助我们做得更好。",
        ),
        "en": Wording(
            "How did we do?",
            "Thank you for using our repair service. Please rate order {order_id} for"
            " attitude, quality, result and speed, from 1 to 5; your answers help us improve.",
        ),
    },
    Template.WARRANTY_REMINDER: {
        "zh": Wording(
            "保修期即将到期",
            "您的报修单 {order_id} 的维修保修期将于 {ends_at} 到期。"
            "到期前如同一故障再次出现，可免费报修。",
        ),
        "en": Wording(
            "Your repair warranty ends soon",
            "The repair warranty for order {order_id} ends on {ends_at}. If the same fault"
            " comes back before then, we repair it free of charge.",
        ),
    },
    Template.ORDER_CANCELLED: {
        "zh": Wording(
            "报修单已取消",
            "您的报修单 {order_id} 已取消，原因：{reason}。如需再次报修，欢迎随时联系我们。",
        ),
        "en": Wording(
            "Repair order cancelled",
            "Repair order {order_id} has been cancelled. Reason: {reason}."
            " Contact us any time if you need a repair again.",
        ),
    },
    Template.COMPLAINT_UPDATE: {
        "zh": Wording(
            "投诉处理进展",
            "您就报修单 {order_id} 提出的投诉（编号 {complaint_id}）有新进展：{update}",
        ),
        "en": Wording(
            "Update on your complaint",
            "Your complaint {complaint_id} about repair order {order_id} has an update: {update}",
        ),
    },
    # technician
    Template.JOB_OFFERED: {
        "zh": Wording(
            "新工单待接",
            "有新工单 {order_id} 派给您：{category}，区域 {region}，客户期望时间 {window}。"
            "请在 {deadline} 前接单或拒单，逾期将转派其他师傅。",
        ),
        "en": Wording(
            "New job offer",
            "Job {order_id} is offered to you: {category} in {region}, customer's preferred"
            " time {window}. Please accept or decline by {deadline}; after that it goes to"
            " another technician.",
        ),
    },
    Template.JOB_ASSIGNED: {
        "zh": Wording(
            "工单已派给您",
            "工单 {order_id} 已派给您，请尽快联系客户确认上门时间。",
        ),
        "en": Wording(
            "Job assigned to you",
            "Job {order_id} is assigned to you. Please contact the customer soon to agree"
            " a visit time.",
        ),
    },
    Template.CONTACT_CUSTOMER_REMINDER: {
        "zh": Wording(
            "请尽快联系客户",
            "工单 {order_id} 尚未确认上门时间，请在 {deadline} 前联系客户确认，"
            "逾期将转交客服跟进。",
        ),
        "en": Wording(
            "Reminder: contact the customer",
            "Job {order_id} has no agreed visit time yet. Please contact the customer by"
            " {deadline}; after that customer service takes over.",
        ),
    },
    Template.JOB_WITHDRAWN: {
        "zh": Wording(
            "工单已撤回",
            "工单 {order_id} 已从您的任务中撤回（{reason}），无需再上门。",
        ),
        "en": Wording(
            "Job withdrawn",
            "Job {order_id} has been withdrawn from you ({reason}); no visit is needed.",
        ),
    },
    Template.REWORK_REQUESTED: {
        "zh": Wording(
            "客户要求返修",
            "客户未通过工单 {order_id} 的验收，原因：{reason}。请尽快联系客户安排返修。",
        ),
        "en": Wording(
            "Rework requested",
            "The customer did not accept the work on job {order_id}. Reason: {reason}."
            " Please contact the customer to arrange the rework.",
        ),
    },
    Template.APPOINTMENT_CHANGED: {
        "zh": Wording(
            "客户已改约",
            "工单 {order_id} 的客户已改约，期望时间：{window}。请重新与客户确认上门时间。",
        ),
        "en": Wording(
            "The customer rescheduled",
            "The customer of job {order_id} asked for a new time: {window}."
            " Please confirm the visit with the customer again.",
        ),
    },
    # staff, supervisor, quality manager
    Template.ESCALATION: {
        "zh": Wording(
            "工单已升级",
            "工单 {order_id} 已升级由您处理，原因：{reason}。请尽快跟进。",
        ),
        "en": Wording(
            "Order escalated to you",
            "Order {order_id} has been escalated to you. Reason: {reason}."
            " Please follow up promptly.",
        ),
    },
}

# Reasons the workflow passes as codes; any other reason is someone's own words, shown as is.
REASONS: Final[Mapping[str, Mapping[Locale, str]]] = {
    "cancelled": {"zh": "订单已取消", "en": "the order was cancelled"},
    "reassigned": {"zh": "已改派其他师傅", "en": "it was reassigned to another technician"},
    "response_overdue": {
        "zh": "超时无师傅接单",
        "en": "no technician has accepted the order in time",
    },
    "offer_expired": {"zh": "接单超时，已转派", "en": "the offer expired unanswered"},
    "no_technician": {
        "zh": "没有可派的合格师傅，请人工派单",
        "en": "no qualified technician is available; assign by hand",
    },
    "appointment_unconfirmed": {
        "zh": "师傅未按时与客户确认上门时间",
        "en": "the technician has not agreed a visit time with the customer",
    },
    "workshop_overdue": {"zh": "返厂维修超时", "en": "the workshop repair is overdue"},
    "parts_overdue": {"zh": "配件未按时到达", "en": "the parts have not arrived in time"},
    "safety_stop": {"zh": "现场存在安全隐患，已停工", "en": "work stopped for a safety hazard"},
    "rework_limit": {
        "zh": "客户多次拒绝验收，需要改派",
        "en": "the customer rejected the rework again; reassign the order",
    },
}


CATEGORIES: Final[Mapping[str, Mapping[Locale, str]]] = {
    "air_conditioner": {"zh": "空调", "en": "air conditioner"},
    "refrigerator": {"zh": "冰箱", "en": "refrigerator"},
    "washing_machine": {"zh": "洗衣机", "en": "washing machine"},
    "television": {"zh": "电视", "en": "television"},
    "water_heater": {"zh": "热水器", "en": "water heater"},
    "range_hood": {"zh": "油烟机", "en": "range hood"},
    "gas_stove": {"zh": "燃气灶", "en": "gas stove"},
    "small_appliance": {"zh": "小家电", "en": "small appliance"},
    "electrical": {"zh": "电路", "en": "electrical work"},
    "plumbing": {"zh": "水路", "en": "plumbing"},
}


class Rendered(NamedTuple):
    subject: str
    body: str
    missing: tuple[str, ...]


class _Params(dict[str, str]):
    """The workflow's params; a name it did not pass renders as MISSING and is remembered."""

    def __init__(self, params: Mapping[str, str]) -> None:
        super().__init__(params)
        self.missing: dict[str, None] = {}

    def __missing__(self, name: str) -> str:
        self.missing[name] = None
        return MISSING


def render(template: Template, locale: Locale, params: Mapping[str, str]) -> Rendered:
    wording = TEMPLATES[template][locale]
    values = _Params(params)
    reason = params.get("reason")
    if reason is not None and reason in REASONS:
        values["reason"] = REASONS[reason][locale]
    category = params.get("category")
    if category is not None and category in CATEGORIES:
        values["category"] = CATEGORIES[category][locale]
    subject, body = wording.subject.format_map(values), wording.body.format_map(values)
    return Rendered(subject, body, tuple(values.missing))


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
            reason = f"the mail server refused us or was unreachable ({_what(error)})"
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
            raise NotDelivered(f"the webhook was unreachable ({_what(error)})") from None
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


def _what(error: BaseException) -> str:
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


class NotificationActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        channels: Mapping[ChannelName, Channel] | None = None,
        routes: Mapping[str, ChannelName] | None = None,
    ) -> None:
        """`channels` replaces the outbox for the names it lists (a provider per channel);
        `routes` is REPAIRFLOW_NOTIFICATION_CHANNELS (see `route`)."""
        self.engine = engine
        outbox = OutboxChannel()
        self.channels: dict[ChannelName, Channel] = {name: outbox for name in CHANNEL_NAMES}
        self.channels.update(channels or {})
        self.routes: dict[str, ChannelName] = dict(routes or {})

    @classmethod
    def from_settings(cls, engine: AsyncEngine, settings: Settings) -> "NotificationActivities":
        """As the worker runs them: the configured channels and routes."""
        return cls(engine, channels_from_settings(settings), settings.notification_channels)

    @activity.defn(name="send_notification")
    async def send_notification(self, input: NotificationInput) -> None:
        """Render the message, claim its key, deliver it and confirm it: once per key."""
        text = render(input.template, input.locale, input.params | {"order_id": input.order_id})
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

    async def _deliver(
        self, input: NotificationInput, row: NotificationRow, text: Rendered
    ) -> None:
        channel = CHANNELS_BY_NAME[row.channel]
        message = Message(
            key=input.key,
            order_id=input.order_id,
            template=input.template,
            recipient=input.recipient,
            locale=input.locale,
            channel=channel,
            destination=row.destination,
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
            log = self._about(input, row) | {"error": _what(error)}
            activity.logger.warning("notification outcome unknown", extra=log)
            raise ApplicationError(
                f"notification {input.key} ({input.template}): delivery was cut off"
                f" ({_what(error)}); the outcome is unknown",
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
