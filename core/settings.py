"""Settings shared by the API, the worker and the tools, read from REPAIRFLOW_* variables."""

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.policy import Policy, PolicyError, load_policy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REPAIRFLOW_", frozen=True)

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
        # Short or placeholder secrets ("changeme", "secret") make every token forgeable.
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (HS256 needs 256 bits)")
        return secret

    @model_validator(mode="after")
    def tls_pair_is_complete(self) -> "Settings":
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError("REPAIRFLOW_TEMPORAL_TLS_CERT and _KEY must be set together")
        return self

    @cached_property
    def policy(self) -> Policy:
        return load_policy(self.policy_file)


def load_settings() -> Settings:
    """Settings and policy for a process that is starting: a bad value stops it with a message
    naming the variable or policy key, not a traceback."""
    try:
        settings = Settings()
        settings.policy  # noqa: B018 - loads and validates the policy file now
    except ValidationError as error:
        # Named by variable, without the value: it may be a secret.
        problems = "; ".join(
            f"REPAIRFLOW_{'_'.join(map(str, e['loc'])).upper() or '*'}: {e['msg']}"
            for e in error.errors()
        )
        raise SystemExit(f"repairflow cannot start: {problems}") from None
    except PolicyError as error:
        raise SystemExit(f"repairflow cannot start: {error}") from None
    return settings
