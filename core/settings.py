"""Settings shared by the API, the worker and the tools, read from REPAIRFLOW_* variables."""

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.policy import Policy, load_policy

# Values people paste from examples; refused outside development.
PLACEHOLDER_SECRETS = frozenset({"secret", "changeme", "change-me", "dev", "development", "test"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REPAIRFLOW_", frozen=True)

    env: Literal["development", "production"] = "development"
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
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    customer_token_days: int = Field(default=400, ge=1)

    @field_validator("auth_secret")
    @classmethod
    def secret_is_strong_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (HS256 needs 256 bits)")
        return secret

    @model_validator(mode="after")
    def production_refuses_placeholders(self) -> "Settings":
        secret = self.auth_secret.get_secret_value() if self.auth_secret else ""
        if self.env == "production" and secret.lower() in PLACEHOLDER_SECRETS:
            raise ValueError("REPAIRFLOW_AUTH_SECRET is a placeholder")
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError("REPAIRFLOW_TEMPORAL_TLS_CERT and _KEY must be set together")
        return self

    @cached_property
    def policy(self) -> Policy:
        return load_policy(self.policy_file)
