"""The gateway's own settings (``KEEPWELL_GATEWAY_*``): how it knows who is calling, and how
hard it leans on the services behind it."""

from __future__ import annotations

import secrets
from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.kit.config import Settings
from services.kit.keys import MissingKey, development_secret


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEEPWELL_GATEWAY_", extra="ignore")

    jwks_url: str | None = None
    """Production: the identity provider's JWKS; people's tokens are RS256 (or ES256)."""
    jwt_secret: SecretStr | None = None
    """Development: HS256 tokens with this secret (unset: one kept under the data dir)."""
    jwt_issuer: str = "keepwell-dev"
    jwt_audience: str = "keepwell-gateway"
    jwt_leeway_seconds: int = Field(30, ge=0, le=300)
    jwks_cache_seconds: int = Field(300, ge=10)
    max_page_size: int = Field(100, ge=1, le=500)
    timeouts: dict[str, float] = {}
    """Seconds per service call, by service (others: ``KEEPWELL_HTTP_TIMEOUT_SECONDS``),
    e.g. ``KEEPWELL_GATEWAY_TIMEOUTS='{"care": 2}'``."""
    read_retries: int = Field(2, ge=0, le=10)
    """Retries of idempotent reads per GraphQL request (a budget shared by all its calls)."""

    @model_validator(mode="after")
    def _one_way_to_verify(self) -> GatewaySettings:
        if self.jwks_url is not None and self.jwt_secret is not None:
            raise ValueError(
                "set KEEPWELL_GATEWAY_JWKS_URL or KEEPWELL_GATEWAY_JWT_SECRET, not both"
            )
        return self


@lru_cache
def get_gateway_settings() -> GatewaySettings:
    return GatewaySettings()


def jwt_secret(gateway: GatewaySettings, settings: Settings) -> str:
    """The HS256 secret of people's tokens: configured, or outside production one made once
    under the data dir (what ``keepwell token --gateway`` signs with)."""
    if gateway.jwt_secret is not None:
        return gateway.jwt_secret.get_secret_value()
    if settings.env == "production":
        raise MissingKey("set KEEPWELL_GATEWAY_JWKS_URL (or KEEPWELL_GATEWAY_JWT_SECRET)")
    path = settings.data_dir / "keys" / "gateway-jwt.secret"
    return development_secret(path, lambda: secrets.token_urlsafe(32))
