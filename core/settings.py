"""Settings shared by the API, the worker and the tools, read from REPAIRFLOW_* variables."""

from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Literal, get_args

from pydantic import (
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from core.codec import KeyRing, KeyRingError
from models.notification import Recipient, Template
from models.policy import Policy, PolicyError, load_policy

# How a notification travels; activities/notifications/channels.py has a channel for each.
ChannelName = Literal["sms", "email", "webhook", "internal"]
CHANNEL_NAMES: Final[tuple[ChannelName, ...]] = get_args(ChannelName)
# What REPAIRFLOW_NOTIFICATION_CHANNELS may route: a template, or everything one recipient gets.
MESSAGE_TYPES: Final[tuple[str, ...]] = (
    *(t.value for t in Template),
    *(r.value for r in Recipient),
)


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value may be a secret (a key ring, a signing secret).
    model_config = SettingsConfigDict(
        env_prefix="REPAIRFLOW_", frozen=True, hide_input_in_errors=True
    )

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_api_key: SecretStr | None = None
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    task_queue: str = "repair-orders"
    database_url: str = "sqlite:///./repairflow.db"
    policy_file: Path | None = None
    auth_secret: SecretStr | None = None
    auth_jwks_url: str | None = None
    # With a JWKS URL, HS256 staff tokens are refused unless this allows both.
    auth_allow_hs256: bool = False
    # Signs the customers' link tokens; without it, the auth secret does.
    customer_link_secret: SecretStr | None = None
    # The payload codec's key ring (core/codec.py): "id:base64key" pairs, newest first.
    payload_keys: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    customer_token_days: int = Field(default=400, ge=1)
    # How often the worker archives the histories of closed workflows into the records store.
    archive_interval_seconds: float = Field(default=60, gt=0)
    # Workflows the worker keeps in memory; one evicted from it is replayed from its history.
    workflow_cache_size: int = Field(default=1000, ge=0)
    # The worker's Prometheus endpoint (the Temporal SDK's metrics), on api_host; none: off.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Notification channels. Without an SMTP host, email goes to the outbox table like SMS.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_from: str = "repairflow@localhost"
    webhook_url: HttpUrl | None = None
    webhook_secret: SecretStr | None = None
    sms_provider: Literal["outbox"] = "outbox"
    # {"escalation": "webhook", "customer": "email"}: a template's own entry wins over its
    # recipient's; anything not listed keeps the default route (customers by SMS, else email;
    # technicians and staff internally).
    notification_channels: dict[str, ChannelName] = Field(default_factory=dict)

    @field_validator("auth_secret", "customer_link_secret")
    @classmethod
    def secret_is_strong_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        # Short or placeholder secrets ("changeme", "secret") make every token forgeable.
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (HS256 needs 256 bits)")
        return secret

    @property
    def link_secret(self) -> str | None:
        """The secret the customers' link tokens are signed and checked with."""
        secret = self.customer_link_secret or self.auth_secret
        return secret.get_secret_value() if secret else None

    @field_validator("webhook_secret")
    @classmethod
    def webhook_secret_is_strong_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        # The integrator trusts whatever carries a valid signature: no guessable secrets.
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (HMAC-SHA256 wants 256 bits)")
        return secret

    @field_validator("smtp_from")
    @classmethod
    def smtp_from_is_an_address(cls, sender: str) -> str:
        _, address = parseaddr(sender)
        if "@" not in address or "\n" in sender or "\r" in sender:
            raise ValueError("must be an email address, e.g. repairflow@example.com")
        return sender

    @field_validator("notification_channels", mode="before")
    @classmethod
    def notification_channels_are_known(cls, routes: Any) -> Any:
        # Named here, with the valid names, rather than as a long union error from pydantic.
        if isinstance(routes, dict):
            for name, channel in routes.items():
                if name not in MESSAGE_TYPES:
                    raise ValueError(
                        f"unknown message type {name!r}; use a template "
                        f"({', '.join(t.value for t in Template)}) or a recipient "
                        f"({', '.join(r.value for r in Recipient)})"
                    )
                if channel not in CHANNEL_NAMES:
                    raise ValueError(
                        f"unknown channel {channel!r} for {name!r}; use one of "
                        f"{', '.join(CHANNEL_NAMES)}"
                    )
        return routes

    @model_validator(mode="after")
    def tls_pair_is_complete(self) -> "Settings":
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError("REPAIRFLOW_TEMPORAL_TLS_CERT and _KEY must be set together")
        return self

    @model_validator(mode="after")
    def notification_channels_are_configured(self) -> "Settings":
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("REPAIRFLOW_WEBHOOK_URL needs REPAIRFLOW_WEBHOOK_SECRET to sign with")
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("REPAIRFLOW_SMTP_USERNAME and _PASSWORD must be set together")
        if self.webhook_url is None:
            routed = sorted(k for k, v in self.notification_channels.items() if v == "webhook")
            if routed:
                raise ValueError(
                    f"REPAIRFLOW_NOTIFICATION_CHANNELS sends {', '.join(routed)} to the webhook,"
                    " but REPAIRFLOW_WEBHOOK_URL is not set"
                )
        return self

    @field_validator("payload_keys")
    @classmethod
    def payload_keys_are_a_ring(cls, keys: SecretStr | None) -> SecretStr | None:
        if keys is not None:
            try:
                KeyRing.parse(keys.get_secret_value())
            except KeyRingError as error:  # says which key id, never a key
                raise ValueError(str(error)) from None
        return keys

    @cached_property
    def key_ring(self) -> KeyRing:
        if self.payload_keys is None:
            raise KeyRingError(
                "REPAIRFLOW_PAYLOAD_KEYS is not set: the payload codec needs its key ring"
                " (`python3 scripts/dev.py up` generates one into data/)"
            )
        return KeyRing.parse(self.payload_keys.get_secret_value())

    @cached_property
    def policy(self) -> Policy:
        return load_policy(self.policy_file)


def load_settings() -> Settings:
    """Settings and policy for a process that is starting: a bad value stops it with a message
    naming the variable or policy key, not a traceback."""
    try:
        settings = Settings()
        settings.policy  # noqa: B018 - loads and validates the policy file now
        settings.key_ring  # noqa: B018 - a process without its key ring cannot read an order
    except ValidationError as error:
        # Named by variable, without the value: it may be a secret.
        problems = "; ".join(
            f"REPAIRFLOW_{'_'.join(map(str, e['loc'])).upper() or '*'}: {e['msg']}"
            for e in error.errors()
        )
        raise SystemExit(f"repairflow cannot start: {problems}") from None
    except SettingsError as error:
        # A variable that is not valid JSON where JSON is expected; names it, not its value.
        raise SystemExit(f"repairflow cannot start: {error}") from None
    except (PolicyError, KeyRingError) as error:
        raise SystemExit(f"repairflow cannot start: {error}") from None
    return settings
