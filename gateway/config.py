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

    # What one operation may ask (gateway/limits.py); defaults from the documented queries:
    # the deepest (README's customer 360) is 5 levels, the costliest a tested page of 100
    # customers with managers, warnings, risk and complaints (12,705).
    max_depth: int = Field(10, ge=1)
    """Levels of nested fields (``{ viewer { userId } }`` is 2), fragments expanded."""
    max_aliases: int = Field(15, ge=0)
    """Aliases in the expanded operation: a fragment with 10 aliases spread 10 times is 100."""
    max_directives: int = Field(20, ge=0)
    max_root_fields: int = Field(10, ge=1)
    max_tokens: int = Field(1000, ge=100)
    max_query_length: int = Field(15_000, ge=100)
    """Characters of the query text."""
    max_cost: int = Field(50_000, ge=1)
    """Every field 1; a list multiplies what it selects by its ``first`` (or its size)."""
    default_list_size: int = Field(50, ge=1)
    """The size assumed of a list without ``first`` or a declared size (limits.LIST_SIZES)."""

    # The HTTP edge (gateway/http.py).
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    """Largest request body, refused from Content-Length or while it streams in."""
    max_batch_operations: int = Field(0, ge=0, le=50)
    """Operations in one JSON array (batching); 0 refuses arrays."""
    csrf_prevention: bool = True
    """Refuse GET operations and simple-content-type POSTs without a preflight header."""
    csrf_preflight_headers: list[str] = ["x-requested-with", "apollo-require-preflight"]
    cors_origins: list[str] = []
    """Browser origins allowed to call the gateway (CORS); none by default."""
    introspection: bool | None = None
    """``None``: on, except in production."""
    field_suggestions: bool | None = None
    """"Did you mean ..." in error messages; ``None``: on, except in production."""
    mask_errors: bool | None = None
    """Unexpected errors as ``INTERNAL`` with the request id; ``None``: in production only."""

    # Rate limits (gateway/ratelimit.py): a token bucket per caller in Redis, shared by every
    # replica, charged by each operation's cost. A bucket holds one minute's worth.
    rate_limits: bool = True
    rate_user_per_minute: int = Field(600_000, ge=1)
    """Cost a person (bearer token) may spend per minute: about 27 of the costliest tested
    query (a page of 100 customers with everything, ~21,700) or 350 customer 360s."""
    rate_partner_per_minute: int = Field(60_000, ge=1)
    """Per API key, unless the key has its own (``keepwell apikey create --rate``)."""
    rate_anonymous_per_minute: int = Field(6_000, ge=1)
    """Callers without a token or key (``health``), per client address."""
    rate_min_cost: int = Field(10, ge=1)
    """What one operation is charged at least, so a flood of tiny ones still counts."""
    redis_timeout_seconds: float = Field(0.5, gt=0, le=10)
    """Redis calls of the rate limits and persisted queries; past it they fail open."""

    # Metrics (gateway/observe.py).
    metrics_max_operations: int = Field(200, ge=0)
    """Distinct names of unregistered operations with a metrics label of their own, per
    process; later ones are counted as ``(other)`` (registered operations always have theirs)."""

    # Persisted queries (gateway/persisted.py).
    apq: bool = True
    """Automatic persisted queries (Apollo's protocol), kept in Redis."""
    apq_ttl_seconds: int = Field(7 * 24 * 3600, ge=60)
    safelist: bool | None = None
    """Only registered operations run (``keepwell gateway register-operations``);
    ``None``: on in production only."""
    safelist_partners: bool = False
    """Whether partners' API keys are held to the safelist too (they write their own
    queries, so by default they are not; their scopes and limits still apply)."""

    # Live updates (gateway/live/): subscriptions over graphql-transport-ws.
    live_max_connections: int = Field(2000, ge=1)
    """WebSocket connections per gateway process."""
    live_max_connections_per_user: int = Field(5, ge=1)
    """Per person and process: an app on a phone and a browser or two."""
    live_max_subscriptions: int = Field(10, ge=1)
    """Subscriptions at once on one connection."""
    live_init_timeout_seconds: float = Field(10, gt=0, le=120)
    """How long a new connection has to send ``connection_init`` before it is closed."""
    live_poll_seconds: float = Field(2.0, gt=0, le=60)
    """How often ``campaignProgress`` looks at its campaign."""

    # Staff channels (gateway/channels): the teams' WeCom and DingTalk group robots.
    channel_sender: bool = True
    """Send queued notices from this process; every gateway process takes a share."""
    channel_rate_per_minute: int = Field(20, ge=1, le=1000)
    """Messages per team per minute, over all its channels and every gateway process (both
    robots take about 20 a minute each); the rest wait, none is dropped."""
    channel_max_attempts: int = Field(8, ge=1, le=50)
    """Attempts before a message is given up (dead); the robots' rate-limit answers do not
    count. Retries back off from 2 s, doubling, to 10 minutes."""

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
