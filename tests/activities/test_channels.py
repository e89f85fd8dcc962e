"""The notification channels against real receivers: an SMTP server (aiosmtpd) and an HTTP
endpoint standing in for an ERP, both started by the tests on free loopback ports."""

import asyncio
import email
import email.policy
import hashlib
import hmac
import io
import json
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

# Only NotifyWorkflow runs in the workflow sandbox; everything else is the tests' machinery.
with workflow.unsafe.imports_passed_through():
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP as SMTPServer
    from aiosmtpd.smtp import Envelope, Session
    from pydantic import SecretStr, ValidationError
    from sqlalchemy import event
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

    from activities.notifications import (
        Channel,
        NotificationActivities,
        OutboxChannel,
        SmtpChannel,
        WebhookChannel,
        channels_from_settings,
    )
    from core.settings import ChannelName, Settings, load_settings
    from models.notification import Contact, NotificationInput, Recipient, Template
    from tests.activities.test_notifications import notification_rows, send
    from workflows.effects import ACTIVITY_TIMEOUT, EFFECT_RETRY

EMAIL = "li.wei@example.com"
SENDER = "repairflow@example.com"
ERP_SECRET = "erp-shared-secret-0123456789abcdef"


def create_notification_input(**overrides: Any) -> NotificationInput:
    fields: dict[str, Any] = {
        "key": f"RF261120-ABC123:{uuid.uuid4().hex[:8]}:work_done:customer",
        "order_id": "RF261120-ABC123",
        "template": Template.WORK_DONE,
        "recipient": Recipient.CUSTOMER,
        "to": Contact(email=EMAIL),
        "params": {"total": "180.00 CNY"},
    }
    return NotificationInput(**(fields | overrides))


def create_escalation(**overrides: Any) -> NotificationInput:
    fields: dict[str, Any] = {
        "key": f"RF261120-ABC123:{uuid.uuid4().hex[:8]}:escalation:supervisor",
        "template": Template.ESCALATION,
        "recipient": Recipient.SUPERVISOR,
        "to": Contact(),
        "params": {"reason": "response_overdue"},
        "locale": "en",
    }
    return create_notification_input(**(fields | overrides))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@workflow.defn
class NotifyWorkflow:
    """Asks for one notification as the order workflow does, with its timeout and retries."""

    @workflow.run
    async def run(self, input: NotificationInput) -> str:
        try:
            await workflow.execute_activity(
                "send_notification",
                input,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=EFFECT_RETRY,
            )
        except ActivityError as error:
            return f"failed: {error.cause}"
        return "sent"


async def notify_through_temporal(
    env: WorkflowEnvironment, activities: NotificationActivities, input: NotificationInput
) -> str:
    task_queue = f"tq-{uuid.uuid4().hex}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[NotifyWorkflow],
        activities=[activities.send_notification],
    ):
        return await env.client.execute_workflow(
            NotifyWorkflow.run, input, id=f"notify-{uuid.uuid4().hex}", task_queue=task_queue
        )


# ---- a real SMTP server -------------------------------------------------------------------


@dataclass
class MailServer:
    """A local SMTP server: what it was asked and what it took, and how it should answer."""

    port: int
    received: list[bytes] = field(default_factory=list)  # each message as it arrived
    recipients_asked: list[str] = field(default_factory=list)  # every RCPT TO, refused or not
    refuse: dict[str, str] = field(default_factory=dict)  # address -> reply, every time
    defer_once: dict[str, str] = field(default_factory=dict)  # address -> reply, once
    hang_up_after_taking: int = 0  # take the next n messages, then drop before answering

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.recipients_asked.append(address)
        if address in self.refuse:
            return self.refuse[address]
        if address in self.defer_once:
            return self.defer_once.pop(address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.received.append(envelope.content)
        if self.hang_up_after_taking:
            self.hang_up_after_taking -= 1
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()  # the message is taken; the "250" never leaves
        return "250 Message accepted for delivery"

    def messages(self) -> list[email.message.EmailMessage]:
        parsed = []
        for raw in self.received:
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, email.message.EmailMessage)
            parsed.append(message)
        return parsed


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer(port=free_port())
    controller = Controller(server, hostname="127.0.0.1", port=server.port)
    controller.start()
    yield server
    controller.stop()


def email_settings(mail_server: MailServer, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": mail_server.port,
        "smtp_from": SENDER,
    }
    return Settings(**(fields | overrides))


def email_activities(engine: AsyncEngine, settings: Settings) -> NotificationActivities:
    """Built as the worker builds them: channels and routes from the settings."""
    return NotificationActivities.from_settings(engine, settings)


@dataclass
class RecordsOutage:
    """The records store fails the next update of `notifications` (the confirmation)."""

    mail_server: MailServer
    failures: int = 0
    taken_when_failed: int = -1  # messages the mail server had taken at that moment

    def __call__(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if self.failures == 0 and statement.startswith("UPDATE notifications"):
            self.failures += 1
            self.taken_when_failed = len(self.mail_server.received)
            raise sqlite3.OperationalError("disk I/O error")


@pytest.fixture
def records_outage(engine: AsyncEngine, mail_server: MailServer) -> Iterator[RecordsOutage]:
    outage = RecordsOutage(mail_server)
    event.listen(engine.sync_engine, "before_cursor_execute", outage)
    yield outage
    event.remove(engine.sync_engine, "before_cursor_execute", outage)


def expected_message_id(key: str) -> str:
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@example.com>"


class TestEmail:
    async def test_customer_receives_the_rendered_email(
        self, engine: AsyncEngine, mail_server: MailServer
    ) -> None:
        """A customer with only an email address gets the message in their inbox, in Chinese."""
        activities = email_activities(engine, email_settings(mail_server))
        input = create_notification_input()
        await send(activities, input)
        (message,) = mail_server.messages()
        (row,) = await notification_rows(engine)
        assert (row.status, row.channel, row.destination) == ("sent", "email", EMAIL)
        assert mail_server.recipients_asked == [EMAIL]
        assert (message["From"], message["To"]) == (SENDER, EMAIL)
        assert message["Subject"] == row.subject == "维修已完成，请验收"  # noqa: RUF001
        body = message.get_body()
        assert body is not None
        assert body.get_content().strip() == row.body
        assert "180.00 CNY" in row.body
        assert message["Message-ID"] == expected_message_id(input.key)

    async def test_retry_after_the_mail_was_taken_sends_one_email(
        self,
        engine: AsyncEngine,
        mail_server: MailServer,
        records_outage: RecordsOutage,
        time_skipping_env: WorkflowEnvironment,
    ) -> None:
        """The records store fails right after the mail server took the message; Temporal
        retries the activity, and the customer still gets exactly one email."""
        activities = email_activities(engine, email_settings(mail_server))
        input = create_notification_input()
        outcome = await notify_through_temporal(time_skipping_env, activities, input)
        assert (records_outage.failures, records_outage.taken_when_failed) == (1, 1)
        assert outcome == "sent"
        (message,) = mail_server.messages()
        assert message["Message-ID"] == expected_message_id(input.key)
        assert mail_server.recipients_asked == [EMAIL]
        (row,) = await notification_rows(engine)
        assert (row.status, row.error) == ("sent", None)

    async def test_connection_lost_after_the_mail_was_taken_is_not_sent_again(
        self, engine: AsyncEngine, mail_server: MailServer, time_skipping_env: WorkflowEnvironment
    ) -> None:
        """The server took the message but hung up before saying so: the retry does not send a
        second copy, and the order records that it may not have arrived."""
        mail_server.hang_up_after_taking = 1
        activities = email_activities(engine, email_settings(mail_server))
        input = create_notification_input()
        outcome = await notify_through_temporal(time_skipping_env, activities, input)
        assert len(mail_server.received) == 1
        assert mail_server.recipients_asked == [EMAIL]
        assert outcome.startswith(
            f"failed: UndeliverableNotification: notification {input.key} (work_done):"
            " may not have arrived"
        )
        (row,) = await notification_rows(engine)
        assert row.status == "unconfirmed"
        assert row.error is not None
        assert "may not have arrived" in row.error

    async def test_rejected_address_fails_for_good(
        self, engine: AsyncEngine, mail_server: MailServer, log_output: io.StringIO
    ) -> None:
        """A mailbox the server refuses (550) is recorded as failed, without the address, and
        a second attempt does not try again."""
        mail_server.refuse[EMAIL] = f"550 5.1.1 <{EMAIL}>: mailbox unavailable"
        activities = email_activities(engine, email_settings(mail_server))
        input = create_notification_input()
        for _ in range(2):  # the attempt, then the same key again
            with pytest.raises(ApplicationError) as failed:
                await send(activities, input)
            assert failed.value.type == "UndeliverableNotification"
            assert failed.value.non_retryable
            assert failed.value.message == (
                f"notification {input.key} (work_done): the mail server refused the recipient (550)"
            )
        assert mail_server.recipients_asked == [EMAIL]
        assert mail_server.received == []
        (row,) = await notification_rows(engine)
        assert (row.status, row.error) == ("failed", "the mail server refused the recipient (550)")
        # Every line but the test mail server's own (which a worker does not run).
        ours = [
            line
            for line in log_output.getvalue().splitlines()
            if json.loads(line)["logger"] != "mail.log"
        ]
        assert any(json.loads(line)["event"].startswith("notification refused") for line in ours)
        assert not [line for line in ours if EMAIL in line]

    async def test_deferred_recipient_is_sent_on_the_retry(
        self, engine: AsyncEngine, mail_server: MailServer
    ) -> None:
        """A server that says "try later" (450) leaves the message pending; the retry sends it."""
        mail_server.defer_once[EMAIL] = "450 4.2.0 greylisted, try again later"
        activities = email_activities(engine, email_settings(mail_server))
        input = create_notification_input()
        with pytest.raises(ApplicationError) as failed:
            await send(activities, input)
        assert (failed.value.type, failed.value.non_retryable) == (
            "NotificationNotDelivered",
            False,
        )
        (row,) = await notification_rows(engine)
        assert (row.status, row.error) == (
            "pending",
            "the mail server deferred the recipient (450)",
        )
        await send(activities, input)
        assert len(mail_server.received) == 1
        assert mail_server.recipients_asked == [EMAIL, EMAIL]
        (row,) = await notification_rows(engine)
        assert (row.status, row.error) == ("sent", None)

    async def test_unreachable_server_is_retried(self, engine: AsyncEngine) -> None:
        """No mail server listening: nothing was sent, so the message waits to be sent again."""
        settings = Settings(smtp_host="127.0.0.1", smtp_port=free_port())
        activities = email_activities(engine, settings)
        with pytest.raises(ApplicationError) as failed:
            await send(activities, create_notification_input())
        assert (failed.value.type, failed.value.non_retryable) == (
            "NotificationNotDelivered",
            False,
        )
        (row,) = await notification_rows(engine)
        assert row.status == "pending"
        assert row.error == (
            "the mail server refused us or was unreachable (ConnectionRefusedError)"
        )

    async def test_configured_email_reaches_a_customer_who_has_a_phone(
        self, engine: AsyncEngine, mail_server: MailServer
    ) -> None:
        """With work_done routed to email, a customer with phone and email gets it by email."""
        settings = email_settings(mail_server, notification_channels={"work_done": "email"})
        activities = email_activities(engine, settings)
        await send(activities, create_notification_input(to=Contact(phone="+86 1", email=EMAIL)))
        assert len(mail_server.received) == 1
        (row,) = await notification_rows(engine)
        assert (row.channel, row.destination, row.status) == ("email", EMAIL, "sent")


# ---- a real HTTP receiver standing in for the ERP -----------------------------------------


@dataclass
class Post:
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Erp:
    """Receives the webhook as an integrator would: checks the signature over the raw body and
    timestamp, keeps each Idempotency-Key's message once, answers 200, or 401 if unsigned."""

    secret: str
    url: str = ""
    posts: list[Post] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # by Idempotency-Key
    script: list[int | str] = field(default_factory=list)  # next answers: a status or "stall"

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        timestamp = headers.get("x-repairflow-timestamp", "")
        signature = headers.get("x-repairflow-signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return False
        expected = hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(signature, f"sha256={expected}")

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[int, float]:
        """The status to answer and how long to take over it."""
        verified = self.verify(headers, body)
        self.posts.append(Post(headers, body, verified))
        answer = self.script.pop(0) if self.script else 200
        if not verified:
            return 401, 0
        if answer in (200, "stall"):
            self.messages.setdefault(headers["idempotency-key"], json.loads(body))
        return (200, 1.0) if answer == "stall" else (int(answer), 0)


@pytest.fixture
def erp() -> Iterator[Erp]:
    receiver = Erp(secret=ERP_SECRET)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, delay = receiver.receive(headers, body)
            time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender stopped waiting

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/repairflow"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join()


def webhook_activities(
    engine: AsyncEngine, erp: Erp, secret: str = ERP_SECRET
) -> NotificationActivities:
    settings = Settings(
        webhook_url=erp.url,
        webhook_secret=secret,
        notification_channels={"escalation": "webhook"},
    )
    return NotificationActivities.from_settings(engine, settings)


class TestWebhook:
    async def test_erp_verifies_the_signature_and_reads_the_message(
        self, engine: AsyncEngine, erp: Erp
    ) -> None:
        """An escalation routed to the webhook reaches the ERP signed; it can check the HMAC
        from the raw body and the timestamp, and reads the whole message."""
        input = create_escalation()
        await send(webhook_activities(engine, erp), input)
        (post,) = erp.posts
        assert post.verified
        assert post.headers["idempotency-key"] == input.key
        assert post.headers["content-type"] == "application/json"
        (row,) = await notification_rows(engine)
        assert (row.status, row.channel, row.destination) == ("sent", "webhook", None)
        assert erp.messages == {
            input.key: {
                "key": input.key,
                "order_id": "RF261120-ABC123",
                "template": "escalation",
                "recipient": "supervisor",
                "locale": "en",
                "subject": "Order escalated to you",
                "body": row.body,
                "sent_at": erp.messages[input.key]["sent_at"],
            }
        }
        assert "no technician has accepted the order in time" in row.body
        sent_at = datetime.fromisoformat(erp.messages[input.key]["sent_at"])
        assert sent_at == row.created_at

    async def test_erp_rejects_a_wrong_secret(self, engine: AsyncEngine, erp: Erp) -> None:
        """Signed with another secret, the message is refused by the ERP (401) and recorded as
        failed on the order instead of being retried for ever."""
        activities = webhook_activities(engine, erp, secret="not-the-erp-secret-0123456789abcdef")
        input = create_escalation()
        with pytest.raises(ApplicationError) as failed:
            await send(activities, input)
        assert (failed.value.type, failed.value.non_retryable) == (
            "UndeliverableNotification",
            True,
        )
        (post,) = erp.posts
        assert not post.verified
        assert erp.messages == {}
        (row,) = await notification_rows(engine)
        assert (row.status, row.error) == ("failed", "the webhook refused the message (HTTP 401)")

    async def test_server_error_is_sent_again_with_the_same_key_and_body(
        self, engine: AsyncEngine, erp: Erp
    ) -> None:
        """The ERP failing (500) leaves the message pending; the retry posts the same bytes
        under the same Idempotency-Key, and the ERP has it once."""
        erp.script = [500]
        activities = webhook_activities(engine, erp)
        input = create_escalation()
        with pytest.raises(ApplicationError) as failed:
            await send(activities, input)
        assert (failed.value.type, failed.value.non_retryable) == (
            "NotificationNotDelivered",
            False,
        )
        (row,) = await notification_rows(engine)
        assert (row.status, row.error) == ("pending", "the webhook answered HTTP 500")
        await send(activities, input)
        first, second = erp.posts
        assert [first.verified, second.verified] == [True, True]
        assert first.body == second.body
        assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == input.key
        assert list(erp.messages) == [input.key]
        (row,) = await notification_rows(engine)
        assert row.status == "sent"

    @pytest.mark.parametrize("status", [408, 429, 503])
    async def test_busy_answers_are_retried(
        self, engine: AsyncEngine, erp: Erp, status: int
    ) -> None:
        """Timeout, rate limit and unavailable are "try again later", not a refusal."""
        erp.script = [status]
        with pytest.raises(ApplicationError) as failed:
            await send(webhook_activities(engine, erp), create_escalation())
        assert (failed.value.type, failed.value.non_retryable) == (
            "NotificationNotDelivered",
            False,
        )

    async def test_bad_request_fails_for_good(self, engine: AsyncEngine, erp: Erp) -> None:
        """A message the ERP refuses (400) is recorded as failed and never posted again."""
        erp.script = [400]
        activities = webhook_activities(engine, erp)
        input = create_escalation()
        for _ in range(2):
            with pytest.raises(ApplicationError) as failed:
                await send(activities, input)
            assert (failed.value.type, failed.value.non_retryable) == (
                "UndeliverableNotification",
                True,
            )
        assert len(erp.posts) == 1
        (row,) = await notification_rows(engine)
        assert (row.status, row.error) == ("failed", "the webhook refused the message (HTTP 400)")

    async def test_unanswered_post_is_repeated_and_kept_once(
        self, engine: AsyncEngine, erp: Erp
    ) -> None:
        """The ERP took the message but answered too late: the retry posts it again under the
        same Idempotency-Key, and the ERP keeps one."""
        erp.script = ["stall"]
        impatient = WebhookChannel(erp.url, SecretStr(ERP_SECRET), timeout=0.3)
        activities = NotificationActivities(
            engine, {"webhook": impatient}, {"escalation": "webhook"}
        )
        input = create_escalation()
        with pytest.raises(ApplicationError) as failed:
            await send(activities, input)
        assert (failed.value.type, failed.value.non_retryable) == (
            "NotificationOutcomeUnknown",
            False,
        )
        assert [row.status for row in await notification_rows(engine)] == ["sending"]
        await send(activities, input)
        first, second = erp.posts
        assert first.body == second.body
        assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
        assert list(erp.messages) == [input.key]
        assert [row.status for row in await notification_rows(engine)] == ["sent"]


# ---- settings ------------------------------------------------------------------------------


def startup_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    """What an operator reads when the worker refuses to start with these variables."""
    for name, value in env.items():
        monkeypatch.setenv(f"REPAIRFLOW_{name.upper()}", value)
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    return str(stopped.value)


class TestChannelSettings:
    def test_routes_are_read_from_json(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """REPAIRFLOW_NOTIFICATION_CHANNELS maps templates and recipients to channels."""
        monkeypatch.setenv(
            "REPAIRFLOW_NOTIFICATION_CHANNELS", '{"work_done": "email", "technician": "sms"}'
        )
        assert load_settings().notification_channels == {"work_done": "email", "technician": "sms"}

    def test_webhook_url_without_secret_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A webhook nobody could verify does not start."""
        error = startup_error(monkeypatch, webhook_url="https://erp.example.com/hooks")
        assert "REPAIRFLOW_WEBHOOK_URL needs REPAIRFLOW_WEBHOOK_SECRET" in error

    def test_short_webhook_secret_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A guessable secret is named, without its value."""
        error = startup_error(
            monkeypatch, webhook_url="https://erp.example.com/hooks", webhook_secret="changeme"
        )
        assert "REPAIRFLOW_WEBHOOK_SECRET: Value error, must be at least 32 characters" in error
        assert "changeme" not in error

    def test_unknown_channel_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A channel name that does not exist is named, with the ones that do."""
        error = startup_error(monkeypatch, notification_channels='{"work_done": "fax"}')
        assert "REPAIRFLOW_NOTIFICATION_CHANNELS" in error
        assert "unknown channel 'fax' for 'work_done'; use one of sms, email, webhook" in error

    def test_unknown_message_type_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A misspelt template is named, with the templates and recipients there are."""
        error = startup_error(monkeypatch, notification_channels='{"work_dne": "email"}')
        assert "unknown message type 'work_dne'" in error
        assert "work_done" in error
        assert "supervisor" in error

    def test_routing_to_an_unset_webhook_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Escalations cannot go to a webhook that has no URL."""
        error = startup_error(monkeypatch, notification_channels='{"escalation": "webhook"}')
        assert "sends escalation to the webhook, but REPAIRFLOW_WEBHOOK_URL is not set" in error

    def test_json_that_does_not_parse_is_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Broken JSON stops the start with the variable's name, not a traceback."""
        error = startup_error(monkeypatch, notification_channels="{work_done: email}")
        assert error.startswith("repairflow cannot start:")
        assert "notification_channels" in error

    def test_smtp_login_needs_both_halves(self) -> None:
        """A username without a password (or the reverse) is a typo, refused at start."""
        with pytest.raises(ValidationError, match="SMTP_USERNAME and _PASSWORD"):
            Settings(smtp_host="mail.example.com", smtp_username="repairflow")


class TestChannelsFromSettings:
    def test_everything_goes_to_the_outbox_by_default(self) -> None:
        """Without SMTP or webhook settings every channel writes to the outbox table."""
        channels = channels_from_settings(Settings())
        assert set(channels) == {"sms", "email", "webhook", "internal"}
        assert all(isinstance(channel, OutboxChannel) for channel in channels.values())

    def test_smtp_and_webhook_are_built_from_their_settings(self) -> None:
        """The settings reach the channels as given."""
        settings = Settings(
            smtp_host="mail.example.com",
            smtp_port=587,
            smtp_username="repairflow",
            smtp_password="app-password",
            smtp_starttls=True,
            smtp_from=SENDER,
            webhook_url="https://erp.example.com/hooks/repairflow",
            webhook_secret=ERP_SECRET,
        )
        channels: dict[ChannelName, Channel] = channels_from_settings(settings)
        smtp, webhook = channels["email"], channels["webhook"]
        assert isinstance(smtp, SmtpChannel)
        assert (smtp.host, smtp.port, smtp.sender, smtp.username, smtp.starttls) == (
            "mail.example.com",
            587,
            SENDER,
            "repairflow",
            True,
        )
        assert smtp.password is not None
        assert smtp.password.get_secret_value() == "app-password"
        assert isinstance(webhook, WebhookChannel)
        assert webhook.url == "https://erp.example.com/hooks/repairflow"
        assert webhook.secret.get_secret_value() == ERP_SECRET
        assert isinstance(channels["sms"], OutboxChannel)
