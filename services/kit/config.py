"""Settings shared by every process, read from the environment.

Each service adds its own prefixed settings in its ``config.py``; what lives here is what
every process needs to find its database, Redis, its peers and the internal signing key.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES: tuple[str, ...] = ("profile", "warning", "care", "complaint")
"""The domain services, in start order. Each owns the PostgreSQL schema of the same name."""

DEFAULT_PORTS: dict[str, int] = {
    "gateway": 8000,
    "profile": 8001,
    "warning": 8002,
    "care": 8003,
    "complaint": 8004,
}

DEVELOPMENT_INTERNAL_KEY = "keepwell-development-internal-key-not-for-production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEEPWELL_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/keepwell",
        validation_alias="DATABASE_URL",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    internal_key: SecretStr = SecretStr(DEVELOPMENT_INTERNAL_KEY)
    internal_token_ttl_seconds: int = 300
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
    worker_metrics_base_port: int = 9100
    log_level: str = "INFO"
    # Partner ids that see phone numbers in full (services.kit.masking); others see 138****1234.
    partners_unmasked: list[str] = []
    http_timeout_seconds: float = 5.0
    db_pool_size: int = 10

    @model_validator(mode="after")
    def _refuse_weak_secret_in_production(self) -> Settings:
        key = self.internal_key.get_secret_value()
        if self.env == "production" and (key == DEVELOPMENT_INTERNAL_KEY or len(key) < 32):
            raise ValueError(
                "KEEPWELL_INTERNAL_KEY must be a secret of your own, at least 32 bytes, "
                "in production"
            )
        return self

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
