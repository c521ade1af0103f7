"""Settings shared by every process, read from the environment.

Each service adds its own prefixed settings in its ``config.py``; what lives here is what
every process needs to find its database, Redis, its peers and the keys of internal tokens
(``services/kit/keys.py``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES: tuple[str, ...] = ("profile", "warning", "care", "complaint")
"""The domain services, in start order. Each owns the PostgreSQL schema of the same name."""

SCHEMAS: tuple[str, ...] = (*SERVICES, "gateway")
"""Every owner of a PostgreSQL schema with migrations of its own: the domain services and
the gateway (partners' API keys)."""

DEFAULT_PORTS: dict[str, int] = {
    "gateway": 8000,
    "profile": 8001,
    "warning": 8002,
    "care": 8003,
    "complaint": 8004,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEEPWELL_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/keepwell",
        validation_alias="DATABASE_URL",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    # Ed25519 keys of internal tokens (services/kit/keys.py), PEM or 32 bytes in base64.
    # Every process verifies with the public keys; a signer holds only its private key:
    # the gateway and operators' `keepwell token` the user key, workers the relay key,
    # whoever runs a read-model rebuild the rebuild key. Unset outside production: a
    # development key pair under data_dir/keys.
    user_public_key: str | None = None
    relay_public_key: str | None = None
    rebuild_public_key: str | None = None
    user_signing_key: SecretStr | None = None
    relay_signing_key: SecretStr | None = None
    rebuild_signing_key: SecretStr | None = None
    internal_token_ttl_seconds: int = 300
    data_dir: Path = Path(".keepwell")
    host: str = "127.0.0.1"
    gateway_port: int = DEFAULT_PORTS["gateway"]
    profile_port: int = DEFAULT_PORTS["profile"]
    warning_port: int = DEFAULT_PORTS["warning"]
    care_port: int = DEFAULT_PORTS["care"]
    complaint_port: int = DEFAULT_PORTS["complaint"]
    # Where the gateway and peers reach a service; defaults to host:port above.
    profile_url: str | None = None
    warning_url: str | None = None
    care_url: str | None = None
    complaint_url: str | None = None
    # Where relays deliver the events the gateway subscribes to (live updates, staff
    # channels: gateway/live/). Unset: no process delivers to a gateway, so a system run
    # without one leaves no deliveries to go dead.
    gateway_url: str | None = None
    worker_metrics_base_port: int = 9100
    log_level: str = "INFO"
    # Partner ids that see phone numbers in full (services.kit.masking); others see 138****1234.
    partners_unmasked: list[str] = []
    http_timeout_seconds: float = 5.0
    # Largest request body any route reads (413 beyond); profile's customer import has its
    # own, larger limit (PROFILE_IMPORT_MAX_BODY_BYTES).
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # How long a create route keeps the answer of an Idempotency-Key (services/kit/idempotency.py).
    idempotency_key_hours: float = Field(24, gt=0)
    db_pool_size: int = 10
    # How long delivered events (outbox rows with their deliveries and attempts) and inbox
    # rows are kept before the workers' prune_events job deletes them; also how old an event
    # a consumer still accepts when its inbox does not know it (services/kit/events/prune.py).
    # The same value in every process of a service: its API accepts what its worker's prune
    # still remembers.
    event_retention_days: int = Field(7, ge=1)
    # OpenTelemetry traces (services/kit/tracing.py): off unless asked for or an OTLP
    # endpoint is configured the standard way; the exporter reads the OTEL_* variables itself.
    tracing: bool | None = None
    otlp_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )
    # How long deliveries a relay claimed stay its own: a relay killed outright holds back
    # what it claimed until then (services/kit/events/relay.py scales its timeouts to fit).
    relay_lease_seconds: float = Field(120, ge=8)

    PRODUCTION_REQUIRES: ClassVar[tuple[str, ...]] = (
        "user_public_key",
        "relay_public_key",
        "rebuild_public_key",
    )
    """Settings every process must be given in production (no development fallback)."""

    SIGNING_KEY_OF_PROCESS: ClassVar[dict[str, str]] = {
        "gateway": "user_signing_key",
        "worker": "relay_signing_key",
    }
    """The private key each kind of deployed process signs with, and refuses to start
    without in production (``keepwell serve gateway``, ``keepwell worker ...``)."""

    @model_validator(mode="after")
    def _refuse_missing_keys_in_production(self) -> Settings:
        from services.kit.keys import parse_private, parse_public

        for signer in ("user", "relay", "rebuild"):
            public: str | None = getattr(self, f"{signer}_public_key")
            private: SecretStr | None = getattr(self, f"{signer}_signing_key")
            try:
                if public is not None:
                    parse_public(public)
                if private is not None:
                    parse_private(private.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"KEEPWELL_{signer.upper()}_* key: {exc}") from exc
        if self.env != "production":
            return self
        missing = [name for name in self.PRODUCTION_REQUIRES if getattr(self, name) is None]
        if missing:
            names = ", ".join(f"KEEPWELL_{n.upper()}" for n in missing)
            raise ValueError(f"{names} must be set in production (no development keys there)")
        return self

    @property
    def tracing_on(self) -> bool:
        """``KEEPWELL_TRACING`` when set, else whether an OTLP endpoint is configured."""
        return self.tracing if self.tracing is not None else self.otlp_endpoint is not None

    def port_of(self, name: str) -> int:
        port: int = getattr(self, f"{name}_port")
        return port

    def url_of(self, service: str) -> str:
        configured: str | None = getattr(self, f"{service}_url")
        return configured or f"http://{self.host}:{self.port_of(service)}"

    def worker_metrics_port(self, service: str) -> int:
        return self.worker_metrics_base_port + 1 + SERVICES.index(service)


@lru_cache
def get_settings() -> Settings:
    return Settings()
